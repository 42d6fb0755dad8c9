"""The console entry point, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from musicstems import Composition, __version__
from musicstems.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "musicstems", *args], capture_output=True,
                          text=True)


def test_version_and_help():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"musicstems {__version__}"
    result = run_cli("compose", "--help")
    assert result.returncode == 0
    for option in ("--stem", "--style", "--bpm", "--key", "--duration", "--seed", "--out"):
        assert option in result.stdout


def test_compose_end_to_end(tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["compose", "--stem", "drums=punchy techno drums", "--stem",
                 "bass=deep acid bassline", "--pan", "bass=-0.3", "--gain", "drums=-2",
                 "--style", "dark berlin techno", "--bpm", "128", "--key", "A minor",
                 "--duration", "1.5", "--seed", "7", "--model", tiny_model, "--no-align",
                 "--quiet", "--out", str(out)])
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    song = Composition.load(out)
    assert song.mix.shape == (2, 48000)
    assert set(song.stems) == {"drums", "bass"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 7
    assert manifest["stems"]["bass"]["pan"] == -0.3
    assert manifest["stems"]["drums"]["gain_db"] == -2.0
    assert manifest["stems"]["bass"]["prompt_sent"] == \
        "deep acid bassline, dark berlin techno, 128 bpm, in A minor"
    # The same command again reproduces the same audio (into a new folder).
    assert main(["compose", "--stem", "drums=punchy techno drums", "--stem",
                 "bass=deep acid bassline", "--pan", "bass=-0.3", "--gain", "drums=-2",
                 "--style", "dark berlin techno", "--bpm", "128", "--key", "A minor",
                 "--duration", "1.5", "--seed", "7", "--model", tiny_model, "--no-align",
                 "--quiet", "--out", str(tmp_path / "again")]) == 0
    assert np.array_equal(Composition.load(tmp_path / "again").mix, song.mix)


@pytest.mark.parametrize("args, needle", [
    (["compose", "--out", "x"], "no --stem"),
    (["compose", "--stem", "drums", "--out", "x"], "NAME=VALUE"),
    (["compose", "--stem", "drums=kick", "--bpm", "500", "--out", "x"], "bpm=500"),
    (["compose", "--stem", "drums=kick", "--key", "Q", "--out", "x"], "key='Q'"),
    (["compose", "--stem", "../up=kick", "--out", "x"], "'../up'"),
    (["compose", "--stem", "drums=kick", "--gain", "bass=-3", "--out", "x"], "--gain"),
    (["compose", "--stem", "drums=kick", "--model", "/no/such/dir", "--out", "x"],
     "not a folder"),
])
def test_bad_input_exits_nonzero_with_one_line(args, needle, tmp_path):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("musicstems: error:")
    assert needle in lines[0]
    assert "torch" not in result.stderr  # refused before any model code ran


def test_demo_works_offline_with_an_empty_cache(tmp_path):
    # An empty Hugging Face cache and no network: the demo must fall back to the sketch
    # backend, say so, and still write a whole song.
    import os

    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "musicstems", "demo", "--out", str(out),
                             "--duration", "4", "--quiet"], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert "sketch backend" in result.stderr and "musicgen-small" in result.stderr
    song = Composition.load(out)
    assert set(song.stems) == {"drums", "bass", "pads", "lead"}
    assert song.mix.shape[-1] == 4 * song.sample_rate
    assert (out / "song.mid").is_file()
    from musicstems.loudness import integrated_lufs
    assert integrated_lufs(song.mix, song.sample_rate) == pytest.approx(-14.0, abs=0.5)
