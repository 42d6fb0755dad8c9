"""Every bad input is refused by the one validation door, before any model loads, with a message
that names the argument and the value."""

from __future__ import annotations

import dataclasses
import inspect
import math
import re

import numpy as np
import pytest

import musicstems.pipeline as pipeline_module
from musicstems import MusicStemsError, SongSpec, Stem, compose
from musicstems.spec import SETTINGS, build_prompt, parse_key, validate_compose_args


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
    ({"duration_s": 301}, "at most 300 s"),
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
    # the error says which argument is at fault, for front ends that spell it otherwise
    assert err.value.argument in kwargs
    assert err.value.arguments[err.value.argument] is not None


def test_a_misspelled_setting_is_refused_with_the_closest_name():
    with pytest.raises(MusicStemsError) as err:
        validate_compose_args(GOOD, duraton_s=25, backend="sketch")
    assert "duraton_s=25" in str(err.value) and "did you mean duration_s?" in str(err.value)
    assert err.value.argument == "duraton_s"
    with pytest.raises(MusicStemsError, match="the settings are style, bpm, key"):
        validate_compose_args(GOOD, xyzzy=1)
    # control: spelled right, the same value is taken
    assert validate_compose_args(GOOD, duration_s=25, backend="sketch").duration_s == 25.0


def _signature_drift(function) -> list[str]:
    """How ``function``'s keyword-only settings differ from the table (empty: they agree)."""
    params = [p for p in inspect.signature(function).parameters.values()
              if p.kind is p.KEYWORD_ONLY and p.name not in ("callback", "save")]
    found = [(p.name, p.default, p.annotation) for p in params]
    wanted = [(s.name, s.default, s.annotation) for s in SETTINGS]
    return [f"signature has {f}, table has {w}" for f, w in zip(found, wanted) if f != w] + \
        ([f"signature has {len(found)} settings, table {len(wanted)}"]
         if len(found) != len(wanted) else [])


def test_compose_signature_is_the_table():
    assert _signature_drift(compose) == []
    # control: a signature that drifted by one default is caught
    source = inspect.getsource(compose).split('"""')[0].replace("top_k: int = 250",
                                                                  "top_k: int = 50")
    namespace = dict(vars(pipeline_module))
    exec(source + "    pass\n", namespace)
    assert _signature_drift(namespace["compose"]) == [
        "signature has ('top_k', 50, 'int'), table has ('top_k', 250, 'int')"]


def _documented(function) -> list[str]:
    """The names the numpydoc Parameters section of ``function`` documents, in order."""
    section = function.__doc__.split("Parameters\n    ----------\n")[1].split("\n\n")[0]
    heads = re.findall(r"^    (\w[\w, ]*?) :", section, flags=re.MULTILINE)
    return [name.strip() for head in heads for name in head.split(",")]


def test_compose_docstring_documents_every_setting_in_order():
    assert _documented(compose) == ["stems", *(s.name for s in SETTINGS), "callback", "save"]


def test_songspec_has_one_field_per_setting():
    names = [f.name for f in dataclasses.fields(SongSpec)]
    assert names == ["stems", *(s.name for s in SETTINGS), "prompts"]


def test_settings_checked_after_others_read_only_independent_ones():
    independent = {s.name for s in SETTINGS if not s.after}
    for setting in SETTINGS:
        assert set(setting.after) <= independent, setting.name


def test_defaults_come_from_the_table_and_pass_their_own_checks():
    spec = validate_compose_args(GOOD, seed=5)
    for setting in SETTINGS:
        if setting.name != "seed":
            assert getattr(spec, setting.name) == setting.default, setting.name
    # every default is also a value its checker accepts when given explicitly
    explicit = validate_compose_args(GOOD, **{s.name: s.default for s in SETTINGS if
                                              s.name != "seed"}, seed=5)
    assert explicit == spec


def test_manifest_settings_are_the_table_and_json_plain():
    import json

    spec = validate_compose_args(GOOD, key="F#m", bpm=128, seed=5)
    settings = spec.settings()
    assert list(settings) == [s.name for s in SETTINGS if s.in_manifest]
    assert settings["key"] == "F# minor" and settings["bpm"] == 128.0
    assert json.loads(json.dumps(settings)) == settings


def test_model_folder_without_config(no_backend, tmp_path):
    with pytest.raises(MusicStemsError, match="config.json"):
        compose(GOOD, model=str(tmp_path))


def test_sketch_allows_long_songs_musicgen_does_not(no_backend):
    spec = validate_compose_args(GOOD, backend="sketch", duration_s=450)
    assert spec.duration_s == 450
    assert validate_compose_args(GOOD, duration_s=120).duration_s == 120  # past one window
    with pytest.raises(MusicStemsError, match="at most 300 s"):
        validate_compose_args(GOOD, duration_s=450)


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
    # recorded: the drawn seed is in the manifest, and composing with it gives the same song
    song = compose(GOOD, backend="sketch", duration_s=1.0, progress=False)
    assert song.manifest["seed"] == song.seed == song.manifest["settings"]["seed"]
    again = compose(GOOD, backend="sketch", duration_s=1.0, seed=song.seed, progress=False)
    assert np.array_equal(again.mix, song.mix)


def test_prompts_are_built_once_from_the_plans_tempo_and_key():
    spec = validate_compose_args(GOOD, style="lofi", backend="sketch", duration_s=1.0, seed=3)
    assert spec.prompts == {}  # validation knows only the user's tempo and key, not the plan's
    song = compose(GOOD, style="lofi", backend="sketch", duration_s=1.0, seed=3,
                   progress=False)
    plan = song.plan
    assert spec.bpm is None and spec.key is None  # left open: the plan fills them in
    assert song.prompts == {"drums": f"punchy techno drums, lofi, {plan.bpm:g} bpm, in "
                                     f"{plan.key.name}"}
    for name, entry in song.manifest["stems"].items():
        assert entry["prompt_sent"] == song.prompts[name]
