"""One door for the public stage functions: every bad argument is a MusicStemsError that names
the argument, the value and the fix, before any work; no function returns NaN or inf audio; a
callback that raises stops the song cleanly, naming it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import musicstems.pipeline as pipeline_module
from musicstems import CallbackError, Composition, MusicStemsError, SaveTarget, analyze, compose
from musicstems.loudness import integrated_lufs, limit_peaks, master, normalize_loudness
from musicstems.mix import mix_stems

SR = 32000
QUICK = dict(backend="sketch", duration_s=0.5, seed=3, bpm=120, key="A minor", progress=False)


def tone(channels=2, seconds=1.0, amplitude=0.3, freq=220.0):
    t = np.arange(int(seconds * SR)) / SR
    return np.repeat((amplitude * np.sin(2 * np.pi * freq * t))[None], channels,
                     axis=0).astype(np.float32)


def refused(call, *needles):
    """Run ``call``; it must raise MusicStemsError whose message holds every needle."""
    with pytest.raises(MusicStemsError) as error:
        call()
    for needle in needles:
        assert needle in str(error.value), (needle, str(error.value))
    return error.value


@pytest.mark.parametrize("kwargs, needles", [
    ({"target_lufs": math.nan}, ["target_lufs=nan", "[-70, 0]", "LUFS"]),
    ({"target_lufs": 1e308}, ["target_lufs=1e+308", "[-70, 0]"]),
    ({"target_lufs": -math.inf}, ["target_lufs=-inf"]),
    ({"target_lufs": "-14"}, ["target_lufs='-14'"]),
    ({"target_lufs": None}, ["target_lufs=None"]),
    ({"target_lufs": True}, ["target_lufs=True"]),
    ({"target_lufs": -20, "gain_db": math.nan}, ["gain_db=nan", "[-60, 24]"]),
    ({"target_lufs": -20, "gain_db": 1e9}, ["gain_db=1000000000.0"]),
])
def test_normalize_loudness_refuses_bad_targets(kwargs, needles):
    error = refused(lambda: normalize_loudness(tone(), SR, **kwargs), *needles)
    assert error.argument == next(k for k in kwargs if needles[0].startswith(k))


@pytest.mark.parametrize("audio, needles", [
    (np.full((2, SR), np.nan, np.float32), ["NaN or infinite", "nan_to_num"]),
    (np.concatenate([tone(), np.full((2, 1), np.inf, np.float32)], axis=1),
     ["2 NaN or infinite", "sample 32000"]),
    ((tone() * 32767).astype(np.int16), ["dtype int16", "/ 32768"]),
    (tone().T.copy(), ["32000 channels of 2 samples", "audio.T"]),
    (tone()[None], ["shape (1, 2, 32000)"]),
    (np.zeros((2, 0), np.float32), ["empty"]),
    ([0.1, 0.2, 0.3], ["is a list, not a numpy array"]),
    (tone() * np.float32(1e7), ["beyond +120 dBFS"]),
    (tone().astype(np.complex64), ["dtype complex64"]),
    (tone(6), ["6 channels", "at most"]),  # BS.1770 (and pyloudnorm) weighs at most five
])
def test_every_stage_refuses_bad_audio(audio, needles):
    for call in (lambda: normalize_loudness(audio, SR, target_lufs=-20),
                 lambda: master(audio, SR),
                 lambda: analyze(audio, SR),
                 lambda: limit_peaks(audio, SR, ceiling_dbfs=-1),
                 lambda: mix_stems({"a": audio}, SR)):
        refused(call, *needles)


@pytest.mark.parametrize("rate, needle", [
    (0, "sample_rate=0"), (-32000, "sample_rate=-32000"), (44100.5, "not a whole number"),
    (math.nan, "sample_rate=nan"), ("32000", "sample_rate='32000'"), (True, "sample_rate=True"),
    (10**30, "sample_rate=1000000000000000000000000000000"), (None, "sample_rate=None"),
])
def test_every_stage_refuses_bad_sample_rates(rate, needle):
    for call in (lambda: normalize_loudness(tone(), rate, target_lufs=-20),
                 lambda: master(tone(), rate), lambda: analyze(tone(), rate),
                 lambda: mix_stems({"a": tone()}, rate)):
        refused(call, needle, "in Hz" if "whole" not in needle else "44100")


def test_good_input_still_works_and_gives_finite_audio():
    # controls for the refusals above: numpy scalars, float64 and 1-D audio are taken
    out, report = normalize_loudness(tone(1)[0].astype(np.float64), np.int64(SR),
                                     target_lufs=-20)
    assert out.dtype == np.float32 and out.shape == (1, SR) and np.isfinite(out).all()
    assert integrated_lufs(out, SR) == pytest.approx(-20, abs=0.5)
    mastered, report = master(tone(), 44100.0, target_lufs=-14, ceiling_dbfs=-1)
    assert np.isfinite(mastered).all() and report["true_peak_dbtp"] <= -1
    assert analyze(tone(), SR, measured={"integrated_lufs": None})["integrated_lufs"] is None


@pytest.mark.parametrize("kwargs, needles", [
    ({"ceiling_dbfs": math.nan}, ["ceiling_dbfs=nan", "[-20, 0]", "dBFS"]),
    ({"ceiling_dbfs": 20}, ["ceiling_dbfs=20", "[-20, 0]"]),
    ({"target_lufs": math.nan}, ["target_lufs=nan"]),
    ({"target_lufs": 1e308}, ["target_lufs=1e+308"]),
    ({"target_lufs": -0.5}, ["target_lufs=-0.5 is above ceiling_dbfs=-1", "Lower target_lufs"]),
    ({"max_iterations": 0}, ["max_iterations=0", "from 1 to 50"]),
    ({"max_iterations": 10**9}, ["max_iterations=1000000000"]),
    ({"max_iterations": 2.5}, ["max_iterations=2.5"]),
])
def test_master_refuses_bad_settings(kwargs, needles):
    refused(lambda: master(tone(), SR, **kwargs), *needles)


@pytest.mark.parametrize("kwargs, needles", [
    ({"ceiling_dbfs": math.nan}, ["ceiling_dbfs=nan"]),
    ({"ceiling_dbfs": -1, "lookahead_ms": 0}, ["lookahead_ms=0"]),
    ({"ceiling_dbfs": -1, "release_ms": math.inf}, ["release_ms=inf"]),
])
def test_limit_peaks_refuses_bad_settings(kwargs, needles):
    refused(lambda: limit_peaks(tone(), SR, **kwargs), *needles)


@pytest.mark.parametrize("stems, pans, needles", [
    ({}, None, ["stems={}", "non-empty dict"]),
    ([tone()], None, ["is not a non-empty dict"]),
    ({5: tone()}, None, ["the name 5"]),
    ({"a": tone(3)}, None, ["3 channels", "at most 2"]),
    ({"a": tone(), "b": tone(seconds=0.5)}, None, ["same length", "'b': 16000"]),
    ({"a": tone()}, {"b": 0.5}, ["pans names ['b']", "not stems"]),
    ({"a": tone()}, {"a": math.nan}, ["pans['a']=nan", "[-1, 1]"]),
    ({"a": tone()}, {"a": 2}, ["pans['a']=2"]),
    ({"a": tone()}, [0.5], ["pans=[0.5] is not a dict"]),
])
def test_mix_stems_refuses_bad_stems_and_pans(stems, pans, needles):
    refused(lambda: mix_stems(stems, SR, pans=pans), *needles)


@pytest.mark.parametrize("measured, needle", [
    ({"integrated_lufs": math.nan}, "measured['integrated_lufs']=nan"),
    ({"lufs": -14.0}, "measured={'lufs': -14.0}"),
    ("-14", "measured='-14'"),
])
def test_analyze_refuses_bad_measurements(measured, needle):
    refused(lambda: analyze(tone(), SR, measured=measured), needle)


# -- Composition.load ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "song"
    compose({"drums": "techno drums"}, **QUICK, save=folder)
    return folder


def edited_copy(saved, tmp_path, edit):
    import shutil

    folder = tmp_path / "song"
    shutil.copytree(saved, folder, symlinks=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    text = edit(manifest, folder)
    (folder / "manifest.json").write_text(text if isinstance(text, str) else
                                          json.dumps(manifest))
    return folder


def _symlink_out(manifest, folder):
    (folder.parent / "outside.wav").write_bytes((folder / "mix.wav").read_bytes())
    (folder / "link.wav").symlink_to(folder.parent / "outside.wav")
    manifest["files"]["mix"] = "link.wav"


@pytest.mark.parametrize("edit, needle", [
    (lambda m, f: m["files"].update(mix="../outside.wav"), "lies outside the folder"),
    (lambda m, f: m["files"].update(mix="/etc/hostname"), "lies outside the folder"),
    (_symlink_out, "lies outside the folder"),
    (lambda m, f: m["files"].update(mix=5), "files['mix'] is 5"),
    (lambda m, f: m.update(files=[1, 2]), "no 'files'"),
    (lambda m, f: m.update(seed="7"), "its seed is '7'"),
    (lambda m, f: m.update(seed=-1), "its seed is -1"),
    (lambda m, f: m["stems"]["drums"].update(prompt_sent=None), "no 'prompt_sent'"),
    (lambda m, f: m.update(stems={}), "are not the stems"),
    (lambda m, f: m.update(plan={"bpm": "x"}), "its plan cannot be read"),
    (lambda m, f: json.dumps(m).replace('"seed": 3', '"seed": NaN'), "is not a number JSON"),
    (lambda m, f: "[1, 2]", "holds a list"),
    (lambda m, f: "[" * 100000, "is not valid JSON"),
    (lambda m, f: (f / "mix.wav").write_bytes(b"not audio"), "could not read audio"),
])
def test_load_refuses_a_manifest_it_did_not_write(saved, tmp_path, edit, needle):
    refused(lambda: Composition.load(edited_copy(saved, tmp_path, edit)), needle)


def test_load_refuses_nan_audio_and_bad_paths(saved, tmp_path):
    import soundfile

    folder = edited_copy(saved, tmp_path, lambda m, f: None)
    data, sr = soundfile.read(folder / "stems" / "drums.wav", dtype="float32")
    data[10] = np.nan
    soundfile.write(folder / "stems" / "drums.wav", data, sr, subtype="FLOAT")
    refused(lambda: Composition.load(folder), "NaN or infinite samples")
    for bad in (5, b"song", "", str(saved) + "\x00", None):
        refused(lambda: Composition.load(bad), "not a folder path")
    refused(lambda: Composition.load(tmp_path / "nothing"), "is not a folder")
    # control: the untouched song loads
    assert list(Composition.load(saved).stems) == ["drums"]


def test_a_song_too_short_for_one_sample_is_refused_at_the_door():
    # 1e-5 s is 0.32 samples at 32 kHz: it used to fail in the pipeline with numpy's
    # "zero-size array to reduction operation maximum"
    refused(lambda: compose({"a": "b"}, **{**QUICK, "duration_s": 1e-5}), "duration_s=1e-05",
            "[0.001, 600]")
    song = compose({"a": "b"}, **{**QUICK, "duration_s": 0.001})  # control: 1 ms is a song
    assert song.mix.shape == (2, 32) and np.isfinite(song.mix).all()


def test_a_model_path_of_an_unknown_user_is_refused(tmp_path, capsys):
    # Path("~nosuchuser/x").expanduser() raises RuntimeError; it reached the user raw
    refused(lambda: compose({"a": "b"}, model="~nosuchuser/x", duration_s=1),
            "model='~nosuchuser/x' is not a folder")
    from musicstems.cli import main
    assert main(["demo", "--model", "~nosuchuser/x", "--quiet", "--duration", "0.1",
                 "--out", str(tmp_path / "song")]) == 0  # not cached: the sketch plays
    assert "is not in the local cache" in capsys.readouterr().err


# -- callbacks -------------------------------------------------------------------------------

class Generated(Exception):
    pass


def test_a_callback_that_cannot_be_called_is_refused_at_the_door(monkeypatch, tmp_path):
    def generation(name):
        raise Generated(name)
    monkeypatch.setattr(pipeline_module, "get_backend", generation)
    for callback in (5, "print", [print]):
        error = refused(lambda: compose({"a": "b"}, **QUICK, callback=callback),
                        f"callback={callback!r} cannot be called")
        assert error.argument == "callback"
    with pytest.raises(Generated):  # control: a function passes
        compose({"a": "b"}, **QUICK, callback=print)


def broken_callback(event):
    if event["stage"] == "generate" and event.get("step"):
        raise ZeroDivisionError("the user's bug")


def test_a_raising_callback_stops_the_song_naming_it_and_saves_nothing(tmp_path):
    with pytest.raises(CallbackError) as error:
        compose({"a": "b", "c": "d"}, **QUICK, callback=broken_callback,
                save=SaveTarget(tmp_path / "song", midi=True))
    assert "callback broken_callback raised ZeroDivisionError: the user's bug" in \
        str(error.value)
    assert "'generate'" in str(error.value)
    assert isinstance(error.value.__cause__, ZeroDivisionError)
    assert isinstance(error.value, MusicStemsError)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_in_a_callback_stays_a_keyboard_interrupt(tmp_path):
    def interrupt(event):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        compose({"a": "b"}, **QUICK, callback=interrupt, save=tmp_path / "song")
    assert list(tmp_path.iterdir()) == []


def test_a_raising_callback_inside_musicgen_leaves_the_model_usable(tiny_model, tmp_path):
    settings = dict(duration_s=0.5, seed=5, model=tiny_model, device="cpu", align=False,
                    progress=False)
    with pytest.raises(CallbackError, match="broken_callback") as error:
        compose({"a": "bass"}, **settings, callback=broken_callback, save=tmp_path / "song")
    assert isinstance(error.value.__cause__, ZeroDivisionError)
    assert not (tmp_path / "song").exists()
    # the cached model still works, and gives what an undisturbed call gives
    first = compose({"a": "bass"}, **settings)
    again = compose({"a": "bass"}, **settings)
    assert np.isfinite(first.mix).all() and np.array_equal(first.mix, again.mix)


@pytest.mark.parametrize("num_samples", [2000, 1999, 44101])
def test_mix_keeps_every_sample_of_lengths_that_are_not_whole_milliseconds(num_samples):
    # pydub's overlay slices in whole milliseconds: 2000 samples at 32 kHz (62.5 ms) came back
    # as 1984 before the mixer padded past the end (the fuzzer found it)
    stems = {"a": tone(seconds=num_samples / SR), "b": tone(1, seconds=num_samples / SR)}
    assert mix_stems(stems, SR, pans={"b": 0.5})[0].shape == (2, num_samples)
    # the last samples are the stem's own, not padding: one stem mixes to itself (24-bit)
    alone, _ = mix_stems({"a": stems["a"]}, SR)
    assert np.max(np.abs(alone - stems["a"])) <= 0.5 / 2**24 + 1e-12
    assert np.abs(alone[:, -16:]).max() > 0.01
