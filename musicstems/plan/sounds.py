"""Sounds: the timbre within a role (``"acid"`` bass, ``"epiano"``, ``"choir"`` pad ...).

One table, :data:`SOUNDS`, decides it; :func:`sound_of` reads it. Every sound named here has a
General MIDI program in :data:`musicstems.plan.midi.GM_PROGRAMS` (tests/test_plan.py checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .genres import Genre

__all__ = ["SoundRule", "SOUNDS", "sound_of"]


@dataclass(frozen=True)
class SoundRule:
    """How one role's sound is chosen; the first step that gives a sound wins.

    Attributes
    ----------
    words : tuple of (sound, trigger words)
        Tried in order: the first sound with any of its trigger words in the prompt.
    default : str
        The sound when no trigger word is in the prompt and neither table below names one.
    by_genre : dict of str -> str
        Genre name -> the sound it gives this role when the prompt names none.
    by_drum_family : dict of str -> str
        Drum family of the genre (:attr:`Genre.drums`) -> sound, after ``by_genre``.
    """

    words: tuple[tuple[str, tuple[str, ...]], ...]
    default: str
    by_genre: Mapping[str, str] = field(default_factory=dict)
    by_drum_family: Mapping[str, str] = field(default_factory=dict)

    def sounds(self) -> set[str]:
        """Every sound this rule can give."""
        return {self.default, *(s for s, _ in self.words), *self.by_genre.values(),
                *self.by_drum_family.values()}


SOUNDS: dict[str, SoundRule] = {
    "drums": SoundRule(
        words=(("808", ("808", "trap")),
               ("909", ("909", "techno", "industrial")),
               ("lofi", ("lofi", "dusty", "vinyl")),
               ("rock", ("rock",)),
               ("acoustic", ("acoustic", "live", "jazz", "brushes")),
               ("breaks", ("breakbeat", "breaks", "amen", "jungle"))),
        default="rock",
        by_genre={**dict.fromkeys(("rock", "metal", "punk", "pop", "country", "folk", "funk",
                                   "blues"), "rock"), "synthwave": "909", "lofi": "lofi"},
        by_drum_family={"fourfloor": "909", "breakbeat": "breaks", "hiphop": "boombap",
                        "trap": "808", "jazz": "acoustic", "ambient": "soft"}),
    "bass": SoundRule(
        words=(("acid", ("acid", "303", "squelchy", "squelch", "resonant")),
               ("808", ("808",)),
               ("reese", ("reese", "wobble", "growl", "growling", "neuro")),
               ("upright", ("uprightbass", "upright", "jazz", "walking")),
               ("electric", ("electric", "finger", "fingered", "slap", "funk", "funky",
                             "picked", "fretless")),
               ("sub", ("sub", "subbass", "subby")),
               ("synth", ("synth", "analog", "moog", "analogue"))),
        default="synth",
        by_genre={**dict.fromkeys(("techno", "minimal", "trance", "house", "techhouse",
                                   "deephouse", "edm", "synthwave"), "synth"),
                  **dict.fromkeys(("hiphop", "trap"), "808"),
                  **dict.fromkeys(("dubstep", "dnb"), "reese"),
                  **dict.fromkeys(("jungle", "ambient", "cinematic"), "sub"),
                  **dict.fromkeys(("jazz", "lofi", "folk"), "upright"),
                  **dict.fromkeys(("rock", "pop", "funk", "metal", "punk", "country", "blues",
                                   "reggae", "disco"), "electric"),
                  "electro": "acid"}),
    "pads": SoundRule(
        words=(("choir", ("choir", "vocal", "voices", "ahh", "ooh", "aah")),
               ("glass", ("glass", "glassy", "shimmer", "shimmering", "crystal"))),
        default="analog"),
    "piano": SoundRule(
        words=(("epiano", ("epiano", "rhodes", "wurlitzer", "electric")),),
        default="grand",
        by_genre=dict.fromkeys(("lofi", "rnb", "deephouse", "downtempo"), "epiano")),
    "lead": SoundRule(
        words=(("pluck", ("plucked", "pluck", "plucky")),
               ("square", ("square", "chiptune", "chip", "retro", "gameboy")),
               ("flute", ("flute", "whistle", "breathy", "pan")),
               ("sax", ("sax", "saxophone")),
               ("soft", ("sine", "soft", "pure", "gentle"))),
        default="saw"),
    "guitar": SoundRule(
        words=(("distorted", ("distorted", "overdriven", "crunchy", "heavy", "metal", "fuzz",
                              "fuzzy", "grungy")),
               ("acoustic", ("acoustic", "nylon", "folk", "fingerpicked", "classical",
                             "steel"))),
        default="clean",
        by_genre={"metal": "distorted", "punk": "distorted", "folk": "acoustic",
                  "country": "acoustic"}),
    "strings": SoundRule(words=(("pizzicato", ("pizzicato", "pizz", "plucked")),),
                         default="ensemble"),
    "brass": SoundRule(words=(("synthbrass", ("synth", "analog", "synthbrass")),),
                       default="section"),
    "organ": SoundRule(words=(("pipe", ("pipeorgan", "church", "cathedral")),),
                       default="drawbar"),
    "bells": SoundRule(
        words=(("mallet", ("marimba", "xylophone", "kalimba", "vibraphone", "vibes", "mallet",
                           "mallets")),
               ("glock", ("musicbox", "celesta", "glockenspiel", "toy"))),
        default="fm"),
    "pluck": SoundRule(words=(("harp", ("harp", "koto", "acoustic")),), default="synth"),
}


def sound_of(role: str, words: set[str], genre: Genre) -> str:
    """The sound of ``role`` for a prompt's ``words`` in ``genre`` (``"default"`` for a role
    :data:`SOUNDS` does not know)."""
    rule = SOUNDS.get(role)
    if rule is None:
        return "default"
    for sound, triggers in rule.words:
        if words.intersection(triggers):
            return sound
    return rule.by_genre.get(genre.name) or rule.by_drum_family.get(genre.drums, rule.default)
