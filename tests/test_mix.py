"""The pydub mixer: exact conversion, no clipping in the overlay, pan law."""

from __future__ import annotations

import numpy as np
import pytest

from musicstems import MusicStemsError
from musicstems.mix import FULL_SCALE, from_segment, mix_stems, to_segment

SR = 32000


def noise(channels, seed, amplitude=0.9):
    rng = np.random.default_rng(seed)
    return rng.uniform(-amplitude, amplitude, (channels, SR)).astype(np.float32)


def test_segment_round_trip_is_exact_to_24_bits():
    audio = noise(2, 0)
    back = from_segment(to_segment(audio, SR))
    assert back.shape == audio.shape
    assert np.max(np.abs(back - audio)) <= 0.5 / FULL_SCALE + 1e-12


def test_overlay_sums_beyond_full_scale_without_clipping():
    # Two stems near full scale sum to ~1.8: 16-bit pydub would clip here, our 32-bit path not.
    a, b = noise(2, 1), noise(2, 2)
    mixed, report = mix_stems({"a": a, "b": b}, SR)
    assert np.max(np.abs(mixed)) > 1.0
    assert np.max(np.abs(mixed - (a + b))) < 1e-6
    assert report["peak_before_master"] == pytest.approx(float(np.max(np.abs(a + b))), abs=1e-6)


def test_mono_stems_become_stereo_and_pan_moves_them():
    mono = noise(1, 3, amplitude=0.5)
    centre, _ = mix_stems({"m": mono}, SR)
    assert centre.shape == (2, SR)
    assert np.allclose(centre[0], centre[1]) and np.allclose(centre[0], mono[0], atol=1e-6)
    left, report = mix_stems({"m": mono}, SR, pans={"m": -1.0})
    assert np.max(np.abs(left[1])) == 0.0  # hard left: nothing on the right
    # pydub's pan law: the near side is boosted by half of 6.02 dB
    assert np.max(np.abs(left[0])) / np.max(np.abs(mono)) == pytest.approx(2 ** 0.5, rel=1e-3)
    assert report["pans"] == {"m": -1.0}


def test_unequal_lengths_and_excess_level_are_refused():
    with pytest.raises(MusicStemsError, match="same length"):
        mix_stems({"a": noise(1, 0), "b": noise(1, 1)[:, :100]}, SR)
    with pytest.raises(MusicStemsError, match="headroom"):
        to_segment(np.full((1, 10), 300.0, np.float32), SR)
