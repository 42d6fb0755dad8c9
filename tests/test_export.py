"""Saving and loading songs: round trip, formats, refusals, atomicity, nothing of the user's lost."""

from __future__ import annotations

import json

import numpy as np
import pytest

import musicstems.export as export_module
from musicstems import Composition, MusicStemsError
from musicstems.loudness import integrated_lufs


def test_save_load_round_trip_is_exact(tiny_song, tmp_path):
    folder = tiny_song.save(tmp_path / "song")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) \
        == sorted(["mix.wav", "manifest.json"] + [f"stems/{n}.wav" for n in tiny_song.stems])
    back = Composition.load(folder)
    assert np.array_equal(back.mix, tiny_song.mix)  # float WAV keeps every bit
    for name, audio in tiny_song.stems.items():
        assert np.array_equal(back.stems[name], audio)
    assert back.sample_rate == tiny_song.sample_rate and back.seed == tiny_song.seed
    assert back.prompts == tiny_song.prompts


def test_manifest_has_what_reproduces_the_song(tiny_song, tmp_path):
    folder = tiny_song.save(tmp_path / "song")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed"] == tiny_song.seed
    assert manifest["settings"]["bpm"] == 128 and manifest["settings"]["key"] == "A minor"
    assert manifest["settings"]["style"] == "dark berlin techno"
    assert set(manifest["stems"]) == set(tiny_song.stems)  # the loop below checks every stem
    for name, entry in manifest["stems"].items():
        assert entry["prompt_sent"] == tiny_song.prompts[name]
        assert manifest["files"]["stems"][name] == f"stems/{name}.wav"
        for field in ("integrated_lufs", "sample_peak_dbfs", "true_peak_dbtp", "rms_dbfs",
                      "dominant_hz", "spectral_centroid_hz"):
            assert field in entry["analysis"]
    assert manifest["backend"]["model"] and "revision" in manifest["backend"]
    assert manifest["versions"]["numpy"] and manifest["timings_s"]


@pytest.mark.parametrize("fmt, tolerance_lu", [("flac", 0.01), ("mp3", 0.5)])
def test_compressed_formats(tiny_song, tmp_path, fmt, tolerance_lu):
    folder = tiny_song.save(tmp_path / fmt, format=fmt)
    back = Composition.load(folder)
    assert (folder / f"mix.{fmt}").is_file()
    sr = tiny_song.sample_rate
    # FLAC is 24-bit: loudness unchanged; MP3 is lossy but must keep the level.
    assert integrated_lufs(back.mix, sr) == pytest.approx(integrated_lufs(tiny_song.mix, sr),
                                                          abs=tolerance_lu)
    if fmt == "flac":
        assert back.mix.shape == tiny_song.mix.shape
        assert np.max(np.abs(back.mix - tiny_song.mix)) < 2 ** -22


def test_bad_format_is_refused(tiny_song, tmp_path):
    with pytest.raises(MusicStemsError, match="format='ogg-opus'"):
        tiny_song.save(tmp_path / "x", format="ogg-opus")
    assert not (tmp_path / "x").exists()


def test_non_empty_folder_is_refused_then_overwritten_keeping_user_files(tiny_song, tmp_path):
    folder = tmp_path / "song"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    with pytest.raises(MusicStemsError, match="overwrite=True"):
        tiny_song.save(folder)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    tiny_song.save(folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "my notes"
    assert (folder / "mix.wav").is_file()
    tiny_song.save(folder, overwrite=True)  # and again over our own files
    assert np.array_equal(Composition.load(folder).mix, tiny_song.mix)
    assert not list(tmp_path.glob(".song.*"))  # no staging folder left behind


def test_failure_half_way_leaves_no_half_written_song(tiny_song, tmp_path, monkeypatch):
    real_write = export_module.write_audio
    calls = []

    def failing_write(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr("musicstems.composition.write_audio", failing_write)
    with pytest.raises(OSError, match="disk full"):
        tiny_song.save(tmp_path / "song")
    assert not (tmp_path / "song").exists()
    assert list(tmp_path.iterdir()) == []

    # Over an earlier good save: the earlier song is still whole and loads.
    monkeypatch.undo()
    tiny_song.save(tmp_path / "song")
    before = (tmp_path / "song" / "manifest.json").read_bytes()
    calls.clear()
    monkeypatch.setattr("musicstems.composition.write_audio", failing_write)
    with pytest.raises(OSError):
        tiny_song.save(tmp_path / "song", overwrite=True)
    assert (tmp_path / "song" / "manifest.json").read_bytes() == before
    assert np.array_equal(Composition.load(tmp_path / "song").mix, tiny_song.mix)


def test_load_of_a_folder_that_is_not_a_song(tmp_path):
    with pytest.raises(MusicStemsError, match="manifest.json"):
        Composition.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(MusicStemsError, match="not valid JSON"):
        Composition.load(tmp_path)


def test_save_into_a_file_path_is_refused(tiny_song, tmp_path):
    target = tmp_path / "file.wav"
    target.write_bytes(b"user data")
    with pytest.raises(MusicStemsError, match="is a file"):
        tiny_song.save(target, overwrite=True)
    assert target.read_bytes() == b"user data"
