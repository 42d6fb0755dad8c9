"""The per-stem analysis on signals whose content is known."""

from __future__ import annotations

import numpy as np
import pytest

from musicstems.analysis import analyze

SR = 32000


def tone(freq_hz, duration_s=3.0, amplitude=0.5):
    t = np.arange(int(duration_s * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)[None]


@pytest.mark.parametrize("freq", [55.0, 110.0, 261.63, 440.0, 3000.0])
def test_dominant_frequency_of_a_tone(freq):
    report = analyze(tone(freq), SR)
    # 1 Hz bins refined by parabolic interpolation: within 0.1 Hz for a steady sine.
    assert report["dominant_hz"] == pytest.approx(freq, abs=0.1)
    assert report["spectral_centroid_hz"] == pytest.approx(freq, rel=0.01)


def test_bass_heavy_and_bright_material_are_told_apart():
    bass = analyze(tone(110) + 0.1 * tone(220), SR)
    rng = np.random.default_rng(0)
    from scipy.signal import butter, sosfilt
    hats = sosfilt(butter(4, 6000, "highpass", fs=SR, output="sos"),
                   rng.standard_normal(3 * SR)).astype(np.float32)[None]
    bright = analyze(hats, SR)
    assert bass["band_energy"]["low"] > 0.95
    assert bright["band_energy"]["high"] > 0.9
    assert bright["spectral_centroid_hz"] > 6000 > 500 > bass["spectral_centroid_hz"]


def test_levels_of_a_known_sine():
    report = analyze(np.repeat(tone(1000, amplitude=10 ** (-23 / 20)), 2, axis=0), SR)
    assert report["integrated_lufs"] == pytest.approx(-23.0, abs=0.1)
    assert report["sample_peak_dbfs"] == pytest.approx(-23.0, abs=0.01)
    assert report["rms_dbfs"] == pytest.approx(-23.0 - 3.01, abs=0.01)  # sine RMS = peak/sqrt2


def test_silence_reports_none_not_inf():
    report = analyze(np.zeros((2, SR), np.float32), SR)
    assert report["integrated_lufs"] is None and report["dominant_hz"] is None
    assert report["band_energy"] == {"low": None, "mid": None, "high": None}
