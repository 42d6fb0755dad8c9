"""Every bad input is refused by the one validation door, before any model loads, with a message
that names the argument and the value."""

from __future__ import annotations

import math

import pytest

import musicstems.pipeline as pipeline_module
from musicstems import MusicStemsError, Stem, compose
from musicstems.spec import build_prompt, parse_key, validate_compose_args


@pytest.fixture
def no_backend(monkeypatch):
    """Fail loudly if validation lets anything through to generation."""
    def forbidden(name):
        raise AssertionError(f"backend {name!r} was reached: validation let a bad input pass")
    monkeypatch.setattr(pipeline_module, "get_backend", forbidden)


GOOD = {"drums": "punchy techno drums"}


@pytest.mark.parametrize("stems, needle", [
    ({}, "stems is empty"),
    ([], "stems is empty"),
    ("drums", "not a dict or list"),
    ({"../x": "drums"}, "'../x'"),
    ({"a/b": "drums"}, "'a/b'"),
    ({"": "drums"}, "''"),
    ({"con": "drums"}, "'con'"),
    ({"NUL": "drums"}, "'NUL'"),
    ({".hidden": "drums"}, "'.hidden'"),
    ({"drums": ""}, "prompt ''"),
    ({"drums": "   "}, "prompt '   '"),
    ({"drums": None}, "prompt None"),
    ([Stem("drums", "a"), Stem("Drums", "b")], "given twice"),
    ([Stem("drums", "a", pan=2.0)], "pan"),
    ([Stem("drums", "a", gain_db=math.nan)], "gain_db"),
    ([("drums", "a")], "musicstems.Stem"),
])
def test_bad_stems(no_backend, stems, needle):
    with pytest.raises(MusicStemsError) as err:
        compose(stems)
    assert needle in str(err.value)


@pytest.mark.parametrize("kwargs, needle", [
    ({"duration_s": 0}, "duration_s=0"),
    ({"duration_s": -1}, "duration_s=-1"),
    ({"duration_s": math.nan}, "duration_s=nan"),
    ({"duration_s": math.inf}, "duration_s=inf"),
    ({"duration_s": 31}, "long-form"),
    ({"duration_s": "10"}, "duration_s='10'"),
    ({"bpm": 10}, "bpm=10"),
    ({"bpm": 301}, "bpm=301"),
    ({"bpm": math.nan}, "bpm=nan"),
    ({"key": "H minor"}, "key='H minor'"),
    ({"key": "A dorianish"}, "key='A dorianish'"),
    ({"key": 5}, "key=5"),
    ({"model": "/no/such/folder"}, "not a folder"),
    ({"model": "./missing-model"}, "not a folder"),
    ({"guidance_scale": 0.5}, "guidance_scale=0.5"),
    ({"temperature": 0}, "temperature=0"),
    ({"top_k": -1}, "top_k=-1"),
    ({"top_p": 1.5}, "top_p=1.5"),
    ({"seed": -3}, "seed=-3"),
    ({"seed": 1.5}, "seed=1.5"),
    ({"target_lufs": 3}, "target_lufs=3"),
    ({"target_lufs": -0.5, "ceiling_dbfs": -1}, "above ceiling_dbfs"),
    ({"ceiling_dbfs": 1}, "ceiling_dbfs=1"),
    ({"backend": "nope"}, "backend='nope'"),
    ({"device": "tpu"}, "device='tpu'"),
    ({"precision": "fp8"}, "precision='fp8'"),
    ({"precision": "fp16", "device": "cpu"}, "fp16"),
    ({"precision": "int8", "device": "cuda"}, "int8"),
    ({"style": 3}, "style=3"),
])
def test_bad_arguments(no_backend, kwargs, needle):
    with pytest.raises(MusicStemsError) as err:
        compose(GOOD, **kwargs)
    assert needle in str(err.value)


def test_model_folder_without_config(no_backend, tmp_path):
    with pytest.raises(MusicStemsError, match="config.json"):
        compose(GOOD, model=str(tmp_path))


def test_sketch_allows_long_songs_musicgen_does_not(no_backend):
    spec = validate_compose_args(GOOD, backend="sketch", duration_s=120)
    assert spec.duration_s == 120
    with pytest.raises(MusicStemsError, match="30"):
        validate_compose_args(GOOD, duration_s=120)


@pytest.mark.parametrize("text, tonic, mode", [
    ("A minor", 9, "minor"), ("Am", 9, "minor"), ("a min", 9, "minor"),
    ("F# major", 6, "major"), ("Gb", 6, "major"), ("Bb minor", 10, "minor"),
    ("C", 0, "major"), ("Eb min", 3, "minor"), ("c#m", 1, "minor"), ("B♭ major", 10, "major"),
])
def test_parse_key(text, tonic, mode):
    key = parse_key(text)
    assert (key.tonic, key.mode) == (tonic, mode)
    assert parse_key(key.name) == key  # the display name parses back to the same key


def test_relative_keys():
    assert parse_key("A minor").relative == parse_key("C major")
    assert parse_key("Eb major").relative == parse_key("C minor")


def test_prompt_carries_shared_context():
    text = build_prompt("deep acid bassline", style="dark techno", bpm=128,
                        key=parse_key("A minor"))
    assert text == "deep acid bassline, dark techno, 128 bpm, in A minor"
    assert build_prompt("pads", style=None, bpm=None, key=None) == "pads"


def test_seed_is_drawn_and_recorded():
    first = validate_compose_args(GOOD)
    second = validate_compose_args(GOOD)
    assert 0 <= first.seed < 2**32
    assert first.seed != second.seed  # 1 in 4 billion chance of a false failure
