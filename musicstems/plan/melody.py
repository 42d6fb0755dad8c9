"""Melody: a motif of scale steps, transposed diatonically with each bar's chord; its
strong-beat notes snap to chord tones, the others stay in the scale.
"""

from __future__ import annotations

import numpy as np

from .roles import StemStyle
from .score import STEP, Note, Score, degree_note, humanize, tick_at

__all__ = ["MELODY_CELLS", "MELODY_RANGES", "write_melody"]

# Legend of a rhythm cell: one beat, one character per 16th step:
#   x  a note starts here     .  no new note (the previous one may still sound)
# A motif draws one cell per beat, with equal chance, from its density's row (0 sparse,
# 1 medium, 2 busy); the first beat of a motif always starts with a note.
MELODY_CELLS = (("x...", "x...", "....", "..x."),
                ("x...", "x.x.", "..x.", "x..x", "....", "x.xx"),
                ("x.x.", "xxx.", "x.xx", ".xx.", "xx.x", "x..x"))
# role -> (lowest, highest) MIDI note of its melody, before the stem's register shift
MELODY_RANGES = {"lead": (60, 84), "bells": (72, 96), "brass": (58, 79), "piano": (60, 84),
                 "guitar": (55, 79), "strings": (62, 88), "organ": (60, 81),
                 "pluck": (60, 84), "pads": (60, 81)}


def _motif(style: StemStyle, bars: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """A motif: (step from its start, offset in scale steps above the chord root)."""
    cells = MELODY_CELLS[style.density]
    onsets = []
    for beat in range(4 * bars):
        cell = str(rng.choice(cells))
        if beat == 0 and not cell.startswith("x"):
            cell = "x" + cell[1:]
        onsets += [beat * 4 + i for i, c in enumerate(cell) if c == "x"]
    offset = int(rng.choice([0, 2, 4]))
    motif = []
    for step in onsets:
        if step % 8 == 0:  # strong: a chord tone
            offset = min((0, 2, 4, 7), key=lambda t: abs(t - offset) + 0.5 * rng.random())
        else:
            offset += int(rng.choice([-2, -1, -1, 1, 1, 2, 0]))
        offset = int(np.clip(offset, -3, 9))
        motif.append((step, offset))
    return motif


def write_melody(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    low, high = MELODY_RANGES.get(style.role, (60, 84))
    low, high = low + 12 * style.register, high + 12 * style.register
    bars = 1 if style.hypnotic or style.density == 2 else 2
    motifs = {"A": _motif(style, bars, rng), "B": _motif(style, bars, rng)}
    legato = style.sound not in ("pluck", "fm", "glock", "mallet", "grand", "synth")
    notes: list[Note] = []
    rest_in_intro = len(score.sections) >= 3
    for bar in range(score.num_bars):
        section, chord = score.section_of(bar), score.chords[bar]
        if section.name == "intro" and rest_in_intro:
            continue
        which = "B" if section.name in ("chorus", "drop") else "A"
        motif = motifs[which]
        position = (bar - section.start_bar) % bars
        repeat = (bar - section.start_bar) // bars
        events = [(s - 16 * position, o) for s, o in motif if 16 * position <= s < 16 * (
            position + 1)]
        if not style.hypnotic and repeat % 2 == 1 and position == bars - 1:
            # the answer: the last beat varies
            events = [(s, o + (int(rng.choice([-1, 1, 2])) if s >= 12 else 0))
                      for s, o in events]
        center = (low + high) // 2
        root = center - (center - chord.root) % 12  # the chord root just below the centre
        for index, (step, offset) in enumerate(events):
            pitch = degree_note(score, chord, offset, root)
            if step % 8 == 0 and pitch % 12 not in chord.pitch_classes:
                pitch = min((p for p in range(pitch - 4, pitch + 5)
                             if p % 12 in chord.pitch_classes), key=lambda p: abs(p - pitch))
            while pitch > high:
                pitch -= 12
            while pitch < low:
                pitch += 12
            next_step = events[index + 1][0] if index + 1 < len(events) else 16
            length = (next_step - step) if legato else min(2, next_step - step)
            velocity = humanize(108 if step % 4 == 0 else 88, section.energy, rng)
            notes.append(Note(tick_at(score, bar, step), max(STEP // 2, length * STEP - 24),
                              pitch, velocity))
    return notes

