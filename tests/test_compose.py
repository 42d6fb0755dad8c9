"""compose() end to end on the tiny random-weight MusicGen (same from_pretrained path as a hub
model)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TINY_STEMS
from musicstems import Stem, compose
from musicstems.loudness import integrated_lufs, true_peak_dbtp


def test_exact_lengths(tiny_song):
    expected = round(2.5 * tiny_song.sample_rate)
    assert tiny_song.sample_rate == 32000
    assert tiny_song.mix.shape == (2, expected)
    assert set(tiny_song.stems) == set(TINY_STEMS)
    for audio in tiny_song.stems.values():
        assert audio.shape == (1, expected) and audio.dtype == np.float32
    assert tiny_song.manifest["num_samples"] == expected


@pytest.mark.parametrize("duration_s", [0.5, 1.013, 1.7])
def test_lengths_exact_for_any_duration(tiny_model, duration_s):
    song = compose({"a": "bass"}, duration_s=duration_s, seed=1, model=tiny_model,
                   align=False, progress=False)
    assert song.mix.shape[-1] == round(duration_s * 32000)
    assert song.stems["a"].shape[-1] == round(duration_s * 32000)


def test_mix_loudness_and_peak(tiny_song):
    # BS.1770 meters agree within 0.1 LU on steady material; the mastering loop stops within
    # 0.05 LU; the budget is +/-0.5 LU.
    assert integrated_lufs(tiny_song.mix, tiny_song.sample_rate) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_dbtp(tiny_song.mix) <= -1.0 + 1e-6
    for name, audio in tiny_song.stems.items():
        assert integrated_lufs(audio, tiny_song.sample_rate) == pytest.approx(-20.0, abs=0.5)


def test_custom_targets_and_stem_gain(tiny_model):
    song = compose([Stem("drums", "techno drums", gain_db=-6.0), Stem("bass", "acid bass")],
                   duration_s=2.0, seed=3, model=tiny_model, stem_lufs=-24.0, target_lufs=-18.0,
                   ceiling_dbfs=-3.0, align=False, progress=False)
    sr = song.sample_rate
    assert integrated_lufs(song.stems["drums"], sr) == pytest.approx(-30.0, abs=0.5)
    assert integrated_lufs(song.stems["bass"], sr) == pytest.approx(-24.0, abs=0.5)
    assert integrated_lufs(song.mix, sr) == pytest.approx(-18.0, abs=0.5)
    assert true_peak_dbtp(song.mix) <= -3.0 + 1e-6


def test_same_seed_bit_identical_and_global_rng_untouched(tiny_model, tiny_song):
    import torch

    torch.manual_seed(1234)
    before = torch.rand(3)
    torch.manual_seed(1234)
    again = compose(TINY_STEMS, style="dark berlin techno", bpm=128, key="A minor",
                    duration_s=2.5, seed=7, model=tiny_model, align=False, progress=False)
    after = torch.rand(3)
    assert np.array_equal(again.mix, tiny_song.mix)
    for name in TINY_STEMS:
        assert np.array_equal(again.stems[name], tiny_song.stems[name])
    assert torch.equal(before, after)  # the seed was this call's alone


def test_other_seed_other_audio(tiny_model, tiny_song):
    other = compose(TINY_STEMS, style="dark berlin techno", bpm=128, key="A minor",
                    duration_s=2.5, seed=8, model=tiny_model, align=False, progress=False)
    assert not np.array_equal(other.stems["bass"], tiny_song.stems["bass"])


def test_distinct_prompts_distinct_stems(tiny_song):
    stems = list(tiny_song.stems.values())
    for i in range(len(stems)):
        for j in range(i + 1, len(stems)):
            # Normalized to the same loudness, different prompts must still differ clearly:
            # the residual is at least 10% of the stem's RMS.
            diff = np.sqrt(np.mean((stems[i] - stems[j]) ** 2))
            assert diff > 0.1 * np.sqrt(np.mean(stems[i] ** 2))


def test_prompts_and_manifest(tiny_song, tiny_model):
    assert tiny_song.prompts["bass"] == ("deep rolling acid bassline, dark berlin techno, "
                                         "128 bpm, in A minor")
    manifest = tiny_song.manifest
    assert manifest["seed"] == 7 == tiny_song.seed
    assert manifest["settings"]["model"] == tiny_model
    assert manifest["settings"]["guidance_scale"] == 3.0
    assert manifest["settings"]["top_k"] == 250
    assert manifest["backend"]["model"] == tiny_model and "revision" in manifest["backend"]
    assert manifest["backend"]["batch_size"] == 3  # one batched generate for all stems
    assert manifest["versions"]["torch"] and manifest["versions"]["transformers"]
    for name, entry in manifest["stems"].items():
        assert entry["prompt_sent"] == tiny_song.prompts[name]
        assert entry["analysis"]["integrated_lufs"] == pytest.approx(-20.0, abs=0.5)
        assert entry["loudness"]["measured_lufs"] is not None
    assert manifest["mix"]["analysis"]["true_peak_dbtp"] <= -1.0
    # The mix's analysis takes master's measurements: they must be what the mix measures.
    from musicstems.analysis import analyze

    assert manifest["mix"]["analysis"] == analyze(tiny_song.mix, tiny_song.sample_rate)
    assert set(manifest["timings_s"]) >= {"generate", "loudness", "mix"}
    assert set(tiny_song.report) == set(TINY_STEMS) | {"mix"}


def test_progress_false_prints_nothing(tiny_model, capfd):
    from musicstems import release_models

    release_models()  # include the load: its bars and notices must be quiet too
    compose({"a": "bass"}, duration_s=0.5, seed=1, model=tiny_model, align=False,
            progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_progress_bar_and_callback(tiny_model, capfd, monkeypatch):
    monkeypatch.setattr("musicstems.progress.BAR_DELAY_S", 0)  # a short song shows it too
    events = []
    compose({"a": "bass"}, duration_s=0.5, seed=1, model=tiny_model, align=False,
            progress=True, callback=events.append)
    steps = [e["step"] for e in events if e["stage"] == "generate" and e["step"]]
    # 0.5 s at 50 frames/s plus the 3 steps the 4-codebook delay pattern needs, each once,
    # then the stage's end (step == total)
    assert steps == [*range(1, 25 + 3 + 1), 25 + 3]
    assert [e["stage"] for e in events if e["step"] == 0] == [
        "plan", "generate", "align", "fit", "loudness", "mix", "analyze"]
    assert all(set(e) == {"stage", "step", "total", "fraction"} for e in events)
    assert events[-1]["fraction"] == 1.0
    # one bar over the song's stages
    assert "musicstems: analyze" in capfd.readouterr().err


def test_model_is_cached_between_calls(tiny_model):
    from musicstems.backends.musicgen import load_model

    first = load_model(tiny_model, device="auto", precision="auto")
    assert load_model(tiny_model, device="cpu", precision=first.precision) is first


def test_alignment_runs_in_the_pipeline_and_reports(tiny_model):
    song = compose(TINY_STEMS, bpm=128, key="A minor", duration_s=2.0, seed=5, model=tiny_model,
                   progress=False)  # align=True is the default
    alignment = song.manifest["alignment"]
    assert alignment["enabled"] and alignment["bpm"] == 128.0
    assert set(alignment["stems"]) == set(TINY_STEMS)
    for name, entry in song.manifest["stems"].items():
        assert entry["alignment"] == alignment["stems"][name]
        assert song.stems[name].shape[-1] == 64000  # alignment keeps lengths exact
    assert integrated_lufs(song.mix, song.sample_rate) == pytest.approx(-14.0, abs=0.5)
