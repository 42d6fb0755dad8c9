"""Tonal instrument voices: one function per sound, each rendering one note.

A voice gets the MIDI ``pitch``, how long the key is held (``gate_s``), the velocity as a number
in (0, 1], the stem's ``brightness`` in [-1, 1] and the sample rate, and returns ``(2, n)``
float64 audio that includes its release tail. Recipes:

- subtractive (saw / pulse -> resonant low-pass -> ADSR): synth, acid, reese bass; saw, square
  and pluck leads; brass; analog pads and strings, which stack detuned saws (unison) split left
  and right for width;
- plucked strings (Karplus-Strong, :mod:`.plucked`): guitars, upright and electric bass, harp,
  pizzicato;
- additive: piano (inharmonic partials ``f_k = k f0 sqrt(1 + B k^2)``, each decaying faster the
  higher it is), organ (drawbar sines with a rotary tremolo), glockenspiel and marimba bars;
- FM: bells and the electric piano (a modulator whose index decays: bright attack, pure tail).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import dsp, note
from .plucked import electric_bass, guitar, harp, pizzicato, upright

__all__ = ["render_note", "VOICES"]


# -- bass ----------------------------------------------------------------------------------------

def _acid(pitch, gate_s, vel, bright, sr):
    n = note.samples(gate_s, 0.03, sr)
    f = note.hz(pitch)
    accent = vel > 0.85
    osc = dsp.saw(f, n, sr)
    t = np.arange(n) / sr
    base = note.cutoff(330.0, bright)
    env_hz = (4200.0 if accent else 2200.0) * 2.0 ** bright
    cutoff = base + env_hz * np.exp(-t / (0.12 if accent else 0.2))
    y = dsp.sweep_filter(osc, cutoff, sr, q=8.0 if accent else 5.5)
    amp = dsp.adsr(n, sr, attack_s=0.002, decay_s=0.3, sustain=0.75, release_s=0.02,
                   gate_s=gate_s)
    return note.stereo(np.tanh(2.5 * y * amp) * 0.8)


def _synth_bass(pitch, gate_s, vel, bright, sr):
    n = note.samples(gate_s, 0.05, sr)
    f = note.hz(pitch)
    osc = 0.5 * (dsp.saw(f * dsp.cents(-6), n, sr) + dsp.saw(f * dsp.cents(6), n, sr, 0.3))
    osc += 0.7 * dsp.sine(f, n, sr)
    t = np.arange(n) / sr
    cutoff = note.cutoff(420.0, bright) + 900.0 * vel * np.exp(-t / 0.05)
    y = dsp.sweep_filter(osc, cutoff, sr, q=1.2)
    amp = dsp.adsr(n, sr, attack_s=0.003, decay_s=0.2, sustain=0.8, release_s=0.04,
                   gate_s=gate_s)
    return note.stereo(np.tanh(1.5 * y * amp))


def _sub(pitch, gate_s, vel, bright, sr):
    n = note.samples(gate_s, 0.06, sr)
    f = note.hz(pitch)
    y = dsp.sine(f, n, sr) + 0.12 * dsp.sine(2 * f, n, sr)
    amp = dsp.adsr(n, sr, attack_s=0.005, decay_s=0.5, sustain=0.85, release_s=0.05,
                   gate_s=gate_s)
    return note.stereo(np.tanh(1.3 * y * amp))


def _808(pitch, gate_s, vel, bright, sr):
    n = note.samples(max(gate_s, 0.25), 0.08, sr)
    f = note.hz(pitch)
    t = np.arange(n) / sr
    y = dsp.sine(f * (1 + 0.6 * np.exp(-t / 0.02)), n, sr)
    amp = np.exp(-t / 1.2) * dsp.adsr(n, sr, attack_s=0.002, decay_s=1.0, sustain=1.0,
                                     release_s=0.06, gate_s=max(gate_s, 0.25))
    return note.stereo(np.tanh(2.0 * y * amp) * 0.9)


def _reese(pitch, gate_s, vel, bright, sr):
    n = note.samples(gate_s, 0.06, sr)
    f = note.hz(pitch)
    y = 0.5 * (dsp.saw(f * dsp.cents(-14), n, sr) + dsp.saw(f * dsp.cents(14), n, sr, 0.5))
    y = dsp.filt(y, "lowpass", note.cutoff(520.0, bright), sr, q=1.0, order=2)
    y += 0.6 * dsp.sine(f, n, sr)
    amp = dsp.adsr(n, sr, attack_s=0.01, decay_s=0.4, sustain=0.9, release_s=0.05,
                   gate_s=gate_s)
    return note.stereo(np.tanh(1.8 * y * amp))


# -- keys ----------------------------------------------------------------------------------------

def _grand(pitch, gate_s, vel, bright, sr):
    f0 = note.hz(pitch)
    ring_s = float(np.interp(pitch, [21, 60, 108], [6.0, 3.0, 0.7]))
    n = note.samples(min(gate_s, ring_s), 0.25, sr)
    t = np.arange(n) / sr
    inharmonicity = 0.0002 * 2.0 ** ((pitch - 48) / 24)
    count = int(min(16, max(1, (0.42 * sr) // (f0 * 1.1))))
    k = np.arange(1, count + 1)[:, None]
    freqs = k * f0 * np.sqrt(1 + inharmonicity * k ** 2)
    hardness = 0.8 + 0.9 * (1.0 - vel) - 0.3 * bright
    amps = 1.0 / k ** hardness
    decays = ring_s / (1.0 + 0.7 * (k - 1))
    phases = note.rng(pitch, "grand").uniform(0, 1, (count, 1))
    partials = amps * np.exp(-t / decays) * np.sin(2 * np.pi * (freqs * t + phases))
    y = partials.sum(axis=0)
    y += 0.15 * dsp.filt(note.rng(pitch, "hammer").uniform(-1, 1, n), "lowpass", 2500.0, sr) * \
        np.exp(-t / 0.004)
    y *= np.minimum(1.0, t / 0.002)
    damp = np.where(t < gate_s, 1.0, np.exp(-(t - gate_s) / 0.07))
    pan = float(np.clip((pitch - 64) / 40.0, -0.5, 0.5))
    return dsp.pan_stereo(y * damp, pan) * 0.5


def _epiano(pitch, gate_s, vel, bright, sr):
    f0 = note.hz(pitch)
    n = note.samples(min(gate_s, 3.0), 0.2, sr)
    t = np.arange(n) / sr
    index = (0.6 + 1.8 * vel * 2.0 ** (0.5 * bright)) * np.exp(-t / 0.25) + 0.15
    modulator = np.sin(2 * np.pi * f0 * t)
    carrier = np.sin(2 * np.pi * f0 * t + index * modulator)
    tine = 0.12 * vel * np.sin(2 * np.pi * 7.0 * f0 * t) * np.exp(-t / 0.05) if f0 < 600 else 0
    y = (carrier + tine) * np.exp(-t / 1.6) * np.minimum(1.0, t / 0.002)
    y *= np.where(t < gate_s, 1.0, np.exp(-(t - gate_s) / 0.08))
    tremolo = 0.5 + 0.5 * np.sin(2 * np.pi * 4.5 * t)
    return np.stack((y * (0.75 + 0.25 * tremolo), y * (1.0 - 0.25 * tremolo))) * 0.6


def _organ(pitch, gate_s, vel, bright, sr, *, pipe=False):
    f0 = note.hz(pitch)
    n = note.samples(gate_s, 0.08 if not pipe else 0.25, sr)
    t = np.arange(n) / sr
    ratios = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0) if not pipe else (0.5, 1.0, 2.0, 4.0, 3.0)
    levels = (0.9, 1.0, 0.7, 0.55, 0.3, 0.25 + 0.1 * bright, 0.12 + 0.08 * bright) if not pipe \
        else (0.6, 1.0, 0.6, 0.3, 0.25)
    y = sum(level * np.sin(2 * np.pi * f0 * r * t) for r, level in zip(ratios, levels)
            if f0 * r < 0.45 * sr)
    y = y / sum(levels)
    attack = 0.004 if not pipe else 0.06
    amp = dsp.adsr(n, sr, attack_s=attack, decay_s=0.1, sustain=1.0,
                   release_s=0.06 if not pipe else 0.2, gate_s=gate_s)
    click = 0.0 if pipe else 0.2 * dsp.filt(note.rng(pitch, "click").uniform(-1, 1, n), "bandpass",
                                            2500.0, sr) * np.exp(-t / 0.003)
    y = y * amp + click
    rotor = np.sin(2 * np.pi * 5.7 * t)  # a rotary speaker: level and side swap
    return np.stack((y * (1.0 + 0.15 * rotor), y * (1.0 - 0.15 * rotor))) * 0.7


# -- leads, pads, strings, brass -----------------------------------------------------------------

def _unison(freqs, n: int, sr: int, detune_cents, salt: str, pitch: int, shape=dsp.saw):
    """Detuned oscillators split across left and right: ``(2, n)``."""
    starts = note.rng(pitch, salt).uniform(0, 1, len(detune_cents))
    out = np.zeros((2, n))
    for index, (detune, start) in enumerate(zip(detune_cents, starts)):
        f = freqs * dsp.cents(detune)
        wave = shape(f, n, sr, start)
        side = (index % 2) if detune else None
        if side is None:
            out += 0.7 * wave
        else:
            out[side] += wave
            out[1 - side] += 0.35 * wave
    return out / len(detune_cents)


def _saw_lead(pitch, gate_s, vel, bright, sr):
    n = note.samples(gate_s, 0.12, sr)
    f = note.vibrato(note.hz(pitch), n, sr, rate_hz=5.5, depth_cents=14)
    y = _unison(f, n, sr, (-8, 0, 8), "lead", pitch)
    t = np.arange(n) / sr
    cutoff = note.cutoff(1800.0, bright) * (1 + 1.5 * np.exp(-t / 0.08))
    y = np.stack([dsp.sweep_filter(c, cutoff, sr, q=1.5) for c in y])
    amp = dsp.adsr(n, sr, attack_s=0.008, decay_s=0.25, sustain=0.75, release_s=0.1,
                   gate_s=gate_s)
    return y * amp


def _pluck(pitch, gate_s, vel, bright, sr):
    n = note.samples(min(gate_s, 0.6), 0.25, sr)
    f = note.hz(pitch)
    y = _unison(f, n, sr, (-7, 7), "pluck", pitch)
    y += 0.4 * note.stereo(dsp.square(f, n, sr, 0.2, width=0.35))
    t = np.arange(n) / sr
    cutoff = note.cutoff(500.0, bright) + 5000.0 * vel * np.exp(-t / 0.07)
    y = np.stack([dsp.sweep_filter(c, cutoff, sr, q=2.0) for c in y])
    amp = np.exp(-t / 0.22) * np.minimum(1.0, t / 0.002)
    return y * amp


def _square_lead(pitch, gate_s, vel, bright, sr):
    n = note.samples(gate_s, 0.05, sr)
    f = note.vibrato(note.hz(pitch), n, sr, rate_hz=6.0, depth_cents=10, delay_s=0.2)
    y = dsp.square(f, n, sr, width=0.5)
    y = dsp.filt(y, "lowpass", note.cutoff(5000.0, bright), sr)
    amp = dsp.adsr(n, sr, attack_s=0.003, decay_s=0.1, sustain=0.8, release_s=0.04,
                   gate_s=gate_s)
    return note.stereo(y * amp * 0.6)


def _flute(pitch, gate_s, vel, bright, sr):
    n = note.samples(gate_s, 0.1, sr)
    f = note.vibrato(note.hz(pitch), n, sr, rate_hz=5.0, depth_cents=12, delay_s=0.2)
    y = dsp.sine(f, n, sr) + 0.2 * dsp.sine(2 * f, n, sr) + 0.06 * dsp.sine(3 * f, n, sr)
    breath = dsp.filt(note.rng(pitch, "breath").uniform(-1, 1, n), "bandpass",
                      2 * note.hz(pitch), sr, q=3.0)
    amp = dsp.adsr(n, sr, attack_s=0.06, decay_s=0.2, sustain=0.85, release_s=0.1,
                   gate_s=gate_s)
    return note.stereo((y + 0.25 * breath) * amp * 0.7)


def _sax(pitch, gate_s, vel, bright, sr):
    n = note.samples(gate_s, 0.08, sr)
    f = note.vibrato(note.hz(pitch), n, sr, rate_hz=5.2, depth_cents=18, delay_s=0.25)
    y = dsp.saw(f, n, sr)
    y = 0.6 * dsp.filt(y, "bandpass", 550.0, sr, q=2.0) + \
        0.5 * dsp.filt(y, "bandpass", 1500.0, sr, q=2.5) + 0.2 * y
    y = dsp.filt(np.tanh(2.0 * y), "lowpass", note.cutoff(3200.0, bright), sr)
    amp = dsp.adsr(n, sr, attack_s=0.03, decay_s=0.2, sustain=0.8, release_s=0.07,
                   gate_s=gate_s)
    return note.stereo(y * amp)


def _soft_lead(pitch, gate_s, vel, bright, sr):
    n = note.samples(gate_s, 0.15, sr)
    f = note.vibrato(note.hz(pitch), n, sr, rate_hz=5.0, depth_cents=8)
    y = dsp.sine(f, n, sr) + 0.15 * dsp.sine(2 * f, n, sr)
    amp = dsp.adsr(n, sr, attack_s=0.02, decay_s=0.3, sustain=0.8, release_s=0.15,
                   gate_s=gate_s)
    return note.stereo(y * amp * 0.8)


def _analog_pad(pitch, gate_s, vel, bright, sr):
    n = note.samples(gate_s, 0.8, sr)
    f = note.hz(pitch)
    y = _unison(f, n, sr, (-17, -10, -4, 0, 4, 10, 17), "pad", pitch)
    y = dsp.filt(y, "lowpass", note.cutoff(1500.0, bright), sr, q=0.9, order=2)
    amp = dsp.adsr(n, sr, attack_s=0.35, decay_s=0.6, sustain=0.85, release_s=0.7,
                   gate_s=gate_s)
    return y * amp * 1.4


def _choir(pitch, gate_s, vel, bright, sr):
    n = note.samples(gate_s, 0.7, sr)
    f = note.vibrato(note.hz(pitch), n, sr, rate_hz=4.8, depth_cents=10, delay_s=0.3)
    src = _unison(f, n, sr, (-9, 0, 9), "choir", pitch)
    y = sum(gain * dsp.filt(src, "bandpass", hz, sr, q=q)
            for hz, q, gain in ((700.0, 4.0, 1.0), (1220.0, 5.0, 0.6), (2600.0, 6.0, 0.35)))
    amp = dsp.adsr(n, sr, attack_s=0.4, decay_s=0.5, sustain=0.9, release_s=0.7,
                   gate_s=gate_s)
    return y * amp * 2.5


def _glass_pad(pitch, gate_s, vel, bright, sr):
    n = note.samples(gate_s, 0.9, sr)
    f = note.hz(pitch)
    t = np.arange(n) / sr
    mod = np.sin(2 * np.pi * 2.0 * f * t)
    y = np.sin(2 * np.pi * f * t + 0.8 * mod) + 0.3 * np.sin(2 * np.pi * 3.01 * f * t)
    amp = dsp.adsr(n, sr, attack_s=0.5, decay_s=0.8, sustain=0.8, release_s=0.8,
                   gate_s=gate_s)
    shimmer = np.sin(2 * np.pi * 0.3 * t)
    return np.stack((y * (1 + 0.2 * shimmer), y * (1 - 0.2 * shimmer))) * amp * 0.6


def _strings(pitch, gate_s, vel, bright, sr):
    n = note.samples(gate_s, 0.5, sr)
    f0 = note.hz(pitch)
    out = np.zeros((2, n))
    detunes = (-9, -4, 0, 4, 9)
    rates = note.rng(pitch, "bow").uniform(4.8, 6.2, len(detunes))
    for index, (detune, rate) in enumerate(zip(detunes, rates)):
        f = note.vibrato(f0 * dsp.cents(detune), n, sr, rate_hz=rate, depth_cents=9, delay_s=0.2,
                         start=index / 5)
        wave = dsp.saw(f, n, sr, index / 7)
        out[index % 2] += wave
        out[1 - index % 2] += 0.4 * wave
    out /= len(detunes)
    out = dsp.filt(out, "lowpass", note.cutoff(2400.0, bright), sr, order=2)
    out = dsp.filt(out, "highpass", 160.0, sr)
    amp = dsp.adsr(n, sr, attack_s=0.22, decay_s=0.5, sustain=0.9, release_s=0.45,
                   gate_s=gate_s)
    return out * amp * 1.6


def _brass(pitch, gate_s, vel, bright, sr, *, synth=False):
    n = note.samples(gate_s, 0.12, sr)
    f = note.vibrato(note.hz(pitch), n, sr, rate_hz=5.5, depth_cents=6, delay_s=0.3)
    y = _unison(f, n, sr, (-6, 0, 6) if not synth else (-12, 0, 12), "brass", pitch)
    t = np.arange(n) / sr
    top = note.cutoff(2600.0 if not synth else 3500.0, bright) * (0.6 + 0.4 * vel)
    swell = 1.0 - np.exp(-t / (0.05 if not synth else 0.02))
    cutoff = 350.0 + top * swell * (0.85 + 0.15 * np.exp(-t / 0.3))
    y = np.stack([dsp.sweep_filter(c, cutoff, sr, q=1.1) for c in y])
    amp = dsp.adsr(n, sr, attack_s=0.03, decay_s=0.25, sustain=0.85, release_s=0.1,
                   gate_s=gate_s)
    return np.tanh(1.4 * y * amp)


# -- bells and plucks ----------------------------------------------------------------------------

def _fm_bell(pitch, gate_s, vel, bright, sr):
    f = note.hz(pitch)
    n = note.samples(0.0, 2.5, sr)
    t = np.arange(n) / sr
    index = (1.5 + 2.5 * vel + bright) * np.exp(-t / 0.6)
    y = np.sin(2 * np.pi * f * t + index * np.sin(2 * np.pi * 3.5 * f * t))
    y *= np.exp(-t / 0.9) * np.minimum(1.0, t / 0.001)
    return np.stack((y, np.roll(y, 48))) * 0.7


def _mallet(pitch, gate_s, vel, bright, sr):
    f = note.hz(pitch)
    n = note.samples(0.0, 1.2, sr)
    t = np.arange(n) / sr
    y = np.sin(2 * np.pi * f * t) * np.exp(-t / 0.45)
    y += 0.3 * (0.6 + bright * 0.3) * np.sin(2 * np.pi * 3.93 * f * t) * np.exp(-t / 0.08)
    y += 0.1 * np.sin(2 * np.pi * 9.2 * f * t) * np.exp(-t / 0.02) if 9.2 * f < 0.45 * sr else 0
    return note.stereo(y * np.minimum(1.0, t / 0.001))


def _glock(pitch, gate_s, vel, bright, sr):
    f = note.hz(pitch)
    n = note.samples(0.0, 1.8, sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    for ratio, level, decay in ((1.0, 1.0, 1.0), (2.76, 0.4, 0.3), (5.4, 0.2, 0.1)):
        if ratio * f < 0.45 * sr:
            y += level * np.sin(2 * np.pi * ratio * f * t) * np.exp(-t / decay)
    return note.stereo(y * np.minimum(1.0, t / 0.0005) * 0.8)


Voice = Callable[[int, float, float, float, int], np.ndarray]
VOICES: dict[tuple[str, str], Voice] = {
    ("bass", "acid"): _acid, ("bass", "synth"): _synth_bass, ("bass", "sub"): _sub,
    ("bass", "808"): _808, ("bass", "reese"): _reese, ("bass", "upright"): upright,
    ("bass", "electric"): electric_bass,
    ("piano", "grand"): _grand, ("piano", "epiano"): _epiano,
    ("organ", "drawbar"): _organ, ("organ", "pipe"): lambda *a: _organ(*a, pipe=True),
    ("lead", "saw"): _saw_lead, ("lead", "pluck"): _pluck, ("lead", "square"): _square_lead,
    ("lead", "flute"): _flute, ("lead", "sax"): _sax, ("lead", "soft"): _soft_lead,
    ("pads", "analog"): _analog_pad, ("pads", "choir"): _choir, ("pads", "glass"): _glass_pad,
    ("strings", "ensemble"): _strings, ("strings", "pizzicato"): pizzicato,
    ("brass", "section"): _brass, ("brass", "synthbrass"): lambda *a: _brass(*a, synth=True),
    ("bells", "fm"): _fm_bell, ("bells", "mallet"): _mallet, ("bells", "glock"): _glock,
    ("pluck", "synth"): _pluck, ("pluck", "harp"): harp,
    ("guitar", "clean"): guitar("clean"), ("guitar", "acoustic"): guitar("acoustic"),
    ("guitar", "distorted"): guitar("distorted"),
}
_ROLE_DEFAULT = {"bass": "synth", "piano": "grand", "organ": "drawbar", "lead": "saw",
                 "pads": "analog", "strings": "ensemble", "brass": "section", "bells": "fm",
                 "pluck": "synth", "guitar": "clean"}


def render_note(role: str, sound: str, pitch: int, gate_s: float, velocity: int,
                brightness: float, sample_rate: int) -> np.ndarray:
    """One note of a tonal ``role``/``sound``: ``(2, n)`` float64 including its release.

    ``velocity`` is MIDI 1-127; it shapes the timbre here (brighter when harder) while the
    caller applies the loudness, so one rendering serves every velocity of a bucket.
    """
    voice = VOICES.get((role, sound))
    if voice is None:  # an unknown sound plays the role's usual one
        voice = VOICES.get((role, _ROLE_DEFAULT.get(role, "")), VOICES[("lead", "saw")])
    return voice(int(pitch), float(gate_s), velocity / 127.0, float(brightness),
                 int(sample_rate))

