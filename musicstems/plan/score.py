"""The grid every part is written on: ticks, 16th steps, notes, and the score they follow.

Times are integer MIDI ticks, :data:`TICKS_PER_BEAT` to the quarter note, so the plan, the MIDI
file and the renderer share one exact grid. A bar of 4/4 is :data:`BAR_STEPS` steps of a 16th
note (:data:`STEP` ticks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..spec import Key
from .genres import Genre
from .harmony import Chord, Section

__all__ = ["Note", "Score", "TICKS_PER_BEAT", "STEP", "BAR_STEPS", "tick_at", "humanize",
           "scale_step", "degree_note"]

TICKS_PER_BEAT = 480
STEP = TICKS_PER_BEAT // 4  # a 16th note
BAR_STEPS = 16


class Note(NamedTuple):
    """One note: ``start`` and ``duration`` in ticks, MIDI ``pitch`` 0-127, ``velocity`` 1-127."""

    start: int
    duration: int
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Score:
    """What every part is written against."""

    key: Key
    genre: Genre
    chords: tuple[Chord, ...]  # one per bar
    sections: tuple[Section, ...]
    end_tick: int

    @property
    def num_bars(self) -> int:
        return len(self.chords)

    def section_of(self, bar: int) -> Section:
        for section in self.sections:
            if section.start_bar <= bar < section.end_bar:
                return section
        return self.sections[-1]

    def scale_notes(self, low: int, high: int) -> list[int]:
        pcs = set(self.key.scale())
        return [n for n in range(low, high + 1) if n % 12 in pcs]


def _swing(score: Score, step: int) -> int:
    """Ticks to delay a 16th step by: the genre's swing on the off-beat 16ths."""
    return int(round(score.genre.swing * STEP)) if step % 2 == 1 else 0


def tick_at(score: Score, bar: int, step: int) -> int:
    """The tick of 16th ``step`` (0-15) of ``bar``, swung."""
    return bar * BAR_STEPS * STEP + step * STEP + _swing(score, step)


def humanize(base: float, energy: float, rng: np.random.Generator, spread: float = 6.0) -> int:
    """A MIDI velocity (1-127): ``base`` scaled by the section's ``energy`` in [0, 1], plus
    normal noise of ``spread``, so repeated notes are not machine-equal."""
    value = base * (0.8 + 0.2 * energy) + rng.normal(0.0, spread)
    return int(np.clip(round(value), 1, 127))


def degree_note(score: Score, chord: Chord, offset: int, root_note: int) -> int:
    """The note ``offset`` scale steps above ``root_note`` (a MIDI note of the chord's root):
    a diatonic interval, so the result is in key (4 steps is the chord's fifth)."""
    return scale_step(score, root_note, offset) if offset else root_note


def scale_step(score: Score, note: int, steps: int) -> int:
    """``note`` moved ``steps`` scale steps (``note`` must be in key)."""
    if steps == 0:
        return note
    pcs = set(score.key.scale())
    direction = 1 if steps > 0 else -1
    for _ in range(abs(steps)):
        note += direction
        while note % 12 not in pcs:
            note += direction
    return note
