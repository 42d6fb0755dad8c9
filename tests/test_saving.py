"""Nothing lost: a save that would fail is refused before generation, a save is all or nothing,
and overwrite=True replaces the earlier song completely without touching the user's files."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

import musicstems.export as export_module
import musicstems.pipeline as pipeline_module
from musicstems import Composition, MusicStemsError, SaveTarget, compose
from musicstems.cli import main

QUICK = dict(backend="sketch", duration_s=0.5, seed=3, bpm=120, key="A minor", progress=False)


@pytest.fixture(scope="module")
def two_stems():
    return compose({"drums": "techno drums", "bass": "acid bass"}, **QUICK)


@pytest.fixture(scope="module")
def one_stem():
    return compose({"drums": "techno drums"}, **{**QUICK, "seed": 4})


class Generated(Exception):
    """Raised where generation would start: the save target passed the door."""


@pytest.fixture
def no_generation(monkeypatch):
    def generation(name):
        raise Generated(name)
    monkeypatch.setattr(pipeline_module, "get_backend", generation)


def files_in(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def song_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes")
    return folder


@pytest.mark.parametrize("make, save, needle", [
    (song_folder, lambda f: f, "is not empty; pass overwrite=True"),
    (lambda f: f.write_bytes(b"user data"), lambda f: f, "is a file"),
    (lambda f: f.parent.joinpath("file").write_bytes(b"x"),
     lambda f: f.parent / "file" / "song", "is a file"),
    (None, lambda f: SaveTarget(f, format="ogg"), "format='ogg'"),
    (None, lambda f: SaveTarget(f, overwrite="yes"), "overwrite='yes'"),
    (None, lambda f: SaveTarget(f, midi=1), "midi=1"),
    (None, lambda f: 42, "save=42"),
    (None, lambda f: SaveTarget(str(f) + "\x00"), "not a usable path"),
    (None, lambda f: SaveTarget(b"out"), "not a folder path"),
    (lambda f: song_folder(f).joinpath("mix.wav").write_bytes(b"my own mix"),
     lambda f: SaveTarget(f, overwrite=True), "mix.wav, which no musicstems manifest"),
    (lambda f: song_folder(f).joinpath("manifest.json").write_text("{mine"),
     lambda f: SaveTarget(f, overwrite=True), "manifest.json musicstems cannot read"),
])
def test_a_save_that_would_fail_is_refused_before_generation(tmp_path, no_generation, make,
                                                             save, needle):
    target = tmp_path / "song"
    if make is not None:
        make(target)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(MusicStemsError, match=needle) as refused:
        compose({"drums": "techno drums"}, **QUICK, save=save(target))
    assert refused.value.argument in ("directory", "format", "overwrite", "midi", "save")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_the_door_lets_a_good_target_through_to_generation(tmp_path, no_generation):
    # control for the refusals above: the same call with a usable folder reaches generation
    song_folder(tmp_path / "song")
    for save in (tmp_path / "new", SaveTarget(tmp_path / "song", overwrite=True),
                 SaveTarget(tmp_path / "flac", format="flac", midi=True)):
        with pytest.raises(Generated):
            compose({"drums": "techno drums"}, **QUICK, save=save)


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux's read-only /sys")
def test_an_unwritable_folder_is_refused_before_generation(no_generation):
    # /sys refuses new files even to root, for whom os.access always says yes
    with pytest.raises(MusicStemsError, match="cannot be written"):
        compose({"drums": "techno drums"}, **QUICK, save="/sys/musicstems-song")


def test_a_disk_without_room_is_refused_before_generation(tmp_path, no_generation, monkeypatch):
    free = 3_000_000  # a 30 s stereo float song of 4 stems needs ~38 MB
    real = export_module.shutil.disk_usage
    monkeypatch.setattr(export_module.shutil, "disk_usage",
                        lambda path: real(path)._replace(free=free))
    with pytest.raises(MusicStemsError, match=r"3\.0 MB free and the song needs about 3"):
        compose({n: "x" for n in ("a", "b", "c", "d")}, **{**QUICK, "duration_s": 30},
                save=tmp_path / "song")
    # control: a short song fits in the same free space
    with pytest.raises(Generated):
        compose({"drums": "techno drums"}, **QUICK, save=tmp_path / "song")
    assert not (tmp_path / "song").exists()


@pytest.mark.parametrize("fmt, low, high", [("wav", 1.0, 1.3), ("flac", 1.0, 6.0),
                                            ("mp3", 1.0, 6.0)])
def test_the_space_estimate_is_an_upper_bound_of_what_is_written(tmp_path, two_stems, fmt, low,
                                                                 high):
    folder = two_stems.save(tmp_path / fmt, format=fmt)
    written = sum((folder / f).stat().st_size for f in files_in(folder))
    # the estimate compose makes before generation: stereo at 32 kHz, from the duration alone
    estimate = export_module.estimate_song_bytes(fmt, [2, 2, 2], round(0.5 * 32000), 32000)
    # the fixed allowance for manifest and MIDI dominates a 0.5 s song: compare the audio
    audio_estimate = estimate - 2 * export_module._SMALL_FILE_BYTES
    audio_written = written - (folder / "manifest.json").stat().st_size
    assert low <= audio_estimate / audio_written <= high
    assert estimate >= written


def test_compose_saves_what_it_returns(tmp_path):
    song = compose({"drums": "techno drums"}, **QUICK,
                   save=SaveTarget(tmp_path / "song", format="wav", midi=True))
    back = Composition.load(tmp_path / "song")
    assert np.array_equal(back.mix, song.mix) and back.seed == song.seed
    assert files_in(tmp_path / "song") == {"mix.wav", "stems/drums.wav", "song.mid",
                                           "manifest.json"}


def test_overwrite_replaces_the_earlier_song_completely(tmp_path, two_stems, one_stem):
    folder = song_folder(tmp_path / "song")
    two_stems.save(folder, overwrite=True, midi=True)
    (folder / "stems" / "my_take.wav").write_bytes(b"the user's own take")
    assert {"stems/bass.wav", "song.mid"} <= files_in(folder)  # control: the old song is there
    one_stem.save(folder, overwrite=True)
    assert files_in(folder) == {"mix.wav", "stems/drums.wav", "manifest.json", "notes.txt",
                                "stems/my_take.wav"}
    assert (folder / "notes.txt").read_text() == "my notes"
    assert (folder / "stems" / "my_take.wav").read_bytes() == b"the user's own take"
    back = Composition.load(folder)
    assert list(back.stems) == ["drums"] and np.array_equal(back.mix, one_stem.mix)
    # another format: the old format's files go too
    one_stem.save(folder, overwrite=True, format="flac")
    assert files_in(folder) == {"mix.flac", "stems/drums.flac", "manifest.json", "notes.txt",
                                "stems/my_take.wav"}
    assert not list(tmp_path.glob(".song.*"))  # no staging or backup folder left behind


def test_an_old_manifest_cannot_make_overwrite_delete_other_files(tmp_path, one_stem):
    folder = tmp_path / "song"
    one_stem.save(folder)
    (tmp_path / "outside.txt").write_text("keep")
    (folder / "notes.txt").write_text("keep")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["stems"] = {"drums": "stems/drums.wav", "x": "../outside.txt",
                                  "y": "notes.txt", "z": "/etc/hostname"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    one_stem.save(folder, overwrite=True, format="flac")
    assert (tmp_path / "outside.txt").read_text() == "keep"
    assert (folder / "notes.txt").read_text() == "keep"
    assert files_in(folder) == {"mix.flac", "stems/drums.flac", "manifest.json", "notes.txt"}


def _fail_on_replace(monkeypatch, number: int, action):
    """Make the ``number``-th os.replace of a save call ``action`` first."""
    real, calls = os.replace, []

    def replace(source, destination):
        calls.append(destination)
        if len(calls) == number:
            action()
        return real(source, destination)
    monkeypatch.setattr(export_module.os, "replace", replace)
    return calls


def _raise_disk_error():
    raise OSError(28, "No space left on device")


def test_a_failure_while_moving_files_in_puts_the_old_song_back(tmp_path, two_stems, one_stem,
                                                                monkeypatch):
    folder = song_folder(tmp_path / "song")
    two_stems.save(folder, overwrite=True)
    before = {f: (folder / f).read_bytes() for f in files_in(folder)}
    # the old song has 4 files (moved aside), the new one 3: fail while moving the new ones in
    _fail_on_replace(monkeypatch, 6, _raise_disk_error)
    with pytest.raises(OSError, match="No space"):
        one_stem.save(folder, overwrite=True)
    monkeypatch.undo()
    assert {f: (folder / f).read_bytes() for f in files_in(folder)} == before
    assert list(Composition.load(folder).stems) == ["drums", "bass"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]  # no staging, no backup


@pytest.mark.skipif(sys.platform == "win32", reason="sends itself SIGINT")
def test_ctrl_c_while_moving_files_in_is_held_until_the_new_song_is_whole(tmp_path, two_stems,
                                                                          one_stem, monkeypatch):
    folder = song_folder(tmp_path / "song")
    two_stems.save(folder, overwrite=True)
    _fail_on_replace(monkeypatch, 3, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        one_stem.save(folder, overwrite=True)
    monkeypatch.undo()
    back = Composition.load(folder)  # the interrupt came after the last file was in place
    assert list(back.stems) == ["drums"] and np.array_equal(back.mix, one_stem.mix)
    assert files_in(folder) == {"mix.wav", "stems/drums.wav", "manifest.json", "notes.txt"}


@pytest.mark.skipif(sys.platform == "win32", reason="sends itself SIGINT")
def test_ctrl_c_while_writing_leaves_the_old_song(tmp_path, two_stems, one_stem, monkeypatch):
    folder = song_folder(tmp_path / "song")
    two_stems.save(folder, overwrite=True)
    before = {f: (folder / f).read_bytes() for f in files_in(folder)}
    real_write = export_module.write_audio

    def interrupted_write(path, *args, **kwargs):
        real_write(path, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr("musicstems.composition.write_audio", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        one_stem.save(folder, overwrite=True)
    assert {f: (folder / f).read_bytes() for f in files_in(folder)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]


def test_a_failed_save_removes_the_folders_it_made(tmp_path, one_stem, monkeypatch):
    def full_disk(path, *args, **kwargs):
        _raise_disk_error()
    monkeypatch.setattr("musicstems.composition.write_audio", full_disk)
    with pytest.raises(OSError):
        one_stem.save(tmp_path / "a" / "b" / "song")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [
    ["compose", "--stem", "drums=techno drums", "--backend", "sketch", "--duration", "0.5"],
    ["demo", "--backend", "sketch"],
])
def test_cli_refuses_a_non_empty_out_before_generating(tmp_path, no_generation, capsys,
                                                       command):
    folder = song_folder(tmp_path / "song")
    assert main([*command, "--quiet", "--out", str(folder)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "is not empty; pass --overwrite" in lines[0]
    assert f"--out {folder}" in lines[0]
    assert files_in(folder) == {"notes.txt"}
    with pytest.raises(Generated):  # control: --overwrite passes the door
        main([*command, "--quiet", "--overwrite", "--out", str(folder)])


def test_cli_compose_over_an_earlier_song(tmp_path, capsys):
    folder = tmp_path / "song"
    base = ["compose", "--backend", "sketch", "--duration", "0.5", "--seed", "3", "--quiet",
            "--out", str(folder)]
    assert main([*base, "--stem", "drums=techno drums", "--stem", "bass=acid bass"]) == 0
    assert main([*base, "--stem", "drums=techno drums", "--overwrite"]) == 0
    assert files_in(folder) == {"mix.wav", "stems/drums.wav", "manifest.json"}
