"""Musical keys: the :class:`Key` type and :func:`parse_key`, which reads the names musicians write.

Kept apart from :mod:`musicstems.spec` (which re-exports both) because the plan, the harmony and
the alignment use keys as values, while spec.py is the door user input comes through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import MusicStemsError

__all__ = ["Key", "parse_key", "SHARP_NAMES", "FLAT_NAMES"]

_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
_MODE_WORDS = {
    "": "major", "maj": "major", "major": "major", "ionian": "major", "dur": "major",
    "m": "minor", "min": "minor", "minor": "minor", "aeolian": "minor", "moll": "minor",
}
_KEY_RE = re.compile(r"^\s*([A-Ga-g])\s*([#♯b♭]?)\s*[-_ ]?\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True)
class Key:
    """A musical key: ``tonic`` pitch class (0 = C ... 11 = B) and ``mode`` ("major"/"minor")."""

    tonic: int
    mode: str

    @property
    def name(self) -> str:
        # Flat spellings read better for the keys musicians write with flats.
        flats = {1, 3, 5, 8, 10} if self.mode == "major" else {3, 5, 8, 10}
        names = FLAT_NAMES if self.tonic in flats else SHARP_NAMES
        return f"{names[self.tonic]} {self.mode}"

    @property
    def relative(self) -> "Key":
        if self.mode == "major":
            return Key((self.tonic + 9) % 12, "minor")
        return Key((self.tonic + 3) % 12, "major")

    def scale(self) -> tuple[int, ...]:
        """Pitch classes of the key's natural major / natural minor scale."""
        steps = (0, 2, 4, 5, 7, 9, 11) if self.mode == "major" else (0, 2, 3, 5, 7, 8, 10)
        return tuple((self.tonic + s) % 12 for s in steps)

    def __str__(self) -> str:
        return self.name


def parse_key(key: "str | Key | None", *, argument: str = "key") -> Key | None:
    """Parse a key name such as ``"A minor"``, ``"Am"``, ``"F# major"``, ``"Bb"`` or ``"Eb min"``.

    Returns ``None`` for ``None``. Raises :class:`MusicStemsError` for anything else it cannot read.
    """
    if key is None or isinstance(key, Key):
        return key
    if not isinstance(key, str):
        raise MusicStemsError(
            f"{argument}={key!r} is not a key name; pass a string such as 'A minor' or 'F# major'.",
            arguments={argument: key})
    match = _KEY_RE.match(key)
    mode = _MODE_WORDS.get(match.group(3).lower()) if match else None
    if match is None or mode is None:
        raise MusicStemsError(
            f"{argument}={key!r} is not a key musicstems can read; write a tonic A-G with an "
            "optional # or b and a mode, e.g. 'A minor', 'Am', 'F# major', 'Bb'.",
            arguments={argument: key})
    letter, accidental = match.group(1).upper(), match.group(2)
    tonic = _PITCH_CLASSES[letter] + (1 if accidental in "#♯" and accidental else 0)
    tonic -= 1 if accidental in ("b", "♭") else 0
    return Key(tonic % 12, mode)
