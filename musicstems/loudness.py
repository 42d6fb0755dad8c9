"""Loudness: ITU-R BS.1770-4 measurement, stem normalization, and mastering with a peak ceiling.

Integrated loudness follows ITU-R BS.1770-4 (K-weighting, 400 ms blocks with 75 % overlap,
absolute gate at -70 LUFS and relative gate at -10 LU), as implemented by pyloudnorm. True peak
follows BS.1770-4 Annex 2: the signal is oversampled 4x and the largest absolute value taken.
pyloudnorm wants ``(samples, channels)``; the transpose happens here and nowhere else.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .checks import GAIN_DB_RANGE, check_audio, check_finite, check_sample_rate, check_whole

__all__ = ["integrated_lufs", "sample_peak_dbfs", "true_peak_dbtp", "normalize_loudness",
           "limit_peaks", "master", "db_to_gain", "gain_to_db", "round_or_none",
           "SILENCE_LUFS"]

# BS.1770 weighs five channels (L, R, C, Ls, Rs); pyloudnorm measures no more.
MAX_CHANNELS = 5
# Below the BS.1770 absolute gate nothing is "loud" enough to measure or to normalize.
SILENCE_LUFS = -70.0
_BLOCK_S = 0.400


def db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def gain_to_db(gain: float) -> float | None:
    """Gain in dB, or ``None`` for a zero gain (so reports never hold -inf)."""
    return 20.0 * math.log10(gain) if gain > 0 else None


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float | None:
    """Integrated loudness of ``audio`` in LUFS (ITU-R BS.1770-4).

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float32
    sample_rate : int > 0, Hz

    Returns
    -------
    float or None
        ``None`` when the audio is silent (everything below the -70 LUFS gate). Audio shorter
        than one 400 ms block is measured as one block of its own length.
    """
    import pyloudnorm

    audio = np.atleast_2d(audio)
    num_samples = audio.shape[-1]
    if num_samples == 0 or not np.any(audio):
        return None
    block_s = min(_BLOCK_S, num_samples / sample_rate)
    meter = pyloudnorm.Meter(sample_rate, block_size=block_s)
    # pyloudnorm's channel weights are for (samples, channels); BS.1770 weights L/R/C as 1.0.
    with np.errstate(divide="ignore"):
        loudness = meter.integrated_loudness(audio.T.astype(np.float64))
    if not math.isfinite(loudness) or loudness < SILENCE_LUFS:
        return None
    return float(loudness)


def sample_peak_dbfs(audio: np.ndarray) -> float | None:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return gain_to_db(peak)


def _true_peak_linear(audio: np.ndarray) -> float:
    from scipy.signal import resample_poly

    audio = np.atleast_2d(audio)
    if audio.shape[-1] == 0:
        return 0.0
    upsampled = resample_poly(audio.astype(np.float64), 4, 1, axis=-1)
    return float(max(np.max(np.abs(upsampled)), np.max(np.abs(audio))))


def true_peak_dbtp(audio: np.ndarray) -> float | None:
    """True peak in dBTP: the peak of the 4x oversampled signal (BS.1770-4 Annex 2)."""
    return gain_to_db(_true_peak_linear(audio))


def _check_lufs(value: Any, argument: str, setting: str) -> float:
    """A loudness or ceiling as compose's ``setting`` allows it (the settings table's range)."""
    from .spec import SETTING

    rule = SETTING[setting]
    return check_finite(value, argument, low=rule.low, high=rule.high, fix=rule.fix)


def normalize_loudness(audio: np.ndarray, sample_rate: int, *, target_lufs: float,
                       gain_db: float = 0.0) -> tuple[np.ndarray, dict]:
    """Scale ``audio`` to ``target_lufs`` integrated loudness, then apply ``gain_db``.

    Silent audio is returned unchanged (there is nothing to scale) and the report says so.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples) or (samples,)], floating point, finite
    sample_rate : int in [8000, 384000], Hz
    target_lufs : float in [-70, 0], LUFS
    gain_db : float in [-60, 24], dB
        Applied after the match, as a stem's ``gain_db`` in the mix.

    Returns
    -------
    audio : np.ndarray [shape=(channels, samples)], float32
    report : dict
        ``measured_lufs`` (before), ``applied_gain_db`` and ``skipped_reason``.

    Raises
    ------
    MusicStemsError
        For any argument outside the above, before any work.
    """
    audio = check_audio(audio, "audio", max_channels=MAX_CHANNELS)
    sample_rate = check_sample_rate(sample_rate)
    target_lufs = _check_lufs(target_lufs, "target_lufs", "stem_lufs")
    gain_db = check_finite(gain_db, "gain_db", low=GAIN_DB_RANGE[0], high=GAIN_DB_RANGE[1],
                           fix="It is a level in dB, e.g. -3.")
    measured = integrated_lufs(audio, sample_rate)
    if measured is None:
        return audio.astype(np.float32, copy=True), {
            "measured_lufs": None, "applied_gain_db": 0.0,
            "skipped_reason": "silent: below the -70 LUFS gate, left as it is"}
    applied_db = (target_lufs - measured) + gain_db
    out = (audio * db_to_gain(applied_db)).astype(np.float32)
    return out, {"measured_lufs": round(measured, 3), "applied_gain_db": round(applied_db, 3),
                 "skipped_reason": None}


def _peak_envelope(audio: np.ndarray) -> np.ndarray:
    """Per-sample peak of the 4x oversampled signal, the largest over the channels (so the
    limiter is linked and the stereo image does not move)."""
    from scipy.signal import resample_poly

    oversampled = np.abs(resample_poly(audio.astype(np.float64), 4, 1, axis=-1))
    peaks = oversampled.reshape(audio.shape[0], -1, 4).max(axis=-1).max(axis=0)
    return np.maximum(peaks, np.abs(audio).max(axis=0))


def _limiter_gain(peaks: np.ndarray, sample_rate: int, ceiling: float, lookahead_ms: float,
                  release_ms: float) -> np.ndarray | None:
    """Smooth gain curve that keeps ``peaks`` under ``ceiling``; None when none is needed."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    needed = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
    if needed.min() >= 1.0:
        return None
    look = max(1, int(sample_rate * lookahead_ms / 1000))
    hold = max(look, int(sample_rate * (lookahead_ms + release_ms) / 1000))
    held = minimum_filter1d(needed, size=2 * hold + 1, mode="nearest")
    gain = uniform_filter1d(held, size=look, mode="nearest")
    return np.minimum(gain, needed)  # guard the edges of the averaging window


def limit_peaks(audio: np.ndarray, sample_rate: int, *, ceiling_dbfs: float,
                lookahead_ms: float = 5.0, release_ms: float = 60.0) -> np.ndarray:
    """A look-ahead peak limiter: the gain dips smoothly before each peak above the ceiling.

    The gain each sample needs is ``ceiling / |peak|`` (taken on the 4x oversampled signal so
    inter-sample peaks count). A moving minimum over ``lookahead + release`` holds it, and a
    moving average over the look-ahead window smooths it; because every sample within half the
    averaging window of a peak already holds that peak's gain or less, the average never exceeds
    what the peak needs. Linked across channels, so the stereo image does not move.

    ``ceiling_dbfs`` is in [-20, 0] dBFS as compose's, ``lookahead_ms`` in (0, 100],
    ``release_ms`` in [0, 5000]; anything else raises :class:`MusicStemsError`.
    """
    audio = check_audio(audio, "audio", max_channels=MAX_CHANNELS)
    sample_rate = check_sample_rate(sample_rate)
    ceiling_dbfs = _check_lufs(ceiling_dbfs, "ceiling_dbfs", "ceiling_dbfs")
    lookahead_ms = check_finite(lookahead_ms, "lookahead_ms", low=0.0, low_open=True, high=100.0)
    release_ms = check_finite(release_ms, "release_ms", low=0.0, high=5000.0)
    gain = _limiter_gain(_peak_envelope(audio), sample_rate, db_to_gain(ceiling_dbfs),
                         lookahead_ms, release_ms)
    return audio.astype(np.float32, copy=True) if gain is None else (audio * gain).astype(
        np.float32)


def master(mix: np.ndarray, sample_rate: int, *, target_lufs: float = -14.0,
           ceiling_dbfs: float = -1.0, max_iterations: int = 6) -> tuple[np.ndarray, dict]:
    """Bring ``mix`` to ``target_lufs`` with its true peak at or below ``ceiling_dbfs``.

    Gain and limiting are iterated: limiting lowers the loudness a little, so the gain is raised
    by what was lost until the measured loudness is within 0.05 LU of the target (or no more can
    be gained). A final scale guarantees the ceiling whatever the limiter left.

    Parameters
    ----------
    mix : np.ndarray [shape=(channels, samples) or (samples,)], floating point, finite
    sample_rate : int in [8000, 384000], Hz
    target_lufs : float in [-70, 0], LUFS
    ceiling_dbfs : float in [-20, 0], dBFS, >= target_lufs
        True-peak ceiling.
    max_iterations : int in [1, 50]

    Returns
    -------
    audio : np.ndarray [shape=(channels, samples)], float32
    report : dict
        ``input_lufs``, ``applied_gain_db``, ``limited`` (whether the limiter worked),
        ``output_lufs``, ``true_peak_dbtp``, ``sample_peak_dbfs``, ``skipped_reason``.

    Raises
    ------
    MusicStemsError
        For any argument outside the above, before any work.
    """
    from .spec import _loudness_below_ceiling

    mix = check_audio(mix, "mix", max_channels=MAX_CHANNELS)
    sample_rate = check_sample_rate(sample_rate)
    target_lufs = _check_lufs(target_lufs, "target_lufs", "target_lufs")
    ceiling_dbfs = _check_lufs(ceiling_dbfs, "ceiling_dbfs", "ceiling_dbfs")
    _loudness_below_ceiling({"target_lufs": target_lufs, "ceiling_dbfs": ceiling_dbfs})
    max_iterations = check_whole(max_iterations, "max_iterations", low=1, high=50)
    measured = integrated_lufs(mix, sample_rate)
    if measured is None:
        return mix.astype(np.float32, copy=True), {
            "input_lufs": None, "applied_gain_db": 0.0, "limited": False, "output_lufs": None,
            "true_peak_dbtp": true_peak_dbtp(mix), "sample_peak_dbfs": sample_peak_dbfs(mix),
            "skipped_reason": "silent: below the -70 LUFS gate, left as it is"}
    # Oversampling is linear, so the peak envelope of the mix scales with the gain: measure it
    # once and only redo the cheap gain curve per iteration.
    peaks = _peak_envelope(mix)
    ceiling = db_to_gain(ceiling_dbfs)
    gain_db = target_lufs - measured
    limited = False
    out = mix
    for _ in range(max_iterations):
        gain = db_to_gain(gain_db)
        curve = _limiter_gain(peaks * gain, sample_rate, ceiling, 5.0, 60.0)
        limited = limited or curve is not None
        out = (mix * (gain if curve is None else gain * curve)).astype(np.float32)
        loudness = integrated_lufs(out, sample_rate)
        if loudness is None or abs(loudness - target_lufs) <= 0.05:
            break
        gain_db += target_lufs - loudness
    peak = _true_peak_linear(out)
    if peak > ceiling:  # the limiter's smoothing can leave a hair over; never ship that
        out = (out * (ceiling / peak * 0.9999)).astype(np.float32)
        peak = _true_peak_linear(out)
    output_lufs = integrated_lufs(out, sample_rate)
    return out, {
        "input_lufs": round(measured, 3), "applied_gain_db": round(gain_db, 3),
        "limited": limited, "output_lufs": None if output_lufs is None else round(output_lufs, 3),
        "true_peak_dbtp": round_or_none(gain_to_db(peak)),
        "sample_peak_dbfs": round_or_none(sample_peak_dbfs(out)), "skipped_reason": None,
    }


def round_or_none(value: float | None, digits: int = 3) -> float | None:
    """Round a measurement for a report, keeping ``None`` (silence) as it is."""
    return None if value is None else round(value, digits)
