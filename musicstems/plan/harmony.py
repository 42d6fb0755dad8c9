"""Harmony and form: diatonic chords, style-aware progressions, voicings, song sections.

Every chord is built by stacking thirds on a degree of the key's scale (natural major or natural
minor), so every chord tone is in the key by construction. Progressions are lists of scale
degrees (0 = I/i ... 6 = VII) drawn, with the song's seed, from a bank chosen by the genre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..spec import FLAT_NAMES, SHARP_NAMES, Key
from .genres import Genre

__all__ = ["Chord", "Section", "diatonic_chord", "choose_progression", "song_form",
           "voice_chord", "ROMAN"]

ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII")
_QUALITY = {  # intervals above the root -> quality
    (4, 7): "maj", (3, 7): "min", (3, 6): "dim", (4, 8): "aug",
    (4, 7, 11): "maj7", (3, 7, 10): "min7", (4, 7, 10): "7", (3, 6, 10): "m7b5",
}
_SUFFIX = {"maj": "", "min": "m", "dim": "dim", "aug": "aug", "maj7": "maj7", "min7": "m7",
           "7": "7", "m7b5": "m7b5"}

# Progression banks: scale degrees, per mode. Vamps repeat one or two chords, as techno does.
_BANKS: dict[tuple[str, str], tuple[tuple[int, ...], ...]] = {
    ("loop", "minor"): ((0, 0, 5, 6), (0, 0, 0, 5), (0, 6, 5, 6), (0, 3, 0, 3), (0, 0, 3, 4),
                        (0, 5, 0, 6)),
    ("loop", "major"): ((0, 0, 3, 4), (0, 3, 0, 3), (0, 4, 5, 3), (0, 0, 5, 4)),
    ("pop", "minor"): ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4), (0, 3, 6, 2)),
    ("pop", "major"): ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 5, 4), (5, 3, 0, 4), (0, 3, 0, 4)),
    ("jazz", "minor"): ((0, 3, 6, 2), (1, 4, 0, 0), (0, 5, 1, 4), (0, 3, 1, 4)),
    ("jazz", "major"): ((1, 4, 0, 5), (0, 5, 1, 4), (2, 5, 1, 4), (0, 3, 2, 5)),
    ("cinematic", "minor"): ((0, 5, 2, 6), (0, 5, 3, 6), (0, 2, 5, 6), (0, 3, 5, 4)),
    ("cinematic", "major"): ((0, 5, 3, 4), (3, 0, 4, 5), (0, 2, 5, 3)),
}


@dataclass(frozen=True)
class Chord:
    """A diatonic chord.

    Attributes
    ----------
    root : int
        Pitch class of the root, 0 = C ... 11 = B.
    quality : str
        ``"maj"``, ``"min"``, ``"dim"``, ``"maj7"``, ``"min7"``, ``"7"`` or ``"m7b5"``.
    degree : int
        Scale degree of the root, 0 = tonic.
    pitch_classes : tuple of int
        Root first, then third, fifth (and seventh).
    """

    root: int
    quality: str
    degree: int
    pitch_classes: tuple[int, ...]

    @property
    def name(self) -> str:
        names = FLAT_NAMES if self.root in (1, 3, 8, 10) else SHARP_NAMES
        return names[self.root] + _SUFFIX[self.quality]

    @property
    def roman(self) -> str:
        numeral = ROMAN[self.degree]
        if self.quality in ("min", "min7", "dim", "m7b5"):
            numeral = numeral.lower()
        return numeral + {"dim": "°", "m7b5": "ø7", "maj7": "maj7", "min7": "7",
                          "7": "7"}.get(self.quality, "")

    def to_dict(self) -> dict:
        return {"name": self.name, "roman": self.roman, "root": self.root,
                "quality": self.quality, "degree": self.degree,
                "pitch_classes": list(self.pitch_classes)}

    @classmethod
    def from_dict(cls, data: dict) -> "Chord":
        return cls(int(data["root"]), str(data["quality"]), int(data["degree"]),
                   tuple(int(p) for p in data["pitch_classes"]))


@dataclass(frozen=True)
class Section:
    """A part of the song form: ``name`` from bar ``start_bar`` for ``num_bars`` bars, played at
    ``energy`` in [0, 1] (intro and outro thin, chorus / drop full)."""

    name: str
    start_bar: int
    num_bars: int
    energy: float

    @property
    def end_bar(self) -> int:
        return self.start_bar + self.num_bars

    def to_dict(self) -> dict:
        return {"name": self.name, "start_bar": self.start_bar, "num_bars": self.num_bars,
                "energy": self.energy}

    @classmethod
    def from_dict(cls, data: dict) -> "Section":
        return cls(str(data["name"]), int(data["start_bar"]), int(data["num_bars"]),
                   float(data["energy"]))


def diatonic_chord(key: Key, degree: int, *, seventh: bool = False) -> Chord:
    """The chord on scale ``degree`` of ``key``: thirds stacked from the scale, so every tone is
    in the key."""
    scale = key.scale()
    steps = (0, 2, 4, 6) if seventh else (0, 2, 4)
    pcs = tuple(scale[(degree + s) % 7] for s in steps)
    intervals = tuple((pc - pcs[0]) % 12 for pc in pcs[1:])
    return Chord(pcs[0], _QUALITY[intervals], degree % 7, pcs)


def choose_progression(key: Key, genre: Genre, rng: np.random.Generator, *,
                       avoid: tuple[int, ...] | None = None) -> tuple[Chord, ...]:
    """A four-chord progression from the genre's bank, drawn with ``rng``; ``avoid`` (a degree
    pattern) is skipped when the bank has another, so a chorus differs from its verse."""
    bank = _BANKS[(genre.harmony, key.mode)]
    options = [p for p in bank if p != avoid] or list(bank)
    degrees = options[int(rng.integers(len(options)))]
    return tuple(diatonic_chord(key, d, seventh=genre.sevenths) for d in degrees)


# Section templates, in phrases; middle sections repeat to fill the song.
_ELECTRONIC = ("techno", "minimal", "techhouse", "deephouse", "house", "trance", "edm", "disco",
               "electro", "dnb", "jungle", "dubstep", "trap")
_ENERGY = {"intro": 0.45, "verse": 0.75, "chorus": 1.0, "build": 0.7, "drop": 1.0,
           "break": 0.4, "outro": 0.5, "main": 1.0, "bridge": 0.6}


def song_form(num_bars: int, genre: Genre) -> tuple[Section, ...]:
    """Sections covering ``num_bars`` bars, in phrases of 4 bars (2 for short songs, 1 for very
    short ones): intro, then alternating verse/chorus (build/drop in electronic styles), outro.

    Examples
    --------
    >>> from musicstems.plan.genres import GENRES
    >>> [s.name for s in song_form(16, GENRES["pop"])]
    ['intro', 'verse', 'chorus', 'outro']
    """
    if num_bars < 4:
        return (Section("main", 0, num_bars, 1.0),)
    phrase = 4 if num_bars >= 16 else 2 if num_bars >= 6 else 1
    phrases, remainder = divmod(num_bars, phrase)
    electronic = genre.name in _ELECTRONIC
    middle_names = ("build", "drop", "break", "drop") if electronic else \
        ("verse", "chorus", "verse", "chorus", "bridge", "chorus")
    if phrases < 3:
        names = list(middle_names[:phrases])
        lengths = [phrase] * phrases
    else:
        inner = phrases - 2
        names, lengths = ["intro"], [phrase]
        # middle sections of up to 2 phrases each (1 each while the song is short)
        per = 2 if inner >= 4 else 1
        index = 0
        while inner > 0:
            take = min(per, inner)
            names.append(middle_names[index % len(middle_names)])
            lengths.append(take * phrase)
            inner -= take
            index += 1
        names.append("outro")
        lengths.append(phrase)
    lengths[-1] += remainder
    sections, start = [], 0
    for name, length in zip(names, lengths):
        sections.append(Section(name, start, length, _ENERGY[name]))
        start += length
    return tuple(sections)


def voice_chord(chord: Chord, *, low: int, high: int, previous: tuple[int, ...] | None = None,
                num_voices: int | None = None) -> tuple[int, ...]:
    """MIDI notes of ``chord`` between ``low`` and ``high`` (inclusive), one per chord tone (or
    ``num_voices``, doubling the root on top), chosen to move least from ``previous``.

    Examples
    --------
    >>> from musicstems.spec import Key
    >>> voice_chord(diatonic_chord(Key(9, "minor"), 0), low=57, high=72)
    (60, 64, 69)
    """
    pcs = list(chord.pitch_classes)
    count = num_voices or len(pcs)
    best, best_cost = None, None
    for inversion in range(len(pcs)):
        order = pcs[inversion:] + pcs[:inversion]
        order = (order * 3)[:count]
        for base in range(low, low + 12):
            if base % 12 != order[0]:
                continue
            notes = [base]
            for pc in order[1:]:
                note = notes[-1] + 1
                while note % 12 != pc:
                    note += 1
                notes.append(note)
            if notes[-1] > high:
                continue
            if previous:
                cost = sum(min(abs(n - p) for p in previous) for n in notes) + \
                    abs(np.mean(notes) - np.mean(previous))
            else:
                cost = abs(np.mean(notes) - (low + high) / 2) + 0.1 * inversion
            if best_cost is None or cost < best_cost:
                best, best_cost = tuple(notes), cost
    if best is None:  # range too narrow for every tone: close position from the root
        base = low + (pcs[0] - low) % 12
        best = tuple(base + (pc - pcs[0]) % 12 for pc in pcs)[:count]
    return best
