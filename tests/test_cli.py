"""The console entry point, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from musicstems import Composition, MusicStemsError, __version__
from musicstems.cli import _build_parser, _settings_from, in_cli_words, main
from musicstems.spec import SETTINGS


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


def test_options_are_the_settings_table():
    # compose offers every setting that has a flag; the demo only those marked for it
    compose_help = _build_parser()._subparsers._group_actions[0].choices["compose"]
    demo_help = _build_parser()._subparsers._group_actions[0].choices["demo"]
    flags = {a.dest: a for a in compose_help._actions}
    demo_flags = {a.dest: a for a in demo_help._actions}
    for setting in SETTINGS:
        if setting.flag is None:
            continue
        assert flags[setting.name].option_strings == [setting.flag]
        assert (setting.name in demo_flags) == (setting.demo or setting.name == "backend")
    # compose collects only the options given (so a song file's settings stand where no flag
    # overrides them) and compose() fills in the table's defaults; its help shows them
    args = _build_parser().parse_args(["compose", "--stem", "a=b", "--out", "x"])
    assert _settings_from(args) == {}
    assert "(default 10.0)" in flags["duration_s"].help
    demo = _build_parser().parse_args(["demo", "--out", "x"])
    assert _settings_from(demo)["duration_s"] == 16 and _settings_from(demo)["bpm"] == 128


def test_every_option_reaches_its_setting():
    # one non-default value per option, so a flag wired to the wrong setting shows
    values = {"style": "lofi", "bpm": 91.0, "key": "Eb minor", "duration_s": 4.0, "seed": 3,
              "backend": "sketch", "model": "org/name", "device": "cpu", "precision": "fp32",
              "guidance_scale": 2.0, "temperature": 0.7, "top_k": 40, "top_p": 0.5,
              "stem_lufs": -22.0, "target_lufs": -16.0, "ceiling_dbfs": -2.0, "align": False,
              "progress": False, "primer": "none", "harmony": "plan", "max_batch": 2,
              "memory_budget_gb": 6.5, "cache": False, "cache_dir": "x/cache"}
    argv = ["compose", "--stem", "a=b", "--out", "x"]
    for setting in SETTINGS:
        if setting.flag is None:
            continue
        argv += [setting.flag] if setting.negate else [setting.flag, str(values[setting.name])]
    assert _settings_from(_build_parser().parse_args(argv)) == \
        {s.name: values[s.name] for s in SETTINGS if s.flag}


@pytest.mark.parametrize("message, arguments, cli", [
    ("duration_s=45.0 is not allowed; pass a finite number in (0, 30].", {"duration_s": 45.0},
     "--duration 45 is not allowed; pass a finite number in (0, 30]."),
    ("key='H minor' is not a key musicstems can read", {"key": "H minor"},
     "--key 'H minor' is not a key musicstems can read"),
    ("target_lufs=-0.5 is above ceiling_dbfs=-1; Lower target_lufs or raise ceiling_dbfs.",
     {"target_lufs": -0.5, "ceiling_dbfs": -1.0},
     "--target-lufs -0.5 is above --ceiling -1; Lower --target-lufs or raise --ceiling."),
    ("align=False and progress=False", {"align": False, "progress": False},
     "--no-align and --quiet"),
    # settings the error does not name stay as written; so do texts without arguments
    ("model='x' is not a folder; bpm=3 too", {"model": "x"},
     "--model x is not a folder; bpm=3 too"),
    ("stems is empty; give a key", {}, "stems is empty; give a key"),
])
def test_errors_in_cli_words(message, arguments, cli):
    assert in_cli_words(MusicStemsError(message, arguments=arguments)) == cli


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
    (["compose", "--stem", "drums=kick", "--bpm", "500", "--out", "x"], "--bpm 500 is not"),
    (["compose", "--stem", "drums=kick", "--key", "Q", "--out", "x"], "--key Q is not"),
    (["compose", "--stem", "drums=kick", "--duration", "450", "--out", "x"],
     "--duration 450 is not"),
    (["compose", "--stem", "drums=kick", "--target-lufs", "-0.5", "--out", "x"],
     "--target-lufs -0.5 is above --ceiling -1"),
    (["compose", "--stem", "drums=kick", "--precision", "fp16", "--device", "cpu", "--out",
      "x"], "--precision fp16 needs a GPU and --device cpu"),
    (["compose", "--stem", "../up=kick", "--out", "x"], "'../up'"),
    (["compose", "--stem", "drums=kick", "--gain", "bass=-3", "--out", "x"], "--gain"),
    (["compose", "--stem", "drums=kick", "--model", "/no/such/dir", "--out", "x"],
     "not a folder"),
    # a misspelled flag: argparse's complaint, with the flag meant
    (["compose", "--stem", "drums=kick", "--duraton", "5", "--out", "x"],
     "did you mean --duration (for --duraton)?"),
    (["compose", "--stem", "drums=kick", "--ovewrite", "--target_lufs=-16", "--out", "x"],
     "did you mean --overwrite (for --ovewrite), --target-lufs (for --target_lufs)?"),
    (["compose", "--stem", "drums=kick", "--zzzz", "--out", "x"], "--zzzz (see"),
])
def test_bad_input_exits_nonzero_with_one_line(args, needle, tmp_path):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("musicstems: error:")
    assert needle in lines[0]


_MODULES_AFTER_MAIN = """
import sys
from musicstems.cli import main
code = main(sys.argv[1:])
print(code, *sorted(name for name in ("torch", "transformers") if name in sys.modules))
"""


def _main_in_fresh_process(*args):
    result = subprocess.run([sys.executable, "-c", _MODULES_AFTER_MAIN, *args],
                            capture_output=True, text=True)
    return result.stdout.splitlines()[-1].split()  # the probe's line, after the CLI's own


def test_bad_input_is_refused_before_torch_loads(tiny_model, tmp_path):
    # parsing, validation and the error path, in a fresh interpreter: no torch, no transformers
    for bad in (["--bpm", "500"], ["--duration", "450"], ["--precision", "fp16", "--device",
                                                         "cpu"]):
        assert _main_in_fresh_process("compose", "--stem", "drums=kick", *bad, "--model",
                                      tiny_model, "--out", str(tmp_path / "x")) == ["2"]
    # control: the same probe on a valid command sees both load
    assert _main_in_fresh_process("compose", "--stem", "drums=kick", "--duration", "0.2",
                                  "--seed", "1", "--no-align", "--quiet", "--model", tiny_model,
                                  "--out", str(tmp_path / "ok")) == ["0", "torch", "transformers"]


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
