"""Tempo and beat grid of each stem, measured on its onset envelope, and what to change.

* **Tempo.** Onset strength (log-mel spectral flux, ``librosa.onset.onset_strength``) gives a
  coarse tempo from its autocorrelation tempogram (``librosa.feature.tempo``), which is refined by
  maximising the magnitude of the envelope's Fourier series at the first :data:`_HARMONICS`
  multiples of the beat frequency: a 10 s stem is measured to a few hundredths of a percent where
  the tempogram's lag grid alone is 2-3 % coarse. A reading that is half, double, 2/3, 3/2, a
  third or three times the target to within 10 % (:data:`_TEMPO_FACTORS`) is taken as that
  relation, so a 64 or 256 BPM reading of a 128 BPM part is not stretched; any other reading is
  stretched to the target as it is, or from the octave nearest to it.
* **Beat grid.** The beat phase is the time within one beat where the envelope's harmonics add up
  best (a pulse train fitted to the onsets); each stem is delayed or advanced by at most half a
  beat so that its beats fall on the grid of one stem, the *reference* (``reference=`` or the most
  rhythmic stem), which is not shifted.
* **Confidence.** The share of the onset envelope's variance that repeats every beat measures how
  clear a beat is. Below :data:`MIN_BEAT_CONFIDENCE` a stem is left alone on this axis and the
  report says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .common import ANALYSIS_SR, _pick

_HOP = 128            # onset envelope hop: 11.6 ms at ANALYSIS_SR
_ONSET_N_FFT = 512    # 46 ms: short enough that bass and clicks peak within ~2 ms of each other
_HARMONICS = 4        # beat-frequency harmonics in the tempo / phase fit

#: Share of the onset envelope's variance that must repeat every beat for a stem to count as
#: rhythmic. Drums, bass and chord stabs measure 0.35-0.85, syncopated leads 0.25-0.35,
#: sustained pads, drones and noise below 0.15.
MIN_BEAT_CONFIDENCE = 0.2
_MIN_TEMPO_DURATION_S = 4.0
#: Tempo ratios closer to 1 than this are left alone: 0.1 % drifts 30 ms over 30 s, less than the
#: measurement noise on real music, and a phase vocoder pass costs more than it gains.
_STRETCH_TOLERANCE = 1e-3
#: Shifts below 5 ms are left out: within measurement noise and below an audible flam.
_MIN_OFFSET_S = 0.005
# A stem's tempo reading times one of these that lands within _FOLD_TOLERANCE of the target is
# the same tempo read in half / double time or in a 2:3 / 3:2 relation (the bands do not
# overlap: neighbouring factors are >= 4/3 apart, more than 1.1 ** 2).
_TEMPO_FACTORS = (1.0, 2.0, 0.5, 1.5, 2.0 / 3.0, 3.0, 1.0 / 3.0)
_FOLD_TOLERANCE = 1.1
# Otherwise the reading is taken as it is or an octave (beat trackers' classic error) off.
_OCTAVE_FACTORS = (1.0, 2.0, 0.5, 4.0, 0.25)


@dataclass
class _Rhythm:
    bpm: float          # refined tempo of the stem as it is
    confidence: float   # share of onset-envelope variance repeating every beat
    envelope: np.ndarray


def _beat_coefficients(envelope: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """Fourier coefficients of the (Hann-windowed, zero-mean) onset envelope at the first
    ``_HARMONICS`` multiples of each frequency: shape (len(freqs_hz), _HARMONICS)."""
    times_s = np.arange(len(envelope)) * (_HOP / ANALYSIS_SR)
    weighted = (envelope - envelope.mean()) * np.hanning(len(envelope))
    # exp(-2 pi i h f t) as the h-th power of exp(-2 pi i f t): one complex exponential per
    # frequency and frame instead of _HARMONICS (the same to 1e-13, twice as fast).
    fundamental = np.exp(-2j * np.pi * np.multiply.outer(np.atleast_1d(freqs_hz), times_s))
    shape = (len(fundamental), _HARMONICS, len(times_s))
    harmonics = np.cumprod(np.broadcast_to(fundamental[:, None, :], shape), axis=1)
    return harmonics @ weighted


def _refine_bpm(envelope: np.ndarray, coarse_bpm: float) -> float:
    """Tempo that maximises the summed harmonic magnitudes within +/-8 % of ``coarse_bpm``:
    a 0.25 % grid, then a 0.01 % grid around its best point, then a parabola."""
    best = math.log(coarse_bpm)
    for span, step in ((0.08, 0.0025), (0.003, 0.0001)):
        grid = best + np.arange(-span, span + step / 2, step)
        score = np.abs(_beat_coefficients(envelope, np.exp(grid) / 60.0)).sum(axis=1)
        i = int(np.argmax(score))
        best = float(grid[i])
        if 0 < i < len(grid) - 1:
            a, b, c = score[i - 1:i + 2]
            if a - 2 * b + c < 0:
                best += 0.5 * (a - c) / (a - 2 * b + c) * step
    return math.exp(best)


def _beat_phase_s(envelope: np.ndarray, bpm: float) -> float:
    """Time in [0, 60/bpm) s at which a pulse train of period 60/bpm best fits the onsets."""
    freq = bpm / 60.0
    coeffs = _beat_coefficients(envelope, np.array([freq]))[0]
    harmonics = np.arange(1, _HARMONICS + 1)
    taper = np.exp(-(harmonics / _HARMONICS) ** 2)  # smooth the pulse so the fit has one peak
    candidates = np.arange(0.0, 1.0, 1.0 / 1000) / freq
    fit = (np.exp(2j * np.pi * np.multiply.outer(candidates, harmonics) * freq)
           @ (coeffs * taper)).real
    return float(candidates[int(np.argmax(fit))])


def _beat_confidence(envelope: np.ndarray, bpm: float, bins: int = 24) -> float:
    """Share of the onset envelope's variance explained by its average one-beat pattern."""
    times_s = np.arange(len(envelope)) * (_HOP / ANALYSIS_SR)
    centred = envelope - envelope.mean()
    total = float(centred @ centred)
    if total <= 0.0:
        return 0.0
    which = np.minimum((np.mod(times_s * bpm / 60.0, 1.0) * bins).astype(int), bins - 1)
    pattern = np.bincount(which, centred, bins) / np.maximum(np.bincount(which, None, bins), 1)
    return float(np.sum(pattern[which] ** 2) / total)


def _mean_tempogram(envelope: np.ndarray) -> np.ndarray:
    """``librosa.feature.tempogram(onset_envelope=envelope, sr=ANALYSIS_SR, hop_length=_HOP,
    win_length=W).mean(axis=-1)`` for the window ``librosa.feature.tempo`` uses (W = 8 s of
    frames), equal to rounding: shape (W,), lag 0 first.

    The tempogram is the autocorrelation of every Hann-windowed 8 s stretch of the envelope,
    each divided by its largest value, which is its lag-0 value: the frame's energy. The
    autocorrelation is linear, so the mean of the normalised ones is the inverse FFT of the
    energy-weighted mean power spectrum: one inverse FFT instead of one per frame, and FFTs
    along contiguous rows (docs/performance.md has what it saves).
    """
    import librosa
    import scipy.fft
    import scipy.signal

    width = int(librosa.time_to_frames(8.0, sr=ANALYSIS_SR, hop_length=_HOP))
    frames = np.lib.stride_tricks.sliding_window_view(
        np.pad(envelope, width // 2, mode="linear_ramp", end_values=0), width)[:len(envelope)]
    frames = frames * scipy.signal.get_window("hann", width)
    n_fft = scipy.fft.next_fast_len(2 * width - 1, real=True)
    spectra = scipy.fft.rfft(frames, n=n_fft, axis=-1)
    power = spectra.real ** 2 + spectra.imag ** 2
    energy = np.einsum("ij,ij->i", frames, frames)
    energy[energy < np.finfo(energy.dtype).tiny] = 1.0  # librosa leaves all-zero frames as they are
    # einsum rather than a BLAS product: multi-threaded BLAS waits for all its threads on every
    # call, so it stalls whenever another process holds a core.
    mean_power = np.einsum("t,tk->k", 1.0 / energy, power)
    return scipy.fft.irfft(mean_power, n=n_fft)[:width] / len(envelope)


def _rhythm(mono: np.ndarray) -> _Rhythm:
    import librosa

    envelope = librosa.onset.onset_strength(y=mono, sr=ANALYSIS_SR, hop_length=_HOP,
                                            n_fft=_ONSET_N_FFT, n_mels=64)
    if not np.any(envelope > 0):  # a steady tone: no onsets at all
        return _Rhythm(bpm=float("nan"), confidence=0.0, envelope=envelope)
    # librosa.feature.tempo averages its tempogram over time before it weighs the lags; given
    # that average (one frame), it picks the same lag as from the envelope.
    coarse = float(librosa.feature.tempo(tg=_mean_tempogram(envelope)[:, None], sr=ANALYSIS_SR,
                                         hop_length=_HOP)[0])
    bpm = _refine_bpm(envelope, coarse)
    return _Rhythm(bpm=bpm, confidence=_beat_confidence(envelope, bpm), envelope=envelope)


def _fold(detected_bpm: float, target_bpm: float) -> float:
    """How to read ``detected_bpm`` against ``target_bpm``: the factor of _TEMPO_FACTORS that
    brings it within 10 % of the target, else the octave that brings it closest (a 100 BPM loop
    aimed at 128 BPM is sped up by 1.28, not read as 2:3 and slowed to 85.3)."""
    for factor in _TEMPO_FACTORS:
        if abs(math.log(detected_bpm * factor / target_bpm)) <= math.log(_FOLD_TOLERANCE):
            return factor
    distances = [abs(math.log(detected_bpm * f / target_bpm)) for f in _OCTAVE_FACTORS]
    return _OCTAVE_FACTORS[int(np.argmin(distances))]


def _align_tempo(mono, duration_s, bpm, reference, stretch, beat_offset, rates, offsets_s,
                 report, reasons):
    """Measure every stem's tempo and beat phase; fill ``rates`` (speed factors) and
    ``offsets_s``. Returns (target bpm, name of the grid stem)."""
    if duration_s < _MIN_TEMPO_DURATION_S:
        for name in mono:
            reasons[name].append(f"tempo: {duration_s:.2f} s is too short to measure a tempo "
                                 f"(needs {_MIN_TEMPO_DURATION_S:g} s)")
        return bpm, None
    rhythms = {name: _rhythm(y) for name, y in mono.items()}
    rhythmic: dict[str, float] = {}
    for name, rhythm in rhythms.items():
        entry = report[name]
        entry["confidence"]["beat"] = round(rhythm.confidence, 3)
        if math.isfinite(rhythm.bpm):
            entry["detected_bpm"] = round(rhythm.bpm, 3)
        if rhythm.confidence >= MIN_BEAT_CONFIDENCE:
            rhythmic[name] = rhythm.confidence
        else:
            reasons[name].append(f"tempo: no clear beat (beat confidence "
                                 f"{rhythm.confidence:.2f} < {MIN_BEAT_CONFIDENCE})")
    grid_stem = _pick(rhythmic, reference, "beat", reasons)
    if grid_stem is None:
        return bpm, None
    # Without stretching, the grid can only follow the tempo the reference already has.
    target_bpm = bpm if bpm is not None and stretch else rhythms[grid_stem].bpm

    phases: dict[str, float] = {}
    for name in rhythmic:
        detected = rhythms[name].bpm
        factor = _fold(detected, target_bpm)
        rate = target_bpm / (detected * factor) if stretch else 1.0
        if abs(rate - 1.0) < _STRETCH_TOLERANCE:
            rate = 1.0
        rates[name] = rate
        # Beat phase in the stem's own time, then in output time. Measured at the target beat,
        # except for a stem at 2/3 of the target tempo (factor 3/2): it pulses every 1.5 beats,
        # which no one-beat pulse train fits, so its own pulse is used.
        phase_bpm = detected * factor if factor <= 1.0 or factor.is_integer() else detected
        phases[name] = _beat_phase_s(rhythms[name].envelope, phase_bpm) / rate

    if beat_offset:
        beat_s = 60.0 / target_bpm
        for name, phase in phases.items():
            if name == grid_stem:
                continue
            offset = (phases[grid_stem] - phase + beat_s / 2) % beat_s - beat_s / 2
            offsets_s[name] = offset if abs(offset) >= _MIN_OFFSET_S else 0.0
    return target_bpm, grid_stem
