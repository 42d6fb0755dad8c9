"""What every voice of the sketch synth shares: a note's frequency, its length in samples, its
own random generator, vibrato, a brightness-scaled cutoff, and mono to stereo."""

from __future__ import annotations

import zlib

import numpy as np

from . import dsp

__all__ = ["hz", "rng", "samples", "vibrato", "cutoff", "stereo"]


def hz(pitch: float) -> float:
    """A MIDI pitch's frequency, Hz (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


def rng(pitch: int, salt: str) -> np.random.Generator:
    """The generator of one voice's one pitch: the same noise every time that note sounds."""
    return np.random.default_rng([pitch, zlib.crc32(salt.encode())])


def samples(gate_s: float, release_s: float, sr: int) -> int:
    """Length of a note held ``gate_s`` with a ``release_s`` tail, in samples (at least 1)."""
    return max(1, int((gate_s + release_s) * sr))


def vibrato(freq: float, n: int, sr: int, *, rate_hz: float, depth_cents: float,
            delay_s: float = 0.15, start: float = 0.0) -> np.ndarray:
    """Frequency per sample, Hz: ``freq`` with a vibrato that fades in after ``delay_s``."""
    t = np.arange(n) / sr
    fade = np.clip((t - delay_s) / 0.3, 0.0, 1.0)
    return freq * dsp.cents(1.0) ** (depth_cents * fade * np.sin(2 * np.pi * (rate_hz * t + start)))


def cutoff(base_hz: float, brightness: float) -> float:
    """A filter cutoff, Hz, raised or lowered by the stem's brightness in [-1, 1]."""
    return base_hz * 2.0 ** (1.2 * brightness)


def stereo(mono: np.ndarray) -> np.ndarray:
    """(n,) -> (2, n): the same signal on both sides."""
    return np.stack((mono, mono))

