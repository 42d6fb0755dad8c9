"""Part writing: the notes every stem plays against the song's shared chords, form and meter.

Times are integer MIDI ticks, :data:`TICKS_PER_BEAT` to the quarter note, so the plan, the MIDI
file and the renderer share one exact grid. A bar of 4/4 is 16 steps of a 16th note
(:data:`STEP` ticks). Each writer follows one rule of thumb of its texture:

- ``beat``: a 16-step pattern per drum family, thinned in quiet sections, a crash at each loud
  section's downbeat and a snare fill before it. Drums use General MIDI keys.
- ``bassline``: the chord root on every downbeat; other steps take the root, its octave, the
  chord's fifth, or a scale neighbour of the root (a passing tone, in key).
- ``sustain`` / ``comp`` / ``stabs`` / ``strum``: chord tones only, voiced to move least from
  the previous chord.
- ``arp``: chord tones only, up or up-and-down through two octaves.
- ``melody``: a motif of scale steps, transposed diatonically with each bar's chord; its
  strong-beat notes snap to chord tones, the others stay in the scale.

Every random choice comes from the ``rng`` a caller passes in (one per stem, seeded from the
song's seed and the stem's name and prompt), so the same inputs give the same notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..spec import Key
from .genres import Genre
from .harmony import Chord, Section, voice_chord
from .roles import StemStyle

__all__ = ["Note", "Score", "TICKS_PER_BEAT", "STEP", "write_part", "DRUM_KEYS"]

TICKS_PER_BEAT = 480
STEP = TICKS_PER_BEAT // 4  # a 16th note
BAR_STEPS = 16

# General MIDI percussion keys (channel 10)
DRUM_KEYS = {"kick": 36, "rim": 37, "snare": 38, "clap": 39, "closed_hat": 42, "pedal_hat": 44,
             "open_hat": 46, "low_tom": 45, "mid_tom": 47, "high_tom": 50, "crash": 49,
             "ride": 51, "shaker": 70}
_VEL = {"X": 118, "x": 96, "o": 62}


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


def _tick(score: Score, bar: int, step: int) -> int:
    return bar * BAR_STEPS * STEP + step * STEP + _swing(score, step)


def _vel(base: float, energy: float, rng: np.random.Generator, spread: float = 6.0) -> int:
    value = base * (0.8 + 0.2 * energy) + rng.normal(0.0, spread)
    return int(np.clip(round(value), 1, 127))


# -- drums ---------------------------------------------------------------------------------------

_DRUMS: dict[str, dict[str, tuple[str, str, str]]] = {  # family -> voice -> pattern per density
    "fourfloor": {"kick": ("X...X...X...X...",) * 3,
                  "clap": ("....x.......x...",) * 3,
                  "closed_hat": ("..x...x...x...x.", "o.x.o.x.o.x.o.x.", "oox.oox.oox.oox."),
                  "open_hat": ("................", "................", "..o...o...o...o.")},
    "backbeat": {"kick": ("X.......X.......", "X.......X.x.....", "X.....x.X.x....."),
                 "snare": ("....X.......X...",) * 3,
                 "closed_hat": ("x...x...x...x...", "x.o.x.o.x.o.x.o.", "xoxoxoxoxoxoxoxo")},
    "hiphop": {"kick": ("X.........X.....", "X......x..X.....", "X..x...x..X..x..",),
               "snare": ("....X.......X...",) * 3,
               "closed_hat": ("x...x...x...x...", "x.x.x.x.x.x.x.x.", "x.xox.xox.xox.xo")},
    "trap": {"kick": ("X.........x.....", "X.....x...x.....", "X.....x...x..x..",),
             "clap": ("........X.......",) * 3,
             "closed_hat": ("x.x.x.x.x.x.x.x.", "xoxoxoxoxoxoxoxo", "xoxoxoxoxoxoxxxx")},
    "breakbeat": {"kick": ("X.........x.....", "X.........x.....", "X.x.......x....."),
                  "snare": ("....X.......X...", "....X..o.o..X...", "....X..o.o..X..o"),
                  "closed_hat": ("x.x.x.x.x.x.x.x.", "x.x.x.x.x.x.x.x.", "xoxoxoxoxoxoxoxo")},
    "ambient": {"kick": ("X...............", "X.........x.....", "X.........x.....",),
                "rim": ("........o.......", "........x.......", "....x.......x..."),
                "shaker": ("o...o...o...o...", "o.o.o.o.o.o.o.o.", "oooooooooooooooo")},
    "jazz": {"ride": ("x...x.x.x...x.x.",) * 3,
             "pedal_hat": ("....x.......x...",) * 3,
             "kick": ("o...............", "o.......o.......", "o.....o.o.......")},
}


def _write_drums(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    family = _DRUMS[score.genre.drums]
    density = style.density
    notes: list[Note] = []
    for bar in range(score.num_bars):
        section = score.section_of(bar)
        energy = section.energy
        quiet = energy < 0.6
        for voice, patterns in family.items():
            pattern = patterns[density]
            if quiet and voice in ("clap", "snare") and score.genre.drums == "fourfloor":
                continue  # electronic intros and outros: kick and hats only
            if section.name == "break" and voice == "kick":
                continue
            if voice == "open_hat" and energy < 1.0:
                continue
            for step, char in enumerate(pattern):
                if char == ".":
                    continue
                notes.append(Note(_tick(score, bar, step), STEP,
                                  DRUM_KEYS[voice], _vel(_VEL[char], energy, rng)))
        is_last = bar == section.end_bar - 1
        following = next((s for s in score.sections if s.start_bar == section.end_bar), None)
        if is_last and following is not None and following.energy > energy:
            # a fill: 16th snares rising into the louder section
            fill_voice = "rim" if score.genre.drums == "ambient" else "snare"
            for step in range(12, 16):
                notes.append(Note(_tick(score, bar, step), STEP, DRUM_KEYS[fill_voice],
                                  _vel(70 + 12 * (step - 12), 1.0, rng, 3.0)))
        if bar == section.start_bar and bar > 0 and energy >= 0.7:
            notes.append(Note(_tick(score, bar, 0), 4 * STEP, DRUM_KEYS["crash"],
                              _vel(100, energy, rng)))
    return notes


# -- bass ----------------------------------------------------------------------------------------

def _degree_note(score: Score, chord: Chord, offset: int, root_note: int) -> int:
    """The note ``offset`` scale steps above ``root_note`` (a MIDI note of the chord's root):
    a diatonic interval, so the result is in key (4 steps is the chord's fifth)."""
    return _scale_step(score, root_note, offset) if offset else root_note


def _scale_step(score: Score, note: int, steps: int) -> int:
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


def _bass_cells(style: StemStyle, score: Score, rng: np.random.Generator
                ) -> list[tuple[int, int, str, bool]]:
    """One bar of bassline: (step, length in steps, interval, accent); interval is ``r`` root,
    ``o`` octave, ``f`` fifth, ``p`` passing tone, ``a`` approach to the next bar's root."""
    sound, density = style.sound, style.density
    if sound == "acid":
        chance = (0.45, 0.65, 0.8)[density]
        cells = []
        for step in range(16):
            if step == 0 or rng.random() < chance:
                if step == 0:
                    interval = "r"
                else:
                    interval = str(rng.choice(list("rrroofp" if step % 2 else "rrroof")))
                length = 1 if rng.random() < 0.75 else 2
                cells.append((step, length, interval, bool(step == 0 or rng.random() < 0.3)))
        return cells
    if sound == "808":
        second = int(rng.choice([7, 10]))
        return [(0, second, "r", True), (second, 16 - second, str(rng.choice(list("rro"))),
                                          False)]
    if sound in ("reese", "sub") and score.genre.drums in ("breakbeat", "trap"):
        return [(0, 10, "r", True), (10, 6, str(rng.choice(list("rrf"))), False)]
    if sound in ("sub",) or score.genre.drums == "ambient" or density == 0 and \
            sound not in ("synth", "electric"):
        return [(0, 16, "r", True)]
    if sound == "upright":
        return [(0, 4, "r", True), (4, 4, str(rng.choice(list("fo"))), False),
                (8, 4, str(rng.choice(list("fp"))), False), (12, 4, "a", False)]
    if sound == "electric" and score.genre.name == "funk":
        steps = (0, 3, 6, 8, 10, 13, 15)
        return [(s, 1 if s else 2, "r" if s == 0 else str(rng.choice(list("roof"))), s == 0)
                for s in steps]
    if sound == "electric":
        every = 4 if density == 0 else 2
        cells = [(s, every, "r", s == 0) for s in range(0, 16, every)]
        cells[-1] = (cells[-1][0], every, "a", False)
        return cells
    # synth: rolling off-kick 16ths (techno), off-beat 8ths (house), 8ths otherwise
    if score.genre.drums == "fourfloor":
        steps = ([0, 2, 6, 10, 14], [0, 2, 3, 6, 7, 10, 11, 14, 15],
                 [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15])[density]
        return [(s, 1, "r" if s in (0, 2) else str(rng.choice(list("rrro"))), s == 0)
                for s in steps]
    return [(s, 2, "r" if s == 0 else str(rng.choice(list("rrof"))), s == 0)
            for s in range(0, 16, 2 if density else 4)]


def _write_bass(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    low = 33 if style.sound in ("acid", "synth") else 28
    pattern = _bass_cells(style, score, rng)
    notes: list[Note] = []
    for bar in range(score.num_bars):
        section = score.section_of(bar)
        if not style.hypnotic and bar > 0 and (bar - section.start_bar) % 4 == 0:
            pattern = _bass_cells(style, score, rng)  # a new line every four bars
        chord = score.chords[bar]
        next_chord = score.chords[bar + 1] if bar + 1 < score.num_bars else score.chords[0]
        root = low + (chord.root - low) % 12
        cells = pattern if section.energy >= 0.6 else [c for c in pattern if c[0] % 8 == 0] \
            or pattern[:1]
        for step, length, interval, accent in cells:
            if interval == "r":
                pitch = root
            elif interval == "o":
                pitch = root + 12
            elif interval == "f":
                pitch = _degree_note(score, chord, 4, root)
            elif interval == "p":
                pitch = _scale_step(score, root, int(rng.choice([-1, 1])))
            else:  # approach: the scale neighbour of the next root, from the side we are on
                target = low + (next_chord.root - low) % 12
                pitch = _scale_step(score, target, -1 if target > root else 1) \
                    if target != root else root + 12
            gate = 0.95 if (length > 1 or style.sound != "acid") else 0.55
            notes.append(Note(_tick(score, bar, step), max(1, int(length * STEP * gate)), pitch,
                              _vel(118 if accent else 88, section.energy, rng, 4.0)))
    return notes


# -- chords --------------------------------------------------------------------------------------

_RANGES = {"pads": (52, 76), "strings": (50, 79), "organ": (50, 74), "piano": (55, 77),
           "brass": (55, 77), "guitar": (52, 72), "lead": (57, 81), "pluck": (57, 81),
           "bells": (69, 93)}
_COMP = (((0, 16),), ((0, 6), (6, 4), (10, 6)), ((0, 3), (3, 3), (6, 2), (8, 3), (11, 3),
                                                  (14, 2)))
_STRUM = (((0, "D"), (8, "D")), ((0, "D"), (4, "D"), (6, "U"), (10, "U"), (12, "D"), (14, "U")),
          tuple((s, "D" if s % 4 == 0 else "U") for s in range(0, 16, 2)))


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


def _write_sustain(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    low, high = _RANGES.get(style.role, (52, 76))
    low, high = low + 12 * style.register, high + 12 * style.register
    voices = 4 if len(score.chords[0].pitch_classes) == 3 else None
    notes: list[Note] = []
    previous = None
    for section in score.sections:
        for bar, length, chord in _segments(score, section):
            voicing = voice_chord(chord, low=low, high=high, previous=previous,
                                  num_voices=voices)
            previous = voicing
            start = _tick(score, bar, 0)
            duration = length * BAR_STEPS * STEP - STEP // 4  # release just before the change
            velocity = _vel(92, section.energy, rng, 3.0)
            notes.extend(Note(start, duration, p, velocity) for p in voicing)
    return notes


def _write_comp(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    low, high = _RANGES.get(style.role, (55, 77))
    low, high = low + 12 * style.register, high + 12 * style.register
    rhythm = _COMP[style.density]
    notes: list[Note] = []
    previous = None
    for bar in range(score.num_bars):
        section, chord = score.section_of(bar), score.chords[bar]
        voicing = voice_chord(chord, low=low, high=high, previous=previous)
        previous = voicing
        if style.role == "piano":  # left hand: the root, low
            root = 36 + (chord.root - 36) % 12
            notes.append(Note(_tick(score, bar, 0), 8 * STEP - 10, root,
                              _vel(90, section.energy, rng)))
        for step, length in rhythm:
            velocity = _vel(100 if step == 0 else 84, section.energy, rng)
            notes.extend(Note(_tick(score, bar, step), length * STEP - 20, p, velocity)
                         for p in voicing)
    return notes


def _write_stabs(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    low, high = _RANGES.get(style.role, (55, 77))
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
            velocity = _vel(104, section.energy, rng)
            notes.extend(Note(_tick(score, bar, step), int(1.5 * STEP), p, velocity)
                         for p in voicing)
    return notes


def _write_strum(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    pattern = _STRUM[style.density]
    notes: list[Note] = []
    previous = None
    stagger = 14  # ticks between strings: about 15 ms at 120 bpm, a relaxed strum
    for bar in range(score.num_bars):
        section, chord = score.section_of(bar), score.chords[bar]
        root = 40 + (chord.root - 40) % 12
        if style.sound == "distorted":  # power chord: root, fifth, octave
            fifth = _degree_note(score, chord, 4, root)
            shape = (root, fifth, root + 12)
        else:
            upper = voice_chord(chord, low=root + 5, high=root + 24, previous=previous,
                                num_voices=4)
            previous = upper
            shape = (root, *upper)
        for index, (step, direction) in enumerate(pattern):
            next_step = pattern[index + 1][0] if index + 1 < len(pattern) else 16
            strings = shape if direction == "D" else tuple(reversed(shape[-4:]))
            base = _tick(score, bar, step)
            length = (next_step - step) * STEP - 30
            velocity = _vel(100 if direction == "D" else 80, section.energy, rng)
            for order, pitch in enumerate(strings):
                offset = order * stagger
                notes.append(Note(base + offset, max(STEP // 2, length - offset), pitch,
                                  max(1, velocity - 3 * order)))
    return notes


def _write_arp(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    low, high = _RANGES.get(style.role, (57, 81))
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
            velocity = _vel(100 if step % 4 == 0 else 82, section.energy, rng)
            notes.append(Note(_tick(score, bar, step), int(every * STEP * 0.9), pitch, velocity))
    return notes


# -- melody --------------------------------------------------------------------------------------

_CELLS = (("x...", "x...", "....", "..x."),
          ("x...", "x.x.", "..x.", "x..x", "....", "x.xx"),
          ("x.x.", "xxx.", "x.xx", ".xx.", "xx.x", "x..x"))
_MELODY_RANGES = {"lead": (60, 84), "bells": (72, 96), "brass": (58, 79), "piano": (60, 84),
                  "guitar": (55, 79), "strings": (62, 88), "organ": (60, 81),
                  "pluck": (60, 84), "pads": (60, 81)}


def _motif(style: StemStyle, bars: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """A motif: (step from its start, offset in scale steps above the chord root)."""
    cells = _CELLS[style.density]
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


def _write_melody(style: StemStyle, score: Score, rng: np.random.Generator) -> list[Note]:
    low, high = _MELODY_RANGES.get(style.role, (60, 84))
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
            pitch = _degree_note(score, chord, offset, root)
            if step % 8 == 0 and pitch % 12 not in chord.pitch_classes:
                pitch = min((p for p in range(pitch - 4, pitch + 5)
                             if p % 12 in chord.pitch_classes), key=lambda p: abs(p - pitch))
            while pitch > high:
                pitch -= 12
            while pitch < low:
                pitch += 12
            next_step = events[index + 1][0] if index + 1 < len(events) else 16
            length = (next_step - step) if legato else min(2, next_step - step)
            velocity = _vel(108 if step % 4 == 0 else 88, section.energy, rng)
            notes.append(Note(_tick(score, bar, step), max(STEP // 2, length * STEP - 24),
                              pitch, velocity))
    return notes


_WRITERS = {"beat": _write_drums, "bassline": _write_bass, "sustain": _write_sustain,
            "comp": _write_comp, "stabs": _write_stabs, "strum": _write_strum,
            "arp": _write_arp, "melody": _write_melody}


def write_part(style: StemStyle, score: Score, rng: np.random.Generator) -> tuple[Note, ...]:
    """The notes of one stem, sorted by start then pitch, cut at ``score.end_tick``.

    Parameters
    ----------
    style : StemStyle
        The stem's role, sound, texture, density ... (:func:`musicstems.plan.roles.choose_style`).
    score : Score
        Key, genre, chords per bar, sections and the song's last tick.
    rng : np.random.Generator
        The stem's own generator.

    Returns
    -------
    tuple of Note
    """
    notes = _WRITERS[style.texture](style, score, rng)
    kept = []
    for note in notes:
        if note.start >= score.end_tick:
            continue
        duration = min(note.duration, score.end_tick - note.start)
        kept.append(Note(int(note.start), int(max(1, duration)), int(np.clip(note.pitch, 0, 127)),
                         int(note.velocity)))
    # two notes of one pitch on one tick would be one note in MIDI: keep the louder
    unique: dict[tuple[int, int], Note] = {}
    for note in kept:
        key = (note.start, note.pitch)
        if key not in unique or note.velocity > unique[key].velocity:
            unique[key] = note
    kept = sorted(unique.values(), key=lambda n: (n.start, n.pitch))
    # One sounding note per pitch: a note ends at the latest when the same pitch starts again,
    # so every note-off in a MIDI file belongs to the note it ends.
    next_start: dict[int, int] = {}
    for index in range(len(kept) - 1, -1, -1):
        note = kept[index]
        limit = next_start.get(note.pitch)
        if limit is not None and note.start + note.duration > limit:
            kept[index] = note._replace(duration=limit - note.start)
        next_start[note.pitch] = note.start
    return tuple(kept)
