"""Loudness: ITU-R BS.1770-4 measurement, stem normalization, and mastering with a peak ceiling.

Integrated loudness follows ITU-R BS.1770-4 (K-weighting, 400 ms blocks with 75 % overlap,
absolute gate at -70 LUFS and relative gate at -10 LU), as implemented by pyloudnorm. True peak
follows BS.1770-4 Annex 2: the signal is oversampled 4x and the largest absolute value taken;
only the blocks whose samples could oversample above what matters are oversampled (an exact
bound, :class:`_PeakEnvelope`), so the answer is that of oversampling everything.
pyloudnorm wants ``(samples, channels)``; the transpose happens here and nowhere else.
"""

from __future__ import annotations

import functools
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


# 4x oversampling as BS.1770-4 Annex 2 asks, with scipy's resample_poly and its own filter
# (81 taps, so an output sample reads the input within 10 samples of it).
_OVERSAMPLE = 4
_FILTER_REACH = 10
# Input samples per block of the bound below, and context read either side of a block: more
# than the filter's reach, so a block's values equal those of the whole signal's oversampling.
_BLOCK = 256
_CONTEXT = 32


@functools.lru_cache(maxsize=1)
def _filter_taps() -> np.ndarray:
    """The low-pass resample_poly designs for up=4, down=1 (before its own scaling by 4)."""
    from scipy.signal import firwin

    half_len = 10 * _OVERSAMPLE
    taps = firwin(2 * half_len + 1, 1.0 / _OVERSAMPLE, window=("kaiser", 5.0))
    taps.setflags(write=False)
    return taps


@functools.lru_cache(maxsize=1)
def _filter_gain() -> float:
    """The most a 4x-oversampled sample can exceed the largest input sample it reads: every
    output is one polyphase branch of the filter applied to the input, so at most that
    branch's L1 norm times the input's largest magnitude (a slight margin covers rounding)."""
    taps = _filter_taps() * _OVERSAMPLE
    return float(max(np.abs(taps[phase::_OVERSAMPLE]).sum() for phase in range(_OVERSAMPLE))
                 * (1 + 1e-9))


def _runs(blocks: np.ndarray) -> list[tuple[int, int]]:
    """Sorted block numbers as (first, last) runs of consecutive ones."""
    if blocks.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(blocks) > 1)
    firsts = np.concatenate([blocks[:1], blocks[breaks + 1]])
    lasts = np.concatenate([blocks[breaks], blocks[-1:]])
    return list(zip(firsts.tolist(), lasts.tolist()))


class _PeakEnvelope:
    """Per-sample peak of the 4x-oversampled signal, the largest over the channels, computed
    exactly only in the blocks where it can reach a level.

    Oversampling is linear and local, so a block whose largest input magnitude (with the
    filter's reach either side) times :func:`_filter_gain` stays at or below a level cannot
    oversample above it: there the sample peak stands in. Blocks that can reach the level are
    oversampled with their context and hold the same values as oversampling the whole signal.
    """

    def __init__(self, audio: np.ndarray):
        from scipy.ndimage import maximum_filter1d

        self.audio = np.atleast_2d(audio)
        self.num_samples = self.audio.shape[-1]
        self.peaks = np.abs(self.audio).max(axis=0).astype(np.float64)
        reach = maximum_filter1d(self.peaks, size=2 * _FILTER_REACH + 3, mode="constant")
        blocks = -(-self.num_samples // _BLOCK)
        padded = np.zeros(blocks * _BLOCK)
        padded[:self.num_samples] = reach
        self.bounds = padded.reshape(blocks, _BLOCK).max(axis=1) * _filter_gain()
        self.exact = np.zeros(blocks, dtype=bool)

    def _oversampled(self, first: int, last: int) -> np.ndarray:
        """|4x oversampled| of blocks ``first`` to ``last`` (inclusive), (channels,
        4 * their samples), the same values as oversampling the whole signal."""
        from scipy.signal import resample_poly

        start = first * _BLOCK
        stop = min(self.num_samples, (last + 1) * _BLOCK)
        low, high = max(0, start - _CONTEXT), min(self.num_samples, stop + _CONTEXT)
        # window= the filter resample_poly would design itself: designed once, not per call
        up = resample_poly(self.audio[:, low:high].astype(np.float64), _OVERSAMPLE, 1, axis=-1,
                           window=_filter_taps())
        return np.abs(up[:, _OVERSAMPLE * (start - low):_OVERSAMPLE * (stop - low)])

    def reaching(self, level: float) -> np.ndarray:
        """The envelope (samples,), exact wherever it can exceed ``level``; elsewhere at most
        ``level`` (the sample peak)."""
        todo = (self.bounds > level) & ~self.exact
        for first, last in _runs(np.flatnonzero(todo)):
            start = first * _BLOCK
            over = self._oversampled(first, last)
            values = over.reshape(over.shape[0], -1, _OVERSAMPLE).max(axis=-1).max(axis=0)
            stop = start + values.shape[0]
            self.peaks[start:stop] = np.maximum(values, self.peaks[start:stop])
        self.exact |= todo
        return self.peaks

    def true_peak(self) -> float:
        """The largest value of the 4x-oversampled signal or of the samples: only the blocks
        whose bound passes the sample peak are oversampled (none else can hold the answer)."""
        if self.num_samples == 0:
            return 0.0
        sample_peak = float(self.peaks.max())
        found = [sample_peak]
        for first, last in _runs(np.flatnonzero(self.bounds > sample_peak)):
            found.append(float(self._oversampled(first, last).max()))
        return max(found)


def _true_peak_linear(audio: np.ndarray) -> float:
    return _PeakEnvelope(audio).true_peak()


def _true_peak_full(audio: np.ndarray) -> float:
    """The same as :func:`_true_peak_linear`, oversampling every sample (the tests' reference)."""
    from scipy.signal import resample_poly

    audio = np.atleast_2d(audio)
    if audio.shape[-1] == 0:
        return 0.0
    upsampled = resample_poly(audio.astype(np.float64), _OVERSAMPLE, 1, axis=-1)
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
    limiter is linked and the stereo image does not move), every sample exact (the tests'
    reference for :class:`_PeakEnvelope`)."""
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
    ceiling = db_to_gain(ceiling_dbfs)
    # the envelope is only needed exactly where it can pass the ceiling
    gain = _limiter_gain(_PeakEnvelope(audio).reaching(ceiling), sample_rate, ceiling,
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
    # once (exactly where a gain can push it past the ceiling) and only redo the cheap gain
    # curve per iteration.
    envelope = _PeakEnvelope(mix)
    ceiling = db_to_gain(ceiling_dbfs)
    gain_db = target_lufs - measured
    limited = False
    out = mix
    for _ in range(max_iterations):
        gain = db_to_gain(gain_db)
        # below ceiling / gain the envelope cannot ask for limiting, exact or not
        peaks = envelope.reaching(ceiling / gain * (1 - 1e-9))
        curve = _limiter_gain(peaks * gain, sample_rate, ceiling, 5.0, 60.0)
        limited = limited or curve is not None
        out = (mix * (gain if curve is None else gain * curve)).astype(np.float32)
        loudness = integrated_lufs(out, sample_rate)
        if loudness is None or abs(loudness - target_lufs) <= 0.05:
            break
        gain_db += target_lufs - loudness
    peak = _true_peak_linear(out)
    output_lufs = loudness  # measured on `out` in the last iteration
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
