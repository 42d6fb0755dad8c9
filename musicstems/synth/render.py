"""Lay one stem's notes out into audio, then give it its room (reverb, echo, movement).

Notes that sound the same are rendered once: drum hits per GM key, tonal notes per (pitch,
length, velocity bucket); the loudness of each hit is its own velocity. Rendering is a pure
function of the part, the tempo and the sample rate, so the same plan gives bit-identical audio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..plan.genres import GENRES
from . import dsp
from .drums import drum_hit
from .voices import render_note

if TYPE_CHECKING:  # pragma: no cover
    from ..plan import Part, Plan

__all__ = ["render_part", "EFFECTS"]

# role -> (reverb wet, reverb decay s, echo wet); echoes are a dotted 8th apart
EFFECTS = {
    "drums": (0.06, 0.8, 0.0), "bass": (0.0, 1.0, 0.0), "pads": (0.35, 2.8, 0.0),
    "piano": (0.18, 1.8, 0.0), "lead": (0.18, 1.8, 0.22), "guitar": (0.14, 1.5, 0.0),
    "strings": (0.3, 2.4, 0.0), "brass": (0.15, 1.6, 0.0), "organ": (0.12, 1.6, 0.0),
    "bells": (0.3, 2.4, 0.15), "pluck": (0.22, 2.0, 0.25),
}
_DUCKED = ("pads", "strings", "organ")
_PEAK = 0.5  # stems leave the backend peaking at -6 dBFS; loudness matching comes later


def _velocity_gain(velocity: int) -> float:
    """MIDI velocity -> amplitude: a 40 dB range, (v / 127) ** 2 as most synths do."""
    return (velocity / 127.0) ** 2


def _add(out: np.ndarray, sound: np.ndarray, start: int, gain: float) -> None:
    stop = min(out.shape[-1], start + sound.shape[-1])
    if stop > start:
        out[:, start:stop] += gain * sound[:, :stop - start]


def render_part(part: "Part", plan: "Plan", sample_rate: int, num_samples: int) -> np.ndarray:
    """Audio of one stem.

    Parameters
    ----------
    part : Part
        The stem's role, sound and notes.
    plan : Plan
        For the tempo (ticks -> samples) and the bar length (movement, echoes).
    sample_rate : int > 0, Hz
    num_samples : int
        Length of the result.

    Returns
    -------
    np.ndarray [shape=(2, num_samples)], float32
        Peak at -6 dBFS (silence stays zeros).
    """
    sr = int(sample_rate)
    samples_per_tick = plan.beat_s * sr / plan.ticks_per_beat
    role, sound = part.role, part.sound
    out = np.zeros((2, num_samples + int(3.0 * sr)))
    if role == "drums":
        for note in part.notes:
            hit = drum_hit(note.pitch, sound, sr)
            _add(out, hit, int(round(note.start * samples_per_tick)),
                 _velocity_gain(note.velocity))
    else:
        cache: dict[tuple[int, int, int], np.ndarray] = {}
        for note in part.notes:
            bucket = int(min(127, max(16, 16 * round(note.velocity / 16))))
            key = (note.pitch, note.duration, bucket)
            if key not in cache:
                gate_s = note.duration * plan.beat_s / plan.ticks_per_beat
                cache[key] = render_note(role, sound, note.pitch, gate_s, bucket,
                                         part.style.brightness, sr)
            _add(out, cache[key], int(round(note.start * samples_per_tick)),
                 _velocity_gain(note.velocity))
    if part.style.movement:  # a slow filter sweep, one cycle per four bars
        t = np.arange(out.shape[-1]) / sr
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * t / (4 * plan.bar_s) - np.pi / 2)
        dark = dsp.filt(out, "lowpass", 500.0, sr, order=2)
        out = mix * out + (1.0 - mix) * dark
    if role in _DUCKED and GENRES.get(plan.genre, GENRES["default"]).drums == "fourfloor":
        # the pump of club music: held parts dip on every beat, where the kick lands
        t = np.arange(out.shape[-1]) / sr
        since_beat = np.mod(t, plan.beat_s)
        # a 6 ms ramp into the dip: a step in gain would click on every beat
        attack_s = 0.006
        depth = np.minimum(1.0, since_beat / attack_s) * np.exp(
            -np.maximum(since_beat - attack_s, 0.0) / 0.09)
        out *= 1.0 - 0.45 * depth
    wet, decay_s, echo = EFFECTS.get(role, (0.15, 1.5, 0.0))
    if part.style.texture in ("arp", "melody") and role in ("pads", "piano", "guitar"):
        echo = max(echo, 0.12)
    out = dsp.tempo_delay(out, sr, delay_s=0.75 * plan.beat_s, feedback=0.45, wet=echo)
    out = dsp.reverb(out, sr, decay_s=decay_s, wet=wet)
    out = out[:, :num_samples]
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 0:
        out *= _PEAK / peak
    return out.astype(np.float32)



