"""Fuzzing the doors: arbitrary values (texts with control characters and lone surrogates, NaN,
huge and negative numbers, nested junk, arrays of any shape and dtype) thrown at every public
function and the CLI. The only allowed failure is MusicStemsError (the CLI: exit 2 and one
line); nothing is written on a failure; no refusal takes a second.

Where a call passes the door, ``compose`` and the CLI stop at :class:`Generated`, raised where
the plan would be made (the first work), so every case stays cheap; the real pipeline is
fuzzed on its own, with in-range values, by ``test_compose_accepted_values_give_finite_audio``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import musicstems.pipeline as pipeline_module
from musicstems import Composition, MusicStemsError, SaveTarget, analyze, compose
from musicstems.cli import main
from musicstems.loudness import master, normalize_loudness
from musicstems.mix import mix_stems
from musicstems.spec import SETTINGS

FUZZ = settings(max_examples=80, deadline=1000,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
QUICK = dict(backend="sketch", duration_s=0.05, seed=1, progress=False)

NASTY_TEXT = st.sampled_from(["", " ", "\x00", "a\x00b", "\n", "\r\n\x1b[31m", "\udc80",
                              "\ud800", "../../etc", "~nosuchuser/x", "con", "NUL", "é" * 300,
                              "A minor\x00", "nan", "inf", "-1e308", "1e400", "0x10", "١٢٨"])
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308, 5e-324]),
    st.integers(min_value=-10**40, max_value=10**40), st.just(2**32), st.just(-1))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=20), NASTY_TEXT,
                    st.binary(max_size=8), st.complex_numbers(allow_nan=True),
                    st.just(object()), st.just(print))
JUNK = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.tuples(inner, inner),
    st.dictionaries(st.one_of(st.text(max_size=5), NASTY_TEXT), inner, max_size=3)),
    max_leaves=6)

DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int16, np.int32, np.uint8,
                          np.bool_, np.complex64])
ARRAYS = hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40))
# 5 channels are the most BS.1770 weighs (and pyloudnorm measures): 6 must be refused
GOOD_AUDIO = hnp.arrays(np.float32, st.sampled_from([(1, 64), (2, 64), (64,), (5, 64),
                                                     (6, 64)]),
                        elements=st.floats(-2, 2, width=32))
AUDIO = st.one_of(ARRAYS, GOOD_AUDIO, JUNK)
RATES = st.one_of(st.sampled_from([8000, 32000, 44100, 48000, np.int64(32000)]), JUNK)
# in range often enough that the work behind the door runs too, not only the refusals
LUFS = st.one_of(st.floats(-70, 0), NUMBERS, JUNK)
CEILINGS = st.one_of(st.floats(-20, 0), NUMBERS, JUNK)


@pytest.fixture(scope="module", autouse=True)
def warm():
    """Import and run each door once, so the one-second deadline measures refusals, not the
    first import of scipy, pyloudnorm or soundfile."""
    audio = np.full((2, 3200), 0.1, np.float32)
    analyze(master(normalize_loudness(audio, 32000, target_lufs=-20)[0], 32000)[0], 32000)
    mix_stems({"a": audio}, 32000)
    compose({"drums": "techno drums"}, **QUICK)


class Generated(Exception):
    """Raised where the plan would be made: the call passed every check of the door."""


@pytest.fixture
def stop_at_work(monkeypatch):
    def make_plan(spec):
        raise Generated
    monkeypatch.setattr(pipeline_module, "make_plan", make_plan)


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    """An empty working folder: junk relative paths land here, and it must stay empty."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def nothing_written(folder: Path) -> None:
    assert list(folder.iterdir()) == []


def assert_finite_audio(audio) -> None:
    assert isinstance(audio, np.ndarray) and audio.dtype == np.float32
    assert audio.ndim == 2 and np.isfinite(audio).all()


# -- compose ---------------------------------------------------------------------------------

ARGUMENTS = [s.name for s in SETTINGS] + ["callback", "save"]


@FUZZ
@given(name=st.sampled_from(ARGUMENTS), value=st.one_of(JUNK, NUMBERS, NASTY_TEXT),
       backend=st.sampled_from(["sketch", "musicgen"]))  # only MusicGen's door reads model
def test_compose_refuses_junk_at_the_door(stop_at_work, empty_cwd, name, value, backend):
    try:
        compose({"drums": "techno drums"}, **{**QUICK, "backend": backend, name: value})
    except MusicStemsError as error:
        assert str(error)
        event("refused")
    except Generated:
        event("passed the door")
    nothing_written(empty_cwd)


@FUZZ
@given(stems=st.one_of(JUNK, st.dictionaries(st.one_of(st.text(max_size=70), NASTY_TEXT),
                                             st.one_of(st.text(max_size=20), JUNK),
                                             max_size=3)))
def test_compose_refuses_junk_stems(stop_at_work, empty_cwd, stems):
    try:
        compose(stems, **QUICK)
    except MusicStemsError as error:
        assert str(error)
    except Generated:
        pass
    nothing_written(empty_cwd)


@settings(max_examples=25, deadline=None)
@given(bpm=st.one_of(st.none(), st.floats(20, 300)),
       key=st.sampled_from([None, "A minor", "F#m", "Eb major", "c"]),
       style=st.one_of(st.none(), st.text(max_size=30), NASTY_TEXT),
       gain_db=st.floats(-60, 24), pan=st.floats(-1, 1),
       stem_lufs=st.floats(-70, 0), target_lufs=st.floats(-70, 0),
       ceiling_dbfs=st.floats(-20, 0), duration_s=st.floats(0.001, 0.3))
def test_compose_accepted_values_give_finite_audio(bpm, key, style, gain_db, pan, stem_lufs,
                                                   target_lufs, ceiling_dbfs, duration_s):
    from musicstems import Stem

    try:
        song = compose([Stem("drums", "techno drums", gain_db, pan), Stem("bass", "acid bass")],
                       **{**QUICK, "duration_s": duration_s}, bpm=bpm, key=key, style=style,
                       stem_lufs=stem_lufs, target_lufs=target_lufs, ceiling_dbfs=ceiling_dbfs,
                       align=False)
    except MusicStemsError as error:  # target above ceiling is the one refusal possible here
        assert "is above ceiling_dbfs" in str(error)
        return
    for audio in (song.mix, *song.stems.values()):
        assert_finite_audio(audio)
        assert audio.shape[-1] == round(duration_s * song.sample_rate)


# -- the stage functions ---------------------------------------------------------------------

def reports_or_refuses(call) -> None:
    """``call()`` returns a JSON-able report without NaN or inf, or refuses with a message."""
    try:
        report = call()
    except MusicStemsError as error:
        assert str(error)
        event("refused")
        return
    event("measured")
    json.dumps(report, allow_nan=False)


def returns_finite_or_refuses(call) -> None:
    try:
        out, report = call()
    except MusicStemsError as error:
        assert str(error)
        event("refused")
        return
    event("returned audio")  # --hypothesis-show-statistics shows the share of each
    assert_finite_audio(out)
    json.dumps(report, allow_nan=False)  # reports hold no NaN or inf either


@FUZZ
@given(audio=AUDIO, rate=RATES, target_lufs=LUFS,
       gain_db=st.one_of(st.floats(-60, 24), NUMBERS, JUNK))
def test_normalize_loudness_fuzz(audio, rate, target_lufs, gain_db):
    returns_finite_or_refuses(lambda: normalize_loudness(audio, rate, target_lufs=target_lufs,
                                                         gain_db=gain_db))


@FUZZ
@given(audio=AUDIO, rate=RATES, target_lufs=LUFS, ceiling_dbfs=CEILINGS,
       max_iterations=st.one_of(st.just(6), NUMBERS, JUNK))
def test_master_fuzz(audio, rate, target_lufs, ceiling_dbfs, max_iterations):
    returns_finite_or_refuses(lambda: master(audio, rate, target_lufs=target_lufs,
                                             ceiling_dbfs=ceiling_dbfs,
                                             max_iterations=max_iterations))


@FUZZ
@given(stems=st.one_of(JUNK, st.dictionaries(st.one_of(st.text(max_size=5), NASTY_TEXT,
                                                       st.integers(), st.none()), AUDIO,
                                             max_size=3),
                       st.dictionaries(st.sampled_from("abc"), GOOD_AUDIO, min_size=1)),
       rate=RATES, pans=st.one_of(st.none(), JUNK, st.dictionaries(
           st.sampled_from("abd"), st.one_of(st.floats(-1, 1), NUMBERS), max_size=2)))
def test_mix_stems_fuzz(stems, rate, pans):
    returns_finite_or_refuses(lambda: mix_stems(stems, rate, pans=pans))


@FUZZ
@given(audio=AUDIO, rate=RATES,
       measured=st.one_of(st.none(), JUNK, st.fixed_dictionaries(
           {"integrated_lufs": st.one_of(st.none(), NUMBERS, JUNK)})))
def test_analyze_fuzz(audio, rate, measured):
    reports_or_refuses(lambda: analyze(audio, rate, measured=measured))


# -- Composition.load ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-saved") / "song"
    compose({"drums": "techno drums"}, **QUICK, save=SaveTarget(folder, midi=True))
    return folder


def _paths(value, prefix=()):
    """Every key path of a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _paths(inner, prefix + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _paths(inner, prefix + (index,))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) |
                    st.text(max_size=10) | NASTY_TEXT,
                    lambda inner: st.lists(inner, max_size=3) |
                    st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)


@FUZZ
@given(data=st.data())
def test_load_of_an_edited_manifest_fuzz(saved, tmp_path, data):
    folder = Path(tempfile.mkdtemp(dir=tmp_path)) / "song"
    shutil.copytree(saved, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    paths = [p for p in _paths(manifest) if len(p) <= 4]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(JSON)
    if path:
        holder = manifest
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] = value
    else:
        manifest = value
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    try:
        song = Composition.load(folder)
    except MusicStemsError as error:
        assert str(error)
        return
    finally:
        shutil.rmtree(folder.parent)
    for audio in (song.mix, *song.stems.values()):
        assert_finite_audio(audio)


@FUZZ
@given(directory=st.one_of(JUNK, NASTY_TEXT))
def test_load_of_junk_paths_fuzz(empty_cwd, directory):
    try:
        Composition.load(directory)
    except MusicStemsError as error:
        assert str(error)
    nothing_written(empty_cwd)


# -- the CLI ---------------------------------------------------------------------------------

OPTIONS = ["compose", "demo", "--stem", "--gain", "--pan", "--out", "--format", "--overwrite",
           "--midi", "--backend", *(s.flag for s in SETTINGS if s.flag), "--help", "-h"]
WORDS = st.one_of(st.sampled_from(OPTIONS), st.text(max_size=12), NASTY_TEXT,
                  NUMBERS.map(str), st.sampled_from(["drums=kick", "a=", "=b", "bass=-3",
                                                     "sketch", "wav", "mp3", "A minor"]))


@FUZZ
@given(argv=st.lists(WORDS, max_size=10))
def test_cli_fuzz(stop_at_work, empty_cwd, capsys, argv):
    if "compose" in argv or "demo" in argv:
        argv = [*argv, "--quiet"] if "--quiet" not in argv else argv
    try:
        code = main(argv)
    except Generated:
        event("passed the door")
        return
    except SystemExit as done:  # --help and --version print and exit 0
        assert done.code == 0
        return
    finally:
        captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("musicstems: error: ")
    nothing_written(empty_cwd)


@pytest.fixture(scope="module")
def small_song():
    return compose({"drums": "techno drums", "bass": "acid bass"}, backend="sketch",
                   duration_s=2.0, seed=1, progress=False, bpm=120)


@FUZZ
@given(stems=st.one_of(JUNK, st.dictionaries(st.one_of(st.text(max_size=5), NASTY_TEXT),
                                             AUDIO, max_size=2),
                       st.dictionaries(st.sampled_from("ab"), GOOD_AUDIO, min_size=1)),
       rate=RATES, bpm=st.one_of(st.none(), st.floats(20, 300), NUMBERS, JUNK),
       key=st.one_of(st.none(), st.sampled_from(["A minor", "C"]), NASTY_TEXT, JUNK),
       reference=st.one_of(st.none(), st.sampled_from(["a", "b", "zz"]), JUNK),
       length=st.one_of(st.none(), st.integers(1, 200), NUMBERS, JUNK),
       chords=st.one_of(st.none(), JUNK, st.lists(st.lists(st.integers(-2, 14), max_size=3),
                                                  max_size=3)),
       bar_s=st.one_of(st.none(), st.floats(0.05, 60), NUMBERS, JUNK))
def test_align_stems_fuzz(stems, rate, bpm, key, reference, length, chords, bar_s):
    from musicstems.align import align_stems

    try:
        aligned = align_stems(stems, rate, bpm=bpm, key=key, reference=reference, length=length,
                              chords=chords, bar_s=bar_s)
    except MusicStemsError as error:
        assert str(error)
        event("refused")
        return
    event("aligned")
    for audio in aligned.stems.values():
        assert_finite_audio(audio)
    json.dumps(aligned.report, allow_nan=False)


@FUZZ
@given(stems=st.one_of(JUNK, st.dictionaries(st.sampled_from(["drums", "bass", "x"]),
                                             AUDIO, max_size=2)),
       rate=RATES, plan=st.one_of(st.just("song"), JUNK))
def test_measure_fit_fuzz(small_song, stems, rate, plan):
    from musicstems.fit import measure_fit

    reports_or_refuses(lambda: measure_fit(stems, rate,
                                           small_song.plan if plan == "song" else plan,
                                           warn=False))


# -- song files ------------------------------------------------------------------------------

TOML_VALUES = st.one_of(
    st.sampled_from(['"techno drums"', "128", "-1e400", "nan", "inf", "true", "[1, 2]",
                     '{a = 1}', '"\\u0000"', "1979-05-27", '""', "{prompt = 5}",
                     '{prompt = "acid bass", gain_db = "loud"}', '{prompt = "x", seed = -1}',
                     '{prompt = "x", melody = "../../no-such.wav"}']),
    st.integers(-10**20, 10**20).map(str))
TOML_KEYS = st.sampled_from(["bpm", "bmp", "key", "duration_s", "seed", "backend", "model",
                             "top_k", "cache_dir", "progress", "stems", "name", "é", "1"])


@FUZZ
@given(top=st.dictionaries(TOML_KEYS, TOML_VALUES, max_size=4),
       stems=st.one_of(st.none(), st.dictionaries(st.sampled_from(["drums", "bass", "../x",
                                                                   "con", "A b"]),
                                                  TOML_VALUES, max_size=3)),
       garbage=st.one_of(st.just(""), st.text(max_size=30)))
def test_song_file_fuzz(stop_at_work, tmp_path_factory, top, stems, garbage):
    from musicstems.songfile import compose_file

    folder = tmp_path_factory.mktemp("songfile")
    lines = [f"{key} = {value}" for key, value in top.items() if key != "stems"]
    if stems is not None:
        lines.append("[stems]")
        lines += [f'"{name}" = {value}' for name, value in stems.items()]
    path = folder / "song.toml"
    path.write_text("\n".join(lines) + "\n" + garbage, encoding="utf-8")
    try:
        compose_file(path, save=folder / "out")
    except Generated:
        event("passed the door")
    except MusicStemsError as error:
        assert "song.toml" in str(error), str(error)  # every refusal names the file
        event("refused")
    assert sorted(p.name for p in folder.iterdir()) == ["song.toml"]  # nothing written


# -- compose_many ----------------------------------------------------------------------------

SONG_ENTRY = st.one_of(
    JUNK, NASTY_TEXT,
    st.fixed_dictionaries({"name": st.one_of(st.text(max_size=70), NASTY_TEXT, JUNK),
                           "stems": st.one_of(JUNK, st.dictionaries(
                               st.text(max_size=10), st.one_of(st.text(max_size=20), JUNK),
                               max_size=2))},
                          optional={"bpm": st.one_of(NUMBERS, JUNK), "seed": JUNK,
                                    "duration_s": NUMBERS, "max_batch": JUNK}))


@FUZZ
@given(songs=st.one_of(JUNK, st.lists(SONG_ENTRY, max_size=4)),
       max_batch_stems=st.one_of(st.just(8), JUNK, NUMBERS),
       retries=st.one_of(st.just(1), JUNK))
def test_compose_many_refuses_junk_songs(monkeypatch, empty_cwd, songs, max_batch_stems,
                                         retries):
    from musicstems import many

    def run(*args, **kwargs):
        raise Generated
    monkeypatch.setattr(many, "_run", run)
    try:
        many.compose_many(songs, empty_cwd / "out", max_batch_stems=max_batch_stems,
                          retries=retries, **QUICK)
    except MusicStemsError as error:
        assert str(error)
        nothing_written(empty_cwd)
        event("refused")
    except Generated:
        event("passed the door")
