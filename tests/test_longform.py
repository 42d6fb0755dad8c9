"""Songs longer than the model's window, on the tiny model with a short window.

The tiny model's folder is copied with ``generation_config.max_length`` set to 100 frames (2 s),
the field a hub model's window is read from (1500, 30 s, for facebook/musicgen-*), so a few
seconds of song cross several windows in seconds of test.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from musicstems import compose

torch = pytest.importorskip("torch")

WINDOW_FRAMES = 100
STEMS = {"drums": "punchy techno drums", "bass": "deep rolling acid bassline"}
SONG = dict(bpm=128, key="A minor", seed=5, device="cpu", precision="fp32", align=False,
            progress=False)


def _short_window(folder, tmp_path_factory, name):
    copy = tmp_path_factory.mktemp(name) / "model"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "generation_config.json").read_text())
    config["max_length"] = WINDOW_FRAMES
    (copy / "generation_config.json").write_text(json.dumps(config))
    return str(copy)


@pytest.fixture(scope="module")
def short_model(tiny_model, tmp_path_factory):
    return _short_window(tiny_model, tmp_path_factory, "short-window")


def _raw(model, stems, duration_s, **extra):
    """The backend's raw stems and report (no loudness, no mix), as compose generates them."""
    from dataclasses import replace

    from musicstems.pipeline import generate_stems
    from musicstems.plan import make_plan
    from musicstems.spec import build_prompts, validate_compose_args

    spec = validate_compose_args(stems, model=model, duration_s=duration_s, **{**SONG, **extra})
    plan = make_plan(spec)
    spec = replace(spec, prompts=build_prompts(spec, bpm=plan.bpm, key=plan.key))
    return generate_stems(spec.stems, plan, spec)


def test_windows_cover_the_song_and_keep_their_context():
    from musicstems.backends.windows import CONTEXT_SHARE, decoder_steps, plan_windows

    assert plan_windows(80, 30, 100) == plan_windows(80, 30, 100)[:1]  # fits: one window
    for total, primer in ((101, 0), (1550, 50), (15050, 50), (333, 7)):
        windows = plan_windows(total, primer, 100)
        assert windows[0].start == 0 and windows[0].context == primer
        assert primer + sum(w.new for w in windows) == total
        end = primer + windows[0].new
        for w in windows[1:]:
            assert w.start + w.context == end  # each continues where the last one ended
            assert w.context == math.floor(100 * CONTEXT_SHARE)
            end += w.new
        assert all(w.context + w.new <= 100 for w in windows)
        assert decoder_steps(windows, 4) == sum(w.new + 3 for w in windows)


@pytest.mark.parametrize("duration_s", [0.5, 1.3, 2.9, 4.37])
def test_lengths_are_exact_across_window_boundaries(short_model, duration_s):
    song = compose(STEMS, model=short_model, duration_s=duration_s, **SONG)
    windows = song.manifest["backend"]["windows"]
    assert (len(windows) > 1) == (duration_s > 1)  # the primer's ~47 frames, then ~53 new
    frames = windows[0]["context_s"] * 50 + sum(w["new_s"] * 50 for w in windows)
    assert round(frames) == round(windows[0]["context_s"] * 50) + math.ceil(duration_s * 50)
    for audio in list(song.stems.values()) + [song.mix]:
        assert audio.shape[-1] == round(duration_s * 32000)
        assert audio.dtype == np.float32 and np.isfinite(audio).all()


def _boundaries(report, hop=640):
    """Samples of the song's audio where a window's new frames begin (after window 0)."""
    primers = report.get("primer")
    primer = next(iter(primers.values()))["seconds"] if primers else 0
    return [round((w["start_s"] + w["context_s"] - primer) * 32000) for w in
            report["windows"][1:]]


def _clicks(audio, boundaries):
    """Whether the audio jumps more from one sample to the next at a boundary (+-2 samples)
    than anywhere else."""
    jumps = np.abs(np.diff(audio, axis=-1)).max(axis=0)
    near = np.zeros(jumps.shape, bool)
    for b in boundaries:
        near[b - 2:b + 2] = True
    return jumps[near].max() > jumps[~near].max()


def test_no_click_at_a_window_boundary(short_model):
    """The whole code sequence is decoded at once: at a boundary the audio jumps no more from
    one sample to the next than it does anywhere else. The control: a step at one boundary is
    caught (of 5x the peak: noise-like audio already jumps by up to twice its peak). Random
    weights make noise-like audio whose largest jump is large: butting separately decoded
    windows together does not exceed it either, so the absence of seams is by construction --
    one decode of every frame -- more than by this measure (docs/backends.md)."""
    generated = _raw(short_model, STEMS, 4.0)
    boundaries = _boundaries(generated.report)
    assert len(boundaries) >= 2
    for audio in generated.stems.values():
        assert not _clicks(audio, boundaries)
        stepped = audio.copy()
        stepped[:, boundaries[0]:] += 5 * np.abs(audio).max()
        assert _clicks(stepped, boundaries)


def test_the_kv_cache_never_holds_more_than_one_window(short_model):
    from musicstems.backends import decoding
    from musicstems.backends.musicgen import load_model
    from musicstems.backends.runs import tokenize
    from musicstems.backends.sampling import SamplingSettings, stem_streams
    from musicstems.backends.windows import plan_windows, sample_windows

    loaded = load_model(short_model, device="cpu", precision="fp32", quiet=True)
    capacities = []

    class Recorded(decoding.DecoderStep):
        def __init__(self, model, rows, capacity, prepared=None):
            super().__init__(model, rows, capacity, prepared)
            capacities.append(self.keys[0].shape)

    windows = plan_windows(400, 0, WINDOW_FRAMES)
    assert len(windows) == 6  # 100 new frames, then 67 after each 33 of context
    inputs = tokenize(loaded, list(STEMS.values()))
    with torch.inference_mode():
        codes, report = sample_windows(
            loaded.model, inputs, SamplingSettings(0, 3.0), windows, frame_rate=50,
            streams=stem_streams([1, 2], "cpu"), step_class=Recorded)
    assert codes.shape == (1, 2, 4, 400)
    assert len(capacities) == len(windows)  # a fresh cache per window
    # start token, the window's frames and the delay pattern's 3 steps, for 2 x 2 rows
    assert all(shape[0] == 4 and shape[2] <= WINDOW_FRAMES + 4 for shape in capacities)
    assert report["kv_cache_positions"] == WINDOW_FRAMES + 4
    # and what the song reports
    song = _raw(short_model, STEMS, 3.0)
    assert song.report["kv_cache_positions"] <= WINDOW_FRAMES + 4


def test_a_long_song_is_its_seed_and_its_stems_are_independent(short_model):
    song = _raw(short_model, STEMS, 3.0)
    again = _raw(short_model, dict(reversed(list(STEMS.items()))), 3.0)
    assert len(song.report["windows"]) >= 3
    for name in STEMS:
        np.testing.assert_array_equal(song.stems[name], again.stems[name])
    changed = _raw(short_model, {**STEMS, "bass": "sub bass with a long tail"}, 3.0)
    np.testing.assert_array_equal(song.stems["drums"], changed.stems["drums"])
    assert not np.array_equal(song.stems["bass"], changed.stems["bass"])  # the control
    other = _raw(short_model, STEMS, 3.0, seed=6)
    assert not np.array_equal(song.stems["drums"], other.stems["drums"])


def test_later_windows_continue_the_song_not_repeat_it(short_model):
    # each window draws on from its stems' streams: no window is a copy of the first
    song = _raw(short_model, STEMS, 3.0, primer=None)
    audio = song.stems["drums"][0]
    starts = _boundaries(song.report)
    first = audio[:starts[0]]
    for start in starts:
        assert not np.array_equal(audio[start:start + first.size], first[:audio.size - start])


def test_the_fallback_sampler_refuses_a_long_song_clearly(short_model, monkeypatch):
    from musicstems.backends import decoding
    from musicstems.errors import MusicStemsError

    monkeypatch.setattr(decoding, "unsupported_reason", lambda model: "a test says so")
    with pytest.raises(MusicStemsError, match=r"duration_s=3 needs \d+ windows.*a test says"):
        _raw(short_model, STEMS, 3.0)
    # one window still runs there
    assert _raw(short_model, STEMS, 0.5).report["sampler"] == "transformers generate"


def test_a_melody_model_hears_each_windows_span_of_the_chroma(tmp_path_factory):
    from musicstems.backends.musicgen import load_model
    from musicstems.backends.windows import _chroma_at
    from musicstems.testing import tiny_musicgen

    folder = tiny_musicgen(tmp_path_factory.mktemp("melody") / "m", melody=True,
                           responsive=True)
    model = _short_window(folder, tmp_path_factory, "melody-short")
    loaded = load_model(model, device="cpu", precision="fp32", quiet=True)
    chroma = np.zeros((40, 12), np.float32)
    chroma[np.arange(40), np.arange(40) % 12] = 1  # frame t: pitch class t % 12
    features = _chroma_at(loaded.model, [chroma, None], 64, 50)  # 64 frames: 1.28 s
    first = round(64 / 50 * 32000 / 4096)  # the chroma frame heard at that time: 10
    np.testing.assert_array_equal(features[0, :30].numpy(), chroma[first:])
    assert features[1, :, 0].eq(1).all()  # the stem without one: "no melody"
    stems = {"bass": "deep rolling acid bassline", "pads": "warm evolving analog pads"}
    song = compose(stems, model=model, duration_s=3.0, **SONG)
    assert len(song.manifest["backend"]["windows"]) >= 3
    for audio in song.stems.values():
        assert audio.shape[-1] == round(3.0 * 32000)
