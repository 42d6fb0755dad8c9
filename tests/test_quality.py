"""The bad-stem detector: NaN/inf, silence and flat-topped clipping are found, real stems pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from musicstems import compose
from musicstems.quality import (CLIP_LEVEL, MAX_CLIPPED_SHARE, SILENCE_DBFS, retry_seed,
                                stem_problem)

SR = 32000


def tone(level: float = 0.5, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None]


def test_a_clean_tone_and_real_stems_pass(tiny_song):
    assert stem_problem(tone()) is None
    sketch = compose({"drums": "techno drums", "bass": "acid bass", "pads": "warm pads"},
                     backend="sketch", duration_s=4, seed=2, progress=False)
    for audio in [*sketch.stems.values(), *tiny_song.stems.values()]:
        assert stem_problem(audio) is None


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_found(bad):
    audio = tone()
    audio[0, 100] = bad
    assert stem_problem(audio).startswith("non-finite: 1 ")


def test_silence_is_found_at_the_threshold():
    assert stem_problem(np.zeros((2, SR), np.float32)).startswith("silent")
    just_below = 10 ** ((SILENCE_DBFS - 1) / 20)
    just_above = 10 ** ((SILENCE_DBFS + 1) / 20)
    assert stem_problem(tone(just_below)).startswith("silent")
    assert stem_problem(tone(just_above)) is None


def test_flat_tops_at_full_scale_are_clipping_but_loud_peaks_are_not():
    overdriven = np.clip(tone(4.0), -1.0, 1.0)  # hard clipped: most of each cycle flat
    assert stem_problem(overdriven).startswith("clipped")
    # above full scale but not flat (float audio from a codec): not clipping
    assert stem_problem(tone(1.5)) is None
    # a few flat-topped samples, under the share, pass; over it, they do not
    audio = tone(0.5)
    runs = int(MAX_CLIPPED_SHARE * audio.size) // 4
    for i in range(runs):
        audio[0, 1000 + 10 * i:1000 + 10 * i + 3] = CLIP_LEVEL
    assert stem_problem(audio) is None
    for i in range(runs, 4 * runs):
        audio[0, 1000 + 10 * i:1000 + 10 * i + 3] = -1.0
    assert stem_problem(audio).startswith("clipped")


def test_retry_seeds_are_derived_and_distinct():
    seeds = {retry_seed(7, attempt) for attempt in (1, 2, 3)} | {retry_seed(8, 1)}
    assert len(seeds) == 4 and all(0 <= s < 2**32 for s in seeds)
    assert retry_seed(7, 1) == retry_seed(7, 1)


class SilencesFirstTakes:
    """The real sketch backend, with a fault injected: a stem generated on its first seed
    (the one derived from the song's) comes out silent, as a failed model run would."""

    name = "sketch"

    def __init__(self, victims):
        from musicstems.backends.sketch import SketchBackend

        self.inner, self.victims, self.calls = SketchBackend(), set(victims), []

    def generate(self, stems, plan, settings, *, callback=None):
        from musicstems.stems import stem_seed

        generated = self.inner.generate(stems, plan, settings, callback=callback)
        self.calls.append([s.name for s in stems])
        for stem in stems:
            if stem.name in self.victims and stem.seed is None:  # the first take
                generated.stems[stem.name] = np.zeros_like(generated.stems[stem.name])
        return generated


SONG = dict(bpm=120, key="A minor", duration_s=3, seed=4, backend="sketch", progress=False,
            cache=False)


def test_a_bad_stem_is_generated_again_on_a_derived_seed_and_recorded(monkeypatch, tmp_path):
    import musicstems.pipeline as pipeline
    from musicstems import MusicStemsWarning
    from musicstems.stems import stem_seed

    clean = compose({"drums": "techno drums", "bass": "acid bass"}, **SONG)
    faulty = SilencesFirstTakes({"bass"})
    monkeypatch.setattr(pipeline, "get_backend", lambda name: faulty)
    with pytest.warns(MusicStemsWarning, match="'bass' came out silent"):
        song = compose({"drums": "techno drums", "bass": "acid bass"}, **SONG,
                       save=tmp_path / "song")
    assert faulty.calls == [["drums", "bass"], ["bass"]]  # only the bad stem again
    retry = song.manifest["stems"]["bass"]["retry"]
    assert retry["problem"].startswith("silent")
    assert retry["first_seed"] == stem_seed(4, "bass")
    assert retry["seed"] == retry_seed(stem_seed(4, "bass"))
    assert song.manifest["stems"]["drums"]["retry"] is None
    # the retake (the sketch renders the same plan) is what a clean run gives
    np.testing.assert_array_equal(song.stems["bass"], clean.stems["bass"])
    np.testing.assert_array_equal(song.mix, clean.mix)
    saved = json.loads((tmp_path / "song" / "manifest.json").read_text())
    assert saved["stems"]["bass"]["retry"] == retry


def test_a_stem_bad_twice_stops_the_song_before_anything_is_saved(tiny_model, tmp_path):
    import torch

    from musicstems.backends.musicgen import release_models
    from musicstems.quality import BadStemError
    from musicstems.testing import tiny_musicgen  # noqa: F401  (the model's layout)
    from transformers import MusicgenForConditionalGeneration

    # a model whose codec decodes everything to NaN: the retry cannot help
    broken = tmp_path / "nan-model"
    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model)
    with torch.no_grad():
        last = [m for m in model.audio_encoder.decoder.modules()
                if isinstance(m, torch.nn.Conv1d)][-1]
        last.bias.fill_(float("nan"))
    model.save_pretrained(broken)
    for extra in Path(tiny_model).iterdir():  # the processor's files
        if not (broken / extra.name).exists():
            shutil.copy(extra, broken / extra.name)
    with pytest.raises(BadStemError, match=r"stem 'bass' came out unusable twice \(non-finite"):
        compose({"bass": "acid bass"}, duration_s=1, seed=2, model=str(broken), device="cpu",
                precision="fp32", align=False, progress=False, cache=False,
                save=tmp_path / "song")
    assert not (tmp_path / "song").exists()
    release_models()


def test_a_sketch_stem_silent_where_its_plan_rests_is_no_fault():
    # 2 ms at 20 bpm: no drum hit falls inside, the plan's silence rendered as it is
    song = compose({"drums": "techno drums"}, bpm=20, duration_s=0.002, seed=1,
                   backend="sketch", progress=False, cache=False, align=False)
    assert stem_problem(song.stems["drums"]).startswith("silent")
    assert song.manifest["stems"]["drums"]["retry"] is None
