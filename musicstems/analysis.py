"""Measure a processed stem or mix: loudness, peaks, RMS and where its energy sits in frequency.

The figures go into the manifest and ``Composition.report`` so a user sees at once that the drums
are bass-heavy and the pads sit in the mids, without opening an editor.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .checks import check_audio, check_finite, check_sample_rate
from .errors import MusicStemsError
from .loudness import (MAX_CHANNELS, gain_to_db, integrated_lufs, round_or_none,
                       sample_peak_dbfs, true_peak_dbtp)

__all__ = ["analyze", "BANDS_HZ"]

# Low / mid / high split used by the report: below 250 Hz is the kick and bass region,
# above 4 kHz the cymbals, air and sibilance.
BANDS_HZ = {"low": (0.0, 250.0), "mid": (250.0, 4000.0), "high": (4000.0, float("inf"))}


def _average_spectrum(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.signal import welch

    # 1 s segments give 1 Hz bins, fine enough to tell 110 Hz from 112 Hz before interpolation.
    nperseg = int(min(len(mono), sample_rate))
    freqs, power = welch(mono, fs=sample_rate, window="hann", nperseg=nperseg,
                         scaling="spectrum")
    return freqs, power


def _peak_frequency(freqs: np.ndarray, power: np.ndarray) -> float:
    """Frequency of the strongest bin, refined by a parabola through the log power of the bin
    and its neighbours (exact for a Gaussian-shaped peak, within a few hundredths of a bin for a
    Hann window)."""
    index = int(np.argmax(power[1:])) + 1  # skip DC
    if 1 <= index < len(power) - 1:
        a, b, c = np.log(power[index - 1:index + 2] + 1e-30)
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
        return float(freqs[index] + shift * (freqs[1] - freqs[0]))
    return float(freqs[index])


_MEASURED = ("integrated_lufs", "true_peak_dbtp")


def _check_measured(measured) -> dict:
    if measured is None:
        return {}
    if not isinstance(measured, Mapping) or any(k not in _MEASURED for k in measured):
        raise MusicStemsError(
            f"measured={measured!r} is not allowed; pass None or a dict with "
            "'integrated_lufs' and/or 'true_peak_dbtp' (a float, or None for silence).",
            arguments={"measured": measured})
    return {k: None if v is None else check_finite(v, f"measured[{k!r}]")
            for k, v in measured.items()}


def analyze(audio: np.ndarray, sample_rate: int, *,
            measured: Mapping[str, float | None] | None = None) -> dict:
    """Measure ``audio``.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples) or (samples,)], floating point, finite
    sample_rate : int in [8000, 384000], Hz
    measured : dict, optional
        ``integrated_lufs`` and / or ``true_peak_dbtp`` already measured on exactly this audio
        (``master`` reports both): taken as they are instead of measured again. ``None`` is a
        measurement too: silence.

    Returns
    -------
    dict
        ``integrated_lufs`` (BS.1770-4), ``sample_peak_dbfs``, ``true_peak_dbtp``, ``rms_dbfs``,
        ``dominant_hz`` (strongest frequency), ``spectral_centroid_hz`` (power-weighted mean
        frequency), ``band_energy`` (share of power below 250 Hz / 250 Hz-4 kHz / above 4 kHz).
        Values that do not exist for silent audio are ``None``, never -inf or NaN.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(32000) / 32000
    >>> tone = (0.5 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)[None]
    >>> round(analyze(tone, 32000)["dominant_hz"])
    110
    """
    audio = check_audio(audio, "audio", max_channels=MAX_CHANNELS)
    sample_rate = check_sample_rate(sample_rate)
    measured = _check_measured(measured)
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    lufs = (measured["integrated_lufs"] if "integrated_lufs" in measured
            else integrated_lufs(audio, sample_rate))
    peak_dbtp = (measured["true_peak_dbtp"] if "true_peak_dbtp" in measured
                 else true_peak_dbtp(audio))
    report = {
        "integrated_lufs": round_or_none(lufs),
        "sample_peak_dbfs": round_or_none(sample_peak_dbfs(audio)),
        "true_peak_dbtp": round_or_none(peak_dbtp),
        "rms_dbfs": round_or_none(gain_to_db(rms)),
        "dominant_hz": None, "spectral_centroid_hz": None,
        "band_energy": {name: None for name in BANDS_HZ},
    }
    if rms == 0.0 or audio.shape[-1] < 16:
        return report
    freqs, power = _average_spectrum(audio.astype(np.float64).mean(axis=0), sample_rate)
    total = float(power.sum())
    if total <= 0.0:
        return report
    report["dominant_hz"] = round(_peak_frequency(freqs, power), 2)
    report["spectral_centroid_hz"] = round(float((freqs * power).sum() / total), 1)
    report["band_energy"] = {
        name: round(float(power[(freqs >= lo) & (freqs < hi)].sum() / total), 4)
        for name, (lo, hi) in BANDS_HZ.items()}
    return report
