"""Plucked strings (Karplus-Strong): upright and electric bass, pizzicato, harp, guitars.

Every voice takes ``(pitch, gate_s, velocity 0-1, brightness -1..1, sample_rate)`` and returns
``(2, n)`` float64 audio with its release tail, as :mod:`.voices` describes.
"""

from __future__ import annotations

import numpy as np

from . import dsp, note

__all__ = ["string_pluck", "upright", "electric_bass", "pizzicato", "harp", "guitar"]


def string_pluck(pitch, gate_s, vel, bright, sr, *, t60_s, hardness, release_s=0.06,
                 body_hz=None, drive=0.0, lowpass_hz=None, salt="pluck"):
    n = note.samples(gate_s, release_s, sr)
    y = dsp.karplus_strong(note.hz(pitch), n, sr, t60_s=t60_s,
                           brightness=float(np.clip(hardness + 0.2 * bright + 0.2 * (vel - 0.7),
                                                    0.05, 0.98)),
                           rng=note.rng(pitch, salt))
    if body_hz:
        y = y + 0.4 * dsp.filt(y, "bandpass", body_hz, sr, q=2.0)
    if drive:
        y = np.tanh(drive * y / max(1e-9, np.max(np.abs(y))))
        y = dsp.filt(y, "lowpass", 4200.0, sr, order=2)  # the cabinet
    if lowpass_hz:
        y = dsp.filt(y, "lowpass", note.cutoff(lowpass_hz, bright), sr)
    t = np.arange(n) / sr
    damp = np.where(t < gate_s, 1.0, np.exp(-(t - gate_s) / (release_s / 4.6)))
    return note.stereo(y * damp)


def upright(pitch, gate_s, vel, bright, sr):
    return string_pluck(pitch, gate_s, vel, bright, sr, t60_s=1.2, hardness=0.35,
                        lowpass_hz=900.0, body_hz=110.0, salt="upright")


def electric_bass(pitch, gate_s, vel, bright, sr):
    out = string_pluck(pitch, gate_s, vel, bright, sr, t60_s=2.5, hardness=0.55,
                       lowpass_hz=1800.0, salt="ebass")
    n = out.shape[-1]
    fund = dsp.sine(note.hz(pitch), n, sr) * dsp.adsr(n, sr, attack_s=0.003, decay_s=0.6,
                                                      sustain=0.5, release_s=0.05, gate_s=gate_s)
    return out + 0.5 * note.stereo(fund)


def pizzicato(pitch, gate_s, vel, bright, sr):
    return string_pluck(pitch, min(gate_s, 0.4), vel, bright, sr, t60_s=0.5, hardness=0.45,
                        body_hz=400.0, release_s=0.15, salt="pizz")


def harp(pitch, gate_s, vel, bright, sr):
    return string_pluck(pitch, max(gate_s, 1.0), vel, bright, sr, t60_s=2.5, hardness=0.4,
                        release_s=0.3, salt="harp")


def guitar(kind: str):
    def voice(pitch, gate_s, vel, bright, sr):
        if kind == "distorted":
            return 0.5 * string_pluck(pitch, gate_s, vel, bright, sr, t60_s=4.0, hardness=0.6,
                                      drive=6.0, salt="dist")
        if kind == "acoustic":
            return string_pluck(pitch, gate_s, vel, bright, sr, t60_s=3.0, hardness=0.7,
                                body_hz=180.0, salt="acoustic")
        return string_pluck(pitch, gate_s, vel, bright, sr, t60_s=3.0, hardness=0.55,
                            lowpass_hz=3500.0, salt="clean")
    return voice
