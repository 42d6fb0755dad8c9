"""Chord parts: held chords (``sustain``), rhythmic ``comp``, ``stabs``, ``strum`` and ``arp``.

Chord tones only, each voicing chosen to move least from the previous chord
(:func:`musicstems.plan.harmony.voice_chord`); the arpeggio walks the chord tones of its range.
"""

from __future__ import annotations

import numpy as np

from .harmony import Chord, Section, voice_chord
from .roles import StemStyle
from .score import BAR_STEPS, STEP, Note, Score, degree_note, humanize, tick_at

__all__ = ["CHORD_RANGES", "COMP_RHYTHMS", "STRUM_PATTERNS", "STRUM_DIRECTIONS",
           "write_sustain", "write_comp", "write_stabs", "write_strum", "write_arp"]

# role -> (lowest, highest) MIDI note of its chords, before the stem's register shift
CHORD_RANGES = {"pads": (52, 76), "strings": (50, 79), "organ": (50, 74), "piano": (55, 77),
                "brass": (55, 77), "guitar": (52, 72), "lead": (57, 81), "pluck": (57, 81),
                "bells": (69, 93)}
# comp rhythm by density 0, 1, 2: one (step 0-15, length in 16th steps) per chord hit
COMP_RHYTHMS = (((0, 16),),
                ((0, 6), (6, 4), (10, 6)),
                ((0, 3), (3, 3), (6, 2), (8, 3), (11, 3), (14, 2)))
# Legend of a strum's direction:
#   D  down-strum: every string of the shape, lowest first
#   U  up-strum: the top four strings, highest first
STRUM_DIRECTIONS = {"D": "down, lowest string first", "U": "up, top four strings, highest first"}
# strum pattern by density 0, 1, 2: one (step 0-15, direction) per strum, to the next strum
STRUM_PATTERNS = (((0, "D"), (8, "D")),
                  ((0, "D"), (4, "D"), (6, "U"), (10, "U"), (12, "D"), (14, "U")),
                  ((0, "D"), (2, "U"), (4, "D"), (6, "U"), (8, "D"), (10, "U"), (12, "D"),
                   (14, "U")))


def _segments(score: Score, section: Section) -> list[tuple[int, int, Chord]]:
    """(first bar, number of bars, chord) runs of one chord inside ``section``."""
    runs: list[tuple[int, int, Chord]] = []
    for bar in range(section.start_bar, min(section.end_bar, score.num_bars)):
        chord = score.chords[bar]
        if runs and runs[-1][2] == chord:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1, chord)
        else:
            runs.append((bar, 1, chord))
    return runs


def write_sustain(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    low, high = CHORD_RANGES.get(style.role, (52, 76))
    low, high = low + 12 * style.register, high + 12 * style.register
    voices = 4 if len(score.chords[0].pitch_classes) == 3 else None
    notes: list[Note] = []
    previous = None
    for section in score.sections:
        for bar, length, chord in _segments(score, section):
            voicing = voice_chord(chord, low=low, high=high, previous=previous,
                                  num_voices=voices)
            previous = voicing
            start = tick_at(score, bar, 0)
            duration = length * BAR_STEPS * STEP - STEP // 4  # release just before the change
            velocity = humanize(92, section.energy, rng, 3.0)
            notes.extend(Note(start, duration, p, velocity) for p in voicing)
    return notes


def write_comp(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    low, high = CHORD_RANGES.get(style.role, (55, 77))
    low, high = low + 12 * style.register, high + 12 * style.register
    rhythm = COMP_RHYTHMS[style.density]
    notes: list[Note] = []
    previous = None
    for bar in range(score.num_bars):
        section, chord = score.section_of(bar), score.chords[bar]
        voicing = voice_chord(chord, low=low, high=high, previous=previous)
        previous = voicing
        if style.role == "piano":  # left hand: the root, low
            root = 36 + (chord.root - 36) % 12
            notes.append(Note(tick_at(score, bar, 0), 8 * STEP - 10, root,
                              humanize(90, section.energy, rng)))
        for step, length in rhythm:
            velocity = humanize(100 if step == 0 else 84, section.energy, rng)
            notes.extend(Note(tick_at(score, bar, step), length * STEP - 20, p, velocity)
                         for p in voicing)
    return notes


def write_stabs(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    low, high = CHORD_RANGES.get(style.role, (55, 77))
    low, high = low + 12 * style.register, high + 12 * style.register
    options = [2, 3, 6, 7, 10, 11, 14] if score.genre.drums == "fourfloor" else \
        [0, 3, 6, 8, 10, 11, 14]
    count = (2, 3, 4)[style.density]

    def rhythm() -> list[int]:
        return sorted(int(s) for s in rng.choice(options, size=count, replace=False))

    pattern = rhythm()
    notes: list[Note] = []
    previous = None
    for bar in range(score.num_bars):
        section, chord = score.section_of(bar), score.chords[bar]
        if not style.hypnotic and bar % 2 == 0 and bar:
            pattern = rhythm()
        voicing = voice_chord(chord, low=low, high=high, previous=previous)
        previous = voicing
        for step in pattern:
            velocity = humanize(104, section.energy, rng)
            notes.extend(Note(tick_at(score, bar, step), int(1.5 * STEP), p, velocity)
                         for p in voicing)
    return notes


def write_strum(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    pattern = STRUM_PATTERNS[style.density]
    notes: list[Note] = []
    previous = None
    stagger = 14  # ticks between strings: about 15 ms at 120 bpm, a relaxed strum
    for bar in range(score.num_bars):
        section, chord = score.section_of(bar), score.chords[bar]
        root = 40 + (chord.root - 40) % 12
        if style.sound == "distorted":  # power chord: root, fifth, octave
            fifth = degree_note(score, chord, 4, root)
            shape = (root, fifth, root + 12)
        else:
            upper = voice_chord(chord, low=root + 5, high=root + 24, previous=previous,
                                num_voices=4)
            previous = upper
            shape = (root, *upper)
        for index, (step, direction) in enumerate(pattern):
            next_step = pattern[index + 1][0] if index + 1 < len(pattern) else 16
            strings = shape if direction == "D" else tuple(reversed(shape[-4:]))
            base = tick_at(score, bar, step)
            length = (next_step - step) * STEP - 30
            velocity = humanize(100 if direction == "D" else 80, section.energy, rng)
            for order, pitch in enumerate(strings):
                offset = order * stagger
                notes.append(Note(base + offset, max(STEP // 2, length - offset), pitch,
                                  max(1, velocity - 3 * order)))
    return notes


def write_arp(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    low, high = CHORD_RANGES.get(style.role, (57, 81))
    low, high = low + 12 * style.register, high + 12 * style.register
    every = 1 if style.density == 2 or (style.density == 1 and score.genre.bpm < 110) else 2
    shape = str(rng.choice(["up", "updown", "down", "pinned"]))
    notes: list[Note] = []
    for bar in range(score.num_bars):
        section, chord = score.section_of(bar), score.chords[bar]
        tones = [n for n in range(low, high + 1) if n % 12 in chord.pitch_classes]
        tones = tones[:7] if len(tones) > 7 else tones
        if shape == "up":
            order = tones
        elif shape == "down":
            order = tones[::-1]
        elif shape == "updown":
            order = tones + tones[-2:0:-1]
        else:  # pinned: the lowest tone between each of the others
            order = [t for pair in zip([tones[0]] * (len(tones) - 1), tones[1:]) for t in pair]
        for index, step in enumerate(range(0, 16, every)):
            if style.density == 0 and step % 8 == 6:
                continue
            # a hypnotic arp restarts every bar; otherwise the pattern runs on across bars
            position = index if style.hypnotic else bar * (16 // every) + index
            pitch = order[position % len(order)]
            velocity = humanize(100 if step % 4 == 0 else 82, section.energy, rng)
            notes.append(Note(tick_at(score, bar, step), int(every * STEP * 0.9), pitch, velocity))
    return notes

