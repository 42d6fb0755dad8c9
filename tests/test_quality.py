"""The bad-stem detector: NaN/inf, silence and flat-topped clipping are found, real stems pass."""

from __future__ import annotations

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
