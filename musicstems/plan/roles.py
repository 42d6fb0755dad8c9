"""Prompt understanding: from a stem's prompt and the song's style to an instrument role.

Nothing here is learned: the prompt's words (:func:`musicstems.plan.words.tokens`) are scored
against a small, readable vocabulary (:mod:`musicstems.plan.words`): every role scores the
words it knows. Instrument nouns weigh 3, words that only
suggest a role ("punchy", "lush", "melody") weigh 1 or 2; the highest score wins, and the later
word wins a tie, because English noun phrases end in their head ("synth lead melody").

What is chosen, each field by its own small function that :func:`choose_style` composes:

- ``role`` — the instrument: one of :data:`ROLES`.
- ``sound`` — the timbre within the role (``"acid"`` bass, ``"epiano"``, ``"choir"`` pad ...),
  from the table in :mod:`musicstems.plan.sounds`.
- ``texture`` — what the part plays: ``beat``, ``bassline``, ``sustain`` (held chords),
  ``comp`` (rhythmic chords), ``strum``, ``stabs``, ``arp`` or ``melody``.
- ``density`` — 0 sparse, 1 medium, 2 busy; ``brightness`` in [-1, 1]; ``register`` in octaves;
  ``hypnotic`` (a motif that repeats unchanged) and ``movement`` (slow filter sweeps).

:func:`musicstems.plan.genres.genre_of` reads the style the same way and gives tempo, drum
family, swing, preferred mode and harmonic habits.
"""


from __future__ import annotations

from dataclasses import dataclass

from .genres import Genre, genre_of
from .sounds import sound_of
from .words import (BRIGHT, BUSY, DARK, HIGH, HYPNOTIC, LOW, MOVEMENT, SPARSE, TEXTURE_WORDS,
                    WORD_ROLES, tokens)

__all__ = ["ROLES", "TEXTURES", "StemStyle", "choose_style", "role_scores",
           "DEFAULT_ROLE_ORDER", "DEFAULT_TEXTURE", "ALLOWED_TEXTURES"]

ROLES = ("drums", "bass", "pads", "piano", "lead", "guitar", "strings", "brass", "organ",
         "bells", "pluck")
TEXTURES = ("beat", "bassline", "sustain", "comp", "strum", "stabs", "arp", "melody")
# Stems whose prompt names no instrument take the first of these that no other stem has.
DEFAULT_ROLE_ORDER = ("pads", "bass", "drums", "lead", "piano")

# role -> the texture it plays when the prompt names none
DEFAULT_TEXTURE = {"drums": "beat", "bass": "bassline", "pads": "sustain", "piano": "comp",
                   "lead": "melody", "guitar": "strum", "strings": "sustain", "brass": "stabs",
                   "organ": "sustain", "bells": "melody", "pluck": "arp"}
# role -> the only textures it may play (roles not listed may play any)
ALLOWED_TEXTURES = {"drums": ("beat",), "bass": ("bassline",),
                    "pads": ("sustain", "arp", "stabs")}


@dataclass(frozen=True)
class StemStyle:
    """What a stem's prompt asks for. See the module docstring for the fields."""

    role: str
    sound: str
    texture: str
    density: int
    brightness: float
    register: int
    hypnotic: bool
    movement: bool
    matched: bool

    def to_dict(self) -> dict:
        return {"role": self.role, "sound": self.sound, "texture": self.texture,
                "density": self.density, "brightness": self.brightness,
                "register": self.register, "hypnotic": self.hypnotic,
                "movement": self.movement, "matched": self.matched}


def role_scores(words: list[str]) -> dict[str, tuple[float, int]]:
    """role -> (score, position of its last matching word) for the words of one prompt."""
    scores: dict[str, tuple[float, int]] = {}
    for position, word in enumerate(words):
        for role, weight in WORD_ROLES.get(word, ()):
            total, _ = scores.get(role, (0.0, -1))
            scores[role] = (total + weight, position)
    return scores


def _role_from(words: list[str]) -> str | None:
    scores = role_scores(words)
    if not scores:
        return None
    return max(scores, key=lambda role: scores[role])


# -- the fields, one function each ---------------------------------------------------------------

def _role(words: list[str], name: str, taken: tuple[str, ...]) -> tuple[str, bool]:
    """(role, matched): from the prompt (matched), else the stem's name, else the first of
    :data:`DEFAULT_ROLE_ORDER` no other stem has."""
    role = _role_from(words)
    if role is not None:
        return role, True
    role = _role_from(tokens(name.replace("_", " ").replace("-", " ")))
    if role is None:
        role = next((r for r in DEFAULT_ROLE_ORDER if r not in taken), "lead")
    return role, False


def _sound(role: str, words: set[str], style_words: set[str], genre: Genre) -> str:
    """The sound table's choice; an acid style makes its bass acid, whatever the prompt says."""
    if "acid" in style_words and role == "bass":
        words = words | {"acid"}
    return sound_of(role, words, genre)


def _texture(role: str, words: list[str]) -> str:
    texture = DEFAULT_TEXTURE[role]
    for word in words:  # the last texture word wins, as for roles
        if word in TEXTURE_WORDS:
            texture = TEXTURE_WORDS[word]
    allowed = ALLOWED_TEXTURES.get(role)
    if allowed is not None and texture not in allowed:
        texture = DEFAULT_TEXTURE[role]
    if texture == "strum" and role != "guitar":  # only guitars strum; the rest comp
        texture = "comp"
    return texture


def _density(words: set[str], genre: Genre) -> int:
    """The genre's density, one up per busy word, one down per sparse word, in 0-2."""
    density = genre.density + sum(w in BUSY for w in words) - sum(w in SPARSE for w in words)
    return int(min(2, max(0, density)))


def _brightness(words: set[str], style_words: set[str]) -> float:
    """In [-1, 1]: half a point per bright (minus dark) word of the prompt, a quarter per word of
    the style."""
    bright = 0.5 * (sum(w in BRIGHT for w in words) - sum(w in DARK for w in words))
    bright += 0.25 * (sum(w in BRIGHT for w in style_words) - sum(w in DARK for w in style_words))
    return float(min(1.0, max(-1.0, bright)))


def _register(words: set[str], role: str) -> int:
    """Octaves from the role's usual range: +1 for a high word, -1 for a low one (bass and drums
    are low already: "deep bass" stays where bass is)."""
    return int(any(w in HIGH for w in words)) - int(
        any(w in LOW for w in words) and role not in ("bass", "drums"))


def _hypnotic(words: set[str], genre: Genre) -> bool:
    """A motif that repeats unchanged: asked for, or the genre's harmony is a vamp."""
    return bool(words & HYPNOTIC) or genre.harmony == "loop"


def _movement(words: set[str]) -> bool:
    return bool(words & MOVEMENT)


def choose_style(prompt: str, *, name: str = "", style: str | None = None,
                 genre: Genre | None = None, taken: tuple[str, ...] = ()) -> StemStyle:
    """Read one stem's prompt (and its name, and the shared style) into a :class:`StemStyle`.

    Parameters
    ----------
    prompt : str
        The stem's own prompt, e.g. ``"deep rolling acid bassline"``.
    name : str
        The stem's name; used when the prompt names no instrument (``"drums"`` -> drums).
    style : str, optional
        The song's shared style; it colours the sound (``"hip hop"`` bass -> an 808) but never
        picks the instrument.
    genre : Genre, optional
        The song's genre (:func:`genre_of` of the style when omitted).
    taken : tuple of str
        Roles already given to other stems; a prompt that names no instrument gets the first of
        :data:`DEFAULT_ROLE_ORDER` not in it.

    Examples
    --------
    >>> choose_style("deep rolling acid bassline").role
    'bass'
    >>> choose_style("hypnotic plucked synth lead melody").sound
    'pluck'
    """
    genre = genre or genre_of(style, prompt)
    words = tokens(prompt)
    wordset, style_words = set(words), set(tokens(style))
    role, matched = _role(words, name, taken)
    return StemStyle(role=role, sound=_sound(role, wordset, style_words, genre),
                     texture=_texture(role, words), density=_density(wordset, genre),
                     brightness=_brightness(wordset, style_words),
                     register=_register(wordset, role), hypnotic=_hypnotic(wordset, genre),
                     movement=_movement(wordset), matched=matched)
