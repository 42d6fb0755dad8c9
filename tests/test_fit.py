"""The fit report: sketch stems fit their plan, noise does not, and a stem moved off the grid
or transposed scores lower than the same stem in place."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from musicstems import Composition, MusicStemsError, MusicStemsWarning, compose
from musicstems.fit import MIN_CHORD_LIFT, MIN_GRID_LIFT, grid_s, measure_fit

STEMS = {"drums": "punchy drums", "bass": "deep rolling bassline",
         "keys": "chord stabs on electric piano", "lead": "lead synth melody"}


def _lift(entry: dict, axis: str) -> float:
    measured = entry[axis]
    share = measured["on_grid"] if axis == "rhythm" else measured["chord_tone_share"]
    return share / measured["chance"]


@pytest.fixture(scope="module")
def sketch_songs():
    return [compose(STEMS, style=style, duration_s=8, seed=seed, backend="sketch",
                    progress=False)
            for seed, style in enumerate(["techno", "jazz", "drum and bass"])]


def test_sketch_stems_fit_on_both_axes(sketch_songs):
    for song in sketch_songs:
        assert song.manifest["fit"]["misfits"] == []
        assert song.fit["drums"]["harmony"] is None  # drums have no chord to agree with
        for name, entry in song.fit.items():
            assert entry["fits"] and entry["reasons"] == [], (song.plan.genre, name, entry)
            if entry["rhythm"] is not None:
                assert _lift(entry, "rhythm") >= MIN_GRID_LIFT
            if entry["harmony"] is not None:
                assert _lift(entry, "harmony") >= MIN_CHORD_LIFT
        # every rhythmic stem of these genres is measured on the grid
        assert {n for n, e in song.fit.items() if e["rhythm"]} >= {"drums", "lead"}


def test_off_grid_and_transposed_stems_score_lower(sketch_songs):
    import librosa

    song = sketch_songs[0]
    sr, plan = song.sample_rate, song.plan
    # a 32nd late: halfway between two 16th steps
    late = int(round(plan.beat_s / 8 * sr))
    moved = {name: np.pad(audio, ((0, 0), (late, 0)))[:, :audio.shape[-1]]
             for name, audio in song.stems.items()}
    with pytest.warns(MusicStemsWarning, match="drums"):
        off_grid = measure_fit(moved, sr, plan)
    for name in ("drums", "lead"):
        assert _lift(off_grid[name], "rhythm") < MIN_GRID_LIFT <= _lift(song.fit[name], "rhythm")
        assert not off_grid[name]["fits"]

    shifted = {name: np.stack([librosa.effects.pitch_shift(ch, sr=sr, n_steps=2) for ch in
                               song.stems[name]]) for name in ("keys", "bass")}
    with pytest.warns(MusicStemsWarning, match="harmony"):
        transposed = measure_fit(shifted, sr, plan)
    for name in ("keys", "bass"):
        assert (_lift(transposed[name], "harmony") < MIN_CHORD_LIFT
                <= _lift(song.fit[name], "harmony"))


def test_noise_does_not_fit_and_is_named_but_still_mixed(tiny_model, tmp_path):
    with pytest.warns(MusicStemsWarning) as caught:
        song = compose({"drums": STEMS["drums"], "keys": STEMS["keys"]}, style="techno",
                       duration_s=4, seed=3, model=str(tiny_model), device="cpu",
                       progress=False)
    misfits = song.manifest["fit"]["misfits"]
    assert misfits and set(misfits) <= {"drums", "keys"}
    message = str(next(w.message for w in caught if w.category is MusicStemsWarning))
    assert all(repr(name) in message for name in misfits)
    for name in misfits:
        assert not song.fit[name]["fits"] and song.fit[name]["reasons"]
    # named, and mixed as it is: the mix is the sum of every stem, not of the fitting ones
    assert set(song.stems) == {"drums", "keys"}
    assert all(np.abs(audio).max() > 0 for audio in song.stems.values())

    song.save(tmp_path / "song")
    assert Composition.load(tmp_path / "song").fit == song.fit


def test_grid_follows_swing_and_tempo(sketch_songs):
    plan = sketch_songs[1].plan  # jazz: swung 16ths
    grid = grid_s(plan)
    step_s = plan.beat_s / 4
    assert grid[0] == 0.0 and grid[2] == pytest.approx(2 * step_s)
    assert grid[1] > step_s  # the off-beat 16th is late
    assert grid[-1] < plan.duration_s


def test_bad_input_is_refused(sketch_songs):
    song = sketch_songs[0]
    with pytest.raises(MusicStemsError, match="'vocals'"):
        measure_fit({"vocals": song.stems["bass"]}, song.sample_rate, song.plan)
    with pytest.raises(MusicStemsError, match="sample_rate=0"):
        measure_fit(song.stems, 0, song.plan)


def test_sketch_song_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error", MusicStemsWarning)
        compose({"bass": STEMS["bass"]}, style="house", duration_s=4, seed=2, backend="sketch",
                progress=False)


def test_a_song_under_one_bar_is_not_measured(sketch_songs):
    song = sketch_songs[0]
    bar = int(song.plan.bar_s * song.sample_rate)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor does librosa warn about a short signal
        short = measure_fit({n: a[:, :bar - 1] for n, a in song.stems.items()},
                            song.sample_rate, song.plan, warn=False)
        whole = measure_fit({n: a[:, :bar] for n, a in song.stems.items()},
                            song.sample_rate, song.plan, warn=False)
    assert all(e["measured"].startswith("no") and e["fits"] for e in short.values())
    assert all("measured" not in e for e in whole.values())
    assert whole["drums"]["rhythm"] is not None
