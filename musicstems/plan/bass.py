"""Basslines: the chord root on every downbeat; other steps take the root, its octave, the
chord's fifth, a passing tone in key, or an approach to the next bar's root.

A bassline is a bar of cells from :data:`BASS_BARS` (or, for acid, drawn step by step), chosen
by the stem's sound and the genre; every four bars a non-hypnotic bass draws its bar again.
"""

from __future__ import annotations

import numpy as np

from ..errors import MusicStemsError
from .harmony import Chord
from .genres import Genre
from .roles import StemStyle
from .score import STEP, Note, Score, degree_note, humanize, scale_step, tick_at

__all__ = ["BASS_INTERVALS", "BASS_BARS", "ACID_CHANCE", "ACID_PICKS", "bass_cells",
           "write_bass"]

# Legend of the interval symbols: which note a bass cell plays against its bar's chord.
BASS_INTERVALS = {
    "r": "the chord's root",
    "o": "the root an octave up",
    "f": "the chord's fifth (four scale steps above the root)",
    "p": "a passing tone: one scale step below or above the root, drawn",
    "a": "an approach: the scale neighbour of the next bar's root, from this root's side",
}

# A bar of bassline, one cell per note: (step 0-15, length in 16th steps, picks). ``picks`` are
# the interval symbols above the note may take, one drawn with equal chance, so a repeated
# symbol weighs more ("rrof": the root half the time, the octave or the fifth a quarter each); a
# single symbol is no draw. The note on step 0 is accented.
BASS_BARS: dict[str, tuple[tuple[int, int, str], ...]] = {
    # 808: a long root, then a second note on step 7 or 10, drawn
    "808 (7)": ((0, 7, "r"), (7, 9, "rro")),
    "808 (10)": ((0, 10, "r"), (10, 6, "rro")),
    # reese or sub under broken beats: the root, then a second note on the kick's step 10
    "broken": ((0, 10, "r"), (10, 6, "rrf")),
    # sub, ambient, or a sparse bass that is neither synth nor electric: one root per bar
    "held": ((0, 16, "r"),),
    # upright: walking quarter notes into the next root
    "walking": ((0, 4, "r"), (4, 4, "fo"), (8, 4, "fp"), (12, 4, "a")),
    # electric bass in funk: syncopated 16ths
    "funk": ((0, 2, "r"), (3, 1, "roof"), (6, 1, "roof"), (8, 1, "roof"), (10, 1, "roof"),
             (13, 1, "roof"), (15, 1, "roof")),
    # electric bass, density 0 / density 1-2: roots, and an approach on the last one
    "electric quarters": ((0, 4, "r"), (4, 4, "r"), (8, 4, "r"), (12, 4, "a")),
    "electric eighths": ((0, 2, "r"), (2, 2, "r"), (4, 2, "r"), (6, 2, "r"), (8, 2, "r"),
                         (10, 2, "r"), (12, 2, "r"), (14, 2, "a")),
    # synth under a four-on-the-floor kick, density 0, 1, 2: rolling 16ths off the kick
    "rolling 0": ((0, 1, "r"), (2, 1, "r"), (6, 1, "rrro"), (10, 1, "rrro"), (14, 1, "rrro")),
    "rolling 1": ((0, 1, "r"), (2, 1, "r"), (3, 1, "rrro"), (6, 1, "rrro"), (7, 1, "rrro"),
                  (10, 1, "rrro"), (11, 1, "rrro"), (14, 1, "rrro"), (15, 1, "rrro")),
    "rolling 2": ((0, 1, "r"), (1, 1, "rrro"), (2, 1, "r"), (3, 1, "rrro"), (5, 1, "rrro"),
                  (6, 1, "rrro"), (7, 1, "rrro"), (9, 1, "rrro"), (10, 1, "rrro"),
                  (11, 1, "rrro"), (13, 1, "rrro"), (14, 1, "rrro"), (15, 1, "rrro")),
    # synth under any other beat, density 0 / density 1-2: 8th notes on the beats / every 8th
    "synth quarters": ((0, 2, "r"), (4, 2, "rrof"), (8, 2, "rrof"), (12, 2, "rrof")),
    "synth eighths": ((0, 2, "r"), (2, 2, "rrof"), (4, 2, "rrof"), (6, 2, "rrof"), (8, 2, "rrof"),
                      (10, 2, "rrof"), (12, 2, "rrof"), (14, 2, "rrof")),
}

# Acid draws its bar step by step: a note on each step with this chance (by density 0, 1, 2),
# 1 or 2 steps long, accented three times in ten; its picks by step, even / odd.
ACID_CHANCE = (0.45, 0.65, 0.8)
ACID_PICKS = ("rrroof", "rrroofp")

# a bass cell as the writer reads it: (step, length in steps, interval symbol, accented)
Cell = tuple[int, int, str, bool]


def _bar_name(sound: str, density: int, genre: Genre) -> str:
    """Which bar of :data:`BASS_BARS` a bass plays: the first rule that fits its sound, density
    and genre."""
    if sound in ("reese", "sub") and genre.drums in ("breakbeat", "trap"):
        return "broken"
    if sound == "sub" or genre.drums == "ambient" or density == 0 and \
            sound not in ("synth", "electric"):
        return "held"
    if sound == "upright":
        return "walking"
    if sound == "electric":
        if genre.name == "funk":
            return "funk"
        return "electric quarters" if density == 0 else "electric eighths"
    if genre.drums == "fourfloor":
        return f"rolling {density}"
    return "synth eighths" if density else "synth quarters"


def _acid_cells(density: int, rng: np.random.Generator) -> list[Cell]:
    chance = ACID_CHANCE[density]
    cells = []
    for step in range(16):
        if step == 0 or rng.random() < chance:
            interval = "r" if step == 0 else str(rng.choice(list(ACID_PICKS[step % 2])))
            length = 1 if rng.random() < 0.75 else 2
            cells.append((step, length, interval, bool(step == 0 or rng.random() < 0.3)))
    return cells


def bass_cells(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Cell]:
    """One bar of bassline: (step, length in steps, interval symbol, accent) per note, the
    symbols drawn from each cell's picks (see :data:`BASS_INTERVALS`)."""
    if style.sound == "acid":
        return _acid_cells(style.density, rng)
    if style.sound == "808":
        name = str(rng.choice(["808 (7)", "808 (10)"]))
    else:
        name = _bar_name(style.sound, style.density, score.genre)
    return [(step, length, picks if len(picks) == 1 else str(rng.choice(list(picks))), step == 0)
            for step, length, picks in BASS_BARS[name]]


def interval_pitch(interval: str, score: Score, chord: Chord, root: int, next_root: int,
                   rng: np.random.Generator) -> int:
    """The MIDI note of interval symbol ``interval`` over ``root`` (the chord's root as a bass
    note); ``next_root`` is the next bar's, in the same octave range."""
    if interval == "r":
        return root
    if interval == "o":
        return root + 12
    if interval == "f":
        return degree_note(score, chord, 4, root)
    if interval == "p":
        return scale_step(score, root, int(rng.choice([-1, 1])))
    if interval == "a":
        if next_root == root:
            return root + 12
        return scale_step(score, next_root, -1 if next_root > root else 1)
    raise MusicStemsError(f"bass interval {interval!r} is not one of {sorted(BASS_INTERVALS)}; "
                          "use a symbol BASS_INTERVALS defines.")


def write_bass(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    low = 33 if style.sound in ("acid", "synth") else 28
    pattern = bass_cells(style, score, rng)
    notes: list[Note] = []
    for bar in range(score.num_bars):
        section = score.section_of(bar)
        if not style.hypnotic and bar > 0 and (bar - section.start_bar) % 4 == 0:
            pattern = bass_cells(style, score, rng)  # a new line every four bars
        chord = score.chords[bar]
        next_chord = score.chords[bar + 1] if bar + 1 < score.num_bars else score.chords[0]
        root = low + (chord.root - low) % 12
        next_root = low + (next_chord.root - low) % 12
        cells = pattern if section.energy >= 0.6 else [c for c in pattern if c[0] % 8 == 0] \
            or pattern[:1]
        for step, length, interval, accent in cells:
            pitch = interval_pitch(interval, score, chord, root, next_root, rng)
            gate = 0.95 if (length > 1 or style.sound != "acid") else 0.55
            notes.append(Note(tick_at(score, bar, step), max(1, int(length * STEP * gate)), pitch,
                              humanize(118 if accent else 88, section.energy, rng, 4.0)))
    return notes
