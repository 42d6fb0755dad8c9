"""Loudness on signals whose loudness is known from the standards.

EBU Tech 3341 test 1: a 1 kHz sine at -23 dBFS peak in both channels reads -23.0 LUFS (the
K-filter is ~+0.69 dB at 1 kHz, which the -0.691 constant of BS.1770 cancels). EBU allows
+/-0.1 LU for a compliant meter; we use that.
"""

from __future__ import annotations

import numpy as np
import pytest

from musicstems.loudness import (integrated_lufs, limit_peaks, master, normalize_loudness,
                                 sample_peak_dbfs, true_peak_dbtp)

SR = 48000


def sine(freq_hz, amplitude, duration_s=5.0, channels=2, sr=SR, phase=0.0):
    t = np.arange(int(duration_s * sr)) / sr
    tone = amplitude * np.sin(2 * np.pi * freq_hz * t + phase)
    return np.repeat(tone[None], channels, axis=0).astype(np.float32)


def drum_like(duration_s=8.0, sr=SR, seed=0):
    """Kicks on every beat over quiet noise: a crest factor of ~20 dB, as real drums have."""
    rng = np.random.default_rng(seed)
    audio = 0.02 * rng.standard_normal((2, int(duration_s * sr)))
    t = np.arange(int(0.15 * sr)) / sr
    kick = 0.9 * np.sin(2 * np.pi * 55 * t) * np.exp(-t * 30)
    for start in range(0, audio.shape[1] - len(t), sr // 2):
        audio[:, start:start + len(t)] += kick
    return audio.astype(np.float32)


def test_ebu_3341_case_1():
    assert integrated_lufs(sine(1000, 10 ** (-23 / 20)), SR) == pytest.approx(-23.0, abs=0.1)


def test_ebu_3341_case_2_at_32khz():
    # Same signal at -33 dBFS reads -33 LUFS; at MusicGen's 32 kHz, which pyloudnorm's
    # filter design handles by its bilinear transform at any rate.
    audio = sine(1000, 10 ** (-33 / 20), sr=32000)
    assert integrated_lufs(audio, 32000) == pytest.approx(-33.0, abs=0.1)


def test_silence_and_short_audio_give_no_inf_or_nan():
    assert integrated_lufs(np.zeros((2, SR), np.float32), SR) is None
    assert integrated_lufs(np.zeros((1, 0), np.float32), SR) is None
    assert sample_peak_dbfs(np.zeros((1, 10), np.float32)) is None
    short = sine(1000, 10 ** (-23 / 20), duration_s=0.1)  # shorter than a 400 ms block
    value = integrated_lufs(short, SR)
    assert value is not None and np.isfinite(value)
    assert value == pytest.approx(-23.0, abs=0.3)  # one block, no gating: close to steady state
    out, report = normalize_loudness(np.zeros((1, SR), np.float32), SR, target_lufs=-20)
    assert not np.any(out) and report["skipped_reason"].startswith("silent")
    out, report = master(np.zeros((2, SR), np.float32), SR)
    assert not np.any(out) and report["output_lufs"] is None


@pytest.mark.parametrize("target", [-30.0, -20.0, -14.0])
def test_normalize_reaches_target(target):
    out, report = normalize_loudness(sine(440, 0.3), SR, target_lufs=target)
    assert integrated_lufs(out, SR) == pytest.approx(target, abs=0.05)
    out, _ = normalize_loudness(sine(440, 0.3), SR, target_lufs=target, gain_db=-6.0)
    assert integrated_lufs(out, SR) == pytest.approx(target - 6.0, abs=0.05)


def test_true_peak_sees_intersample_peaks():
    # A sine at fs/4 sampled 45 degrees off its crest: every sample is at 0.707 of the true
    # amplitude, so the sample peak reads 3 dB low; the 4x oversampled true peak does not.
    audio = sine(SR / 4, 1.0, duration_s=0.5, phase=np.pi / 4)
    assert sample_peak_dbfs(audio) == pytest.approx(-3.01, abs=0.05)
    # EBU Tech 3341 (true-peak cases 15-22) allows +0.2 / -0.4 dB for a true-peak meter.
    assert -0.4 <= true_peak_dbtp(audio) <= 0.2


@pytest.mark.parametrize("target, ceiling", [(-14.0, -1.0), (-10.0, -1.0), (-18.0, -3.0)])
def test_master_hits_target_under_ceiling(target, ceiling):
    audio = drum_like()
    out, report = master(audio, SR, target_lufs=target, ceiling_dbfs=ceiling)
    assert integrated_lufs(out, SR) == pytest.approx(target, abs=0.5)
    assert true_peak_dbtp(out) <= ceiling + 1e-6
    assert report["limited"]  # this material needs the limiter at these targets
    assert out.shape == audio.shape and out.dtype == np.float32


def test_limiter_leaves_quiet_audio_alone():
    audio = sine(200, 0.1)
    before = audio.copy()  # against a copy: a limiter that worked in place would pass otherwise
    out = limit_peaks(audio, SR, ceiling_dbfs=-1.0)
    assert np.array_equal(out, before) and np.array_equal(audio, before)
    # the control: above the ceiling the same call changes the audio and holds the ceiling
    loud = sine(200, 1.0)
    limited = limit_peaks(loud, SR, ceiling_dbfs=-1.0)
    assert not np.array_equal(limited, loud)
    assert true_peak_dbtp(limited) <= -1.0 + 1e-6


def _clicky_mix(seconds: float = 6.0, sr: int = 32000) -> np.ndarray:
    """Quiet noise with clicks and a burst of a quarter-rate tone sampled 45 degrees off its
    crests (samples at 0.57, crests at 0.8 between them): a few blocks hold inter-sample peaks
    far above the sample peak, most hold nothing near the top."""
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal((2, int(seconds * sr))) * 0.02).astype(np.float32)
    audio[:, ::sr // 2] = 0.5
    burst = 0.8 * np.sin(2 * np.pi * np.arange(256) / 4 + np.pi / 4)
    audio[0, sr + 5:sr + 261] = burst.astype(np.float32)
    return audio


@pytest.mark.parametrize("scale", [0.5, 1.0, 1.6])
def test_fast_true_peak_equals_oversampling_everything(scale):
    from musicstems.loudness import _PeakEnvelope, _true_peak_full, _true_peak_linear

    audio = _clicky_mix() * np.float32(scale)
    assert _true_peak_linear(audio) == _true_peak_full(audio)  # bit for bit, not approximately
    # the control: a bound that skipped too much would answer the sample peak instead
    assert _true_peak_full(audio) > np.abs(audio).max() * 1.05
    envelope = _PeakEnvelope(audio)
    assert envelope.exact.mean() < 0.5  # most blocks were never oversampled


def test_fast_envelope_is_exact_wherever_it_can_pass_the_level():
    from musicstems.loudness import _PeakEnvelope, _peak_envelope

    audio = _clicky_mix()
    level = 0.5
    fast, full = _PeakEnvelope(audio).reaching(level), _peak_envelope(audio)
    over = full > level
    assert over.any()
    np.testing.assert_array_equal(fast[over], full[over])
    assert (fast[~over] <= level).all()  # elsewhere the limiter sees "no limiting" either way
    assert not np.array_equal(fast, full)  # and it did skip work
