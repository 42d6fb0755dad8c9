"""Song files (TOML) and ``musicstems compose song.toml``: the happy path gives exactly the song
``compose`` gives for the same stems and settings, and every mistake is refused naming the file,
the key, the value and the fix, before any generation."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from musicstems import MusicStemsError, Stem, compose
from musicstems.songfile import compose_file, read_song_file

SONG = '''
style = "dark berlin techno"
bpm = 128
key = "A minor"
duration_s = 4
seed = 7
backend = "sketch"

[stems]
drums = "punchy techno drums"

[stems.bass]
prompt = "deep rolling acid bassline"
gain_db = -2
pan = 0.25
seed = 9
'''


def _write(folder: Path, text: str, name: str = "song.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


def test_song_file_gives_the_song_compose_gives(tmp_path):
    stems, settings = read_song_file(_write(tmp_path, SONG))
    assert stems == [Stem("drums", "punchy techno drums"),
                     Stem("bass", "deep rolling acid bassline", -2, 0.25, None, 9)]
    assert settings == {"style": "dark berlin techno", "bpm": 128, "key": "A minor",
                        "duration_s": 4, "seed": 7, "backend": "sketch"}
    from_file = _quiet(compose_file, tmp_path / "song.toml", progress=False)
    direct = _quiet(compose, stems, progress=False, **settings)
    assert np.array_equal(from_file.mix, direct.mix)
    assert from_file.mix.shape[-1] == 4 * from_file.sample_rate  # exact to the sample
    assert from_file.manifest["stems"]["bass"]["seed"] == 9
    # the control: another seed in the file gives another song
    other = _quiet(compose_file, _write(tmp_path, SONG.replace("seed = 7", "seed = 8"), "b.toml"),
                   progress=False)
    assert not np.array_equal(other.mix, from_file.mix)


def test_settings_given_override_the_file(tmp_path):
    song = _quiet(compose_file, _write(tmp_path, SONG), duration_s=2, progress=False)
    assert song.mix.shape[-1] == 2 * song.sample_rate


def test_the_example_song_file_is_valid():
    from musicstems.spec import validate_compose_args

    stems, settings = read_song_file(Path(__file__).parent.parent / "songs" / "techno.toml")
    spec = validate_compose_args(stems, **settings)
    assert spec.names == ["drums", "pads", "bass", "lead"] and spec.bpm == 128


@pytest.mark.parametrize("text, needles", [
    (SONG.replace("bpm = 128", "bmp = 128"), ["song.toml", "bmp = 128", "did you mean 'bpm'"]),
    (SONG.replace("gain_db = -2", "gain = -2"), ["stems.bass.gain = -2",
                                                 "did you mean 'gain_db'"]),
    (SONG.replace('prompt = "deep rolling acid bassline"', ""), ["[stems.bass] has no prompt"]),
    (SONG.replace("bpm = 128", "bpm = 900"), ["song.toml", "bpm=900", "300"]),
    (SONG.replace('key = "A minor"', 'key = "H minor"'), ["song.toml", "key="]),
    (SONG.replace("bpm = 128", "bpm = "), ["song.toml", "not valid TOML"]),
    (SONG.split("[stems]")[0], ["song.toml", "no [stems] table"]),
    (SONG.replace('drums = "punchy techno drums"', "drums = 3"), ["stems.drums = 3"]),
])
def test_mistakes_name_the_file_key_value_and_fix(tmp_path, text, needles):
    with pytest.raises(MusicStemsError) as info:
        compose_file(_write(tmp_path, text), progress=False)
    for needle in needles:
        assert needle in str(info.value)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(MusicStemsError, match="cannot be read"):
        read_song_file(tmp_path / "nothing.toml")


def test_cli_compose_song_file_end_to_end(tmp_path, capsys):
    from musicstems import Composition
    from musicstems.cli import main

    path = _write(tmp_path, SONG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["compose", str(path), "--duration", "3", "--quiet",
                     "--out", str(tmp_path / "out")]) == 0
    song = Composition.load(tmp_path / "out")
    assert song.mix.shape[-1] == 3 * song.sample_rate  # the flag given overrides the file
    assert song.manifest["settings"]["bpm"] == 128  # the file's, where no flag was given
    assert "wrote" in capsys.readouterr().out
    bad = _write(tmp_path, SONG.replace("bpm = 128", "bmp = 128"), "bad.toml")
    assert main(["compose", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'bpm'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    assert main(["compose", str(path), "--stem", "x=y", "--out", str(tmp_path / "x")]) == 2
    assert "drop --stem" in capsys.readouterr().err
