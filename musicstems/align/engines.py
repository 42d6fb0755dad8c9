"""Processing: time-stretch and pitch-shift a stem (Rubber Band where installed, else librosa's
phase vocoder), then place it on the grid at its input length."""

from __future__ import annotations

import math
import shutil

import numpy as np


def _engine() -> str:
    """``"rubberband"`` when pyrubberband and its command-line tool are both installed, else
    librosa's phase vocoder."""
    try:
        import pyrubberband  # noqa: F401
    except ImportError:
        return "librosa-phase-vocoder"
    return "rubberband" if shutil.which("rubberband") else "librosa-phase-vocoder"


def _stretch_and_shift(y: np.ndarray, sample_rate: int, rate: float, semitones: int,
                       engine: str) -> tuple[np.ndarray, str]:
    """Speed up by ``rate`` and transpose by ``semitones``; returns (channels, samples) audio of
    about ``len / rate`` samples and the name of the engine that did it."""
    fallback = "librosa-phase-vocoder"
    if engine == "rubberband":
        try:
            return _rubberband(y, sample_rate, rate, semitones), engine
        except Exception as error:  # a broken install must not lose the song: fall back, say so
            fallback = f"librosa-phase-vocoder (rubberband failed: {type(error).__name__})"
    import librosa

    # Pitch by a factor a = 2**(s/12): stretch by rate/a, then play the result back a times
    # faster by resampling from sr*a to sr (librosa.effects.pitch_shift does the same in two
    # passes). Both steps keep t = 0 fixed, so beat positions scale by exactly 1/rate.
    factor = 2.0 ** (semitones / 12.0)
    n_fft = 1 << max(9, min(12, int(round(math.log2(0.05 * sample_rate)))))  # ~50 ms window
    z = _time_stretch(y, rate / factor, n_fft)
    if semitones:
        z = librosa.resample(z, orig_sr=sample_rate * factor, target_sr=sample_rate,
                             res_type="soxr_hq")
    return z, fallback


def _time_stretch(y: np.ndarray, rate: float, n_fft: int) -> np.ndarray:
    """``librosa.effects.time_stretch(y, rate=rate, n_fft=n_fft, hop_length=n_fft // 4)``,
    sample for sample, from the same three ``librosa.core`` calls: ``librosa.effects`` itself is
    not imported, because it imports scikit-learn, a cost paid on a process's first alignment
    for nothing alignment uses (docs/alignment.md, *The first call*)."""
    import librosa

    hop = n_fft // 4
    spectrum = librosa.stft(y, n_fft=n_fft, hop_length=hop)
    stretched = librosa.phase_vocoder(spectrum, rate=rate, hop_length=hop, n_fft=n_fft)
    return librosa.istft(stretched, n_fft=n_fft, hop_length=hop, dtype=y.dtype,
                         length=int(round(y.shape[-1] / rate)))


def _rubberband(y: np.ndarray, sample_rate: int, rate: float, semitones: int) -> np.ndarray:
    import pyrubberband

    z = y.T  # pyrubberband wants (samples, channels)
    if rate != 1.0:
        z = pyrubberband.time_stretch(z, sample_rate, rate)
    if semitones:
        z = pyrubberband.pitch_shift(z, sample_rate, semitones)
    return np.atleast_2d(np.asarray(z, dtype=np.float32).T)


def _place(y: np.ndarray, shift: int, length: int) -> np.ndarray:
    """Delay (``shift`` > 0) or advance ``y`` by ``shift`` samples and cut or zero-pad it to
    ``length``; float32 (channels, length)."""
    out = np.zeros((y.shape[0], length), dtype=np.float32)
    start = max(shift, 0)
    source = y[:, max(-shift, 0):]
    count = max(0, min(length - start, source.shape[-1]))
    out[:, start:start + count] = source[:, :count]
    return out
