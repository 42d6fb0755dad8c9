"""Drum synthesis: one-shots per General MIDI percussion key, in a few kits.

- kick: a sine swept down in pitch (the "boom"), a few ms of high-passed noise (the beater
  click), soft-clipped; the 808 kit's is long, the acoustic kits' short.
- snare: two decaying tones (the drum head's modes, ~185 and ~330 Hz) plus band-passed noise
  (the wires).
- clap: band-passed noise in three quick bursts and a tail, as several hands.
- hats, ride, crash: six square waves at inharmonic frequencies (the TR-808 recipe for metal)
  mixed with noise, high-passed, with short (closed) or long (open, ride, crash) envelopes.
- rim, toms, shaker: a click, swept sines, a short noise burst.

Each one-shot is ``(2, n)`` float64 at full velocity; the renderer scales it per hit.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import dsp

__all__ = ["drum_hit", "KITS", "PANS"]

KITS = ("909", "808", "rock", "acoustic", "breaks", "boombap", "lofi", "soft")
# GM key -> stereo position in [-1, 1] (drummer's view: hats right of centre)
PANS = {42: 0.25, 44: 0.25, 46: 0.25, 51: -0.3, 49: -0.35, 45: -0.25, 47: 0.0, 50: 0.25,
        70: -0.4, 37: 0.1}
_METAL_HZ = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)


def _t(duration_s: float, sr: int) -> np.ndarray:
    return np.arange(int(duration_s * sr)) / sr


def _noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, n)


def _kick(kit: str, sr: int) -> np.ndarray:
    shape = {  # length, end pitch, sweep depth, sweep time, amplitude decay, click, drive
        "909": (0.5, 48.0, 190.0, 0.032, 0.22, 0.5, 2.2),
        "808": (1.1, 44.0, 70.0, 0.05, 0.55, 0.15, 1.6),
        "rock": (0.4, 58.0, 110.0, 0.02, 0.14, 0.7, 1.4),
        "acoustic": (0.4, 60.0, 90.0, 0.02, 0.12, 0.5, 1.2),
        "breaks": (0.35, 60.0, 120.0, 0.018, 0.12, 0.8, 1.8),
        "boombap": (0.45, 52.0, 110.0, 0.03, 0.2, 0.6, 1.8),
        "lofi": (0.4, 55.0, 90.0, 0.03, 0.18, 0.3, 1.4),
        "soft": (0.5, 50.0, 60.0, 0.04, 0.25, 0.0, 1.0),
    }[kit]
    length, end_hz, depth_hz, sweep_s, decay_s, click, drive = shape
    t = _t(length, sr)
    freq = end_hz + depth_hz * np.exp(-t / sweep_s)
    body = dsp.sine(freq, len(t), sr) * np.exp(-t / decay_s)
    body *= np.minimum(1.0, t / 0.001)
    noise = dsp.filt(_noise(len(t), 1), "highpass", 2000.0, sr) * np.exp(-t / 0.004)
    out = np.tanh(drive * (body + click * noise)) / np.tanh(drive)
    return out


def _snare(kit: str, sr: int) -> np.ndarray:
    tone_decay, noise_decay, noise_level = {"909": (0.06, 0.16, 0.9), "808": (0.08, 0.12, 0.6),
                                            "soft": (0.05, 0.1, 0.5)}.get(kit, (0.07, 0.2, 1.0))
    t = _t(0.5, sr)
    tone = (dsp.sine(185.0 * (1 + 0.25 * np.exp(-t / 0.01)), len(t), sr)
            + 0.6 * dsp.sine(330.0, len(t), sr)) * np.exp(-t / tone_decay)
    noise = dsp.filt(_noise(len(t), 2), "bandpass", 5000.0, sr, q=0.5)
    noise = dsp.filt(noise, "highpass", 1200.0, sr) * np.exp(-t / noise_decay)
    out = 0.55 * tone + noise_level * 1.6 * noise
    return np.tanh(1.5 * out)


def _clap(kit: str, sr: int) -> np.ndarray:
    t = _t(0.45, sr)
    noise = dsp.filt(_noise(len(t), 3), "bandpass", 1200.0, sr, q=1.2)
    env = np.zeros_like(t)
    for offset in (0.0, 0.011, 0.022):
        shifted = t - offset
        env += np.where(shifted >= 0, np.exp(-np.maximum(shifted, 0) / 0.004), 0.0)
    tail = t - 0.031
    env += np.where(tail >= 0, 0.8 * np.exp(-np.maximum(tail, 0) / 0.12), 0.0)
    return 2.5 * noise * env


def _metal(duration_s: float, decay_s: float, highpass_hz: float, seed: int, sr: int,
           noise_mix: float = 0.5) -> np.ndarray:
    t = _t(duration_s, sr)
    metal = sum(dsp.square(f * 1.6, len(t), sr) for f in _METAL_HZ) / len(_METAL_HZ)
    mix = (1.0 - noise_mix) * metal + noise_mix * _noise(len(t), seed)
    mix = dsp.filt(mix, "highpass", highpass_hz, sr, order=2)
    env = np.exp(-t / decay_s) * np.minimum(1.0, t / 0.0008)
    return 2.2 * mix * env


def _tom(key: int, sr: int) -> np.ndarray:
    base = {45: 90.0, 47: 125.0, 50: 170.0}.get(key, 120.0)
    t = _t(0.5, sr)
    body = dsp.sine(base * (1 + 0.5 * np.exp(-t / 0.03)), len(t), sr) * np.exp(-t / 0.18)
    return np.tanh(1.4 * body)


def _rim(sr: int) -> np.ndarray:
    t = _t(0.08, sr)
    click = dsp.sine(1700.0, len(t), sr) + 0.6 * dsp.sine(820.0, len(t), sr)
    noise = dsp.filt(_noise(len(t), 4), "bandpass", 3000.0, sr, q=2.0)
    return (0.7 * click + noise) * np.exp(-t / 0.012)


def _shaker(sr: int) -> np.ndarray:
    t = _t(0.12, sr)
    noise = dsp.filt(_noise(len(t), 5), "bandpass", 6500.0, sr, q=1.0)
    env = np.minimum(1.0, t / 0.012) * np.exp(-np.maximum(t - 0.012, 0) / 0.03)
    return 1.8 * noise * env


@lru_cache(maxsize=128)
def drum_hit(key: int, kit: str, sample_rate: int) -> np.ndarray:
    """The one-shot of GM percussion ``key`` in ``kit``, ``(2, n)`` float64, peak near 1.

    Unknown keys play the closest voice (a tom, a hat, ...). Read-only: copy before editing.
    """
    sr = int(sample_rate)
    if key in (35, 36):
        mono = _kick(kit, sr)
    elif key in (38, 40):
        mono = _snare(kit, sr)
    elif key == 39:
        mono = _clap(kit, sr)
    elif key == 37:
        mono = _rim(sr)
    elif key in (42, 44):
        mono = _metal(0.15, 0.035 if key == 42 else 0.05, 7000.0, 6, sr) * (
            1.0 if key == 42 else 0.6)
    elif key == 46:
        mono = _metal(0.6, 0.18, 6500.0, 7, sr)
    elif key in (51, 59, 53):
        mono = _metal(1.5, 0.5, 4500.0, 8, sr, noise_mix=0.25) * 0.6
    elif key in (49, 57, 52, 55):
        mono = _metal(2.0, 0.7, 3500.0, 9, sr, noise_mix=0.7)
    elif key in (41, 43, 45, 47, 48, 50):
        mono = _tom(key, sr)
    else:
        mono = _shaker(sr)
    if kit == "lofi":  # dusty: band-limited, saturated and a little crushed
        mono = dsp.filt(np.tanh(2.0 * mono), "lowpass", 3200.0, sr, order=2)
        mono = np.round(mono * 48) / 48
    out = dsp.pan_stereo(mono, PANS.get(key, 0.0))
    out /= max(1e-9, float(np.max(np.abs(out))))
    out.setflags(write=False)
    return out
