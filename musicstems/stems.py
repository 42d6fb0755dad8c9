"""The stems of a song: :class:`Stem`, the checks of their names and prompts, and the prompt
each stem sends to the model (its own words plus the song's shared context)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .checks import GAIN_DB_RANGE, check_finite
from .errors import MusicStemsError
from .keys import Key

__all__ = ["Stem", "parse_stems", "build_prompt", "stem_seed", "derive_seed"]

# Names that are not portable file names (Windows reserves these whatever the extension).
_RESERVED_NAMES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                   *(f"lpt{i}" for i in range(1, 10))}
_SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")


@dataclass(frozen=True)
class Stem:
    """One instrument of a song.

    Parameters
    ----------
    name : str
        Short name, also the stem's file name: letters, digits, ``-`` and ``_``, at most 64.
    prompt : str
        What this stem should sound like, e.g. ``"deep rolling acid bassline"``.
    gain_db : float
        Level of this stem in the mix relative to the others, in dB (after loudness matching).
    pan : float
        Stereo position in [-1, 1]: -1 hard left, 0 centre, 1 hard right.
    melody : str or Path, optional
        An audio file (a hummed or played tune) whose chroma this stem follows; melody
        models only (``model="facebook/musicgen-melody"``), tonal stems only.
    seed : int in [0, 2**32), optional
        This stem's own seed. When omitted it is derived from the song's seed and the stem's
        name (:func:`stem_seed`), so a stem sounds the same whatever the other stems are.
    """

    name: str
    prompt: str
    gain_db: float = 0.0
    pan: float = 0.0
    melody: Any = None
    seed: int | None = None


def stem_seed(song_seed: int, stem: "Stem | str") -> int:
    """The seed a stem is generated with: its own ``Stem.seed`` when given, else one derived
    from the song's seed and the stem's name (BLAKE2b of both, 32 bits), so it does not
    depend on the other stems, their order or their number."""
    if isinstance(stem, Stem) and stem.seed is not None:
        return int(stem.seed)
    return derive_seed(int(song_seed), stem.name if isinstance(stem, Stem) else str(stem))


def derive_seed(*labels: Any) -> int:
    """A 32-bit seed that depends on ``labels`` alone (BLAKE2b of them joined by ``/``): the
    same labels give the same seed on every machine and Python, unlike ``hash()``."""
    text = "/".join(str(label) for label in labels)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "little")


def _check_stem_seed(name: str, seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise MusicStemsError(
            f"stem {name!r} has seed={seed!r}; pass a whole number from 0 to 2**32 - 1, or "
            "None to derive it from the song's seed and the stem's name.")
    return seed


def _check_name(name: Any, seen: dict[str, str]) -> str:
    if not isinstance(name, str) or not _SAFE_NAME_RE.match(name) or \
            name.lower() in _RESERVED_NAMES:
        raise MusicStemsError(
            f"stem name {name!r} is not a safe file name; use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit (e.g. 'drums', 'lead_2'), and not a reserved "
            "device name such as 'con' or 'nul'."
        )
    folded = name.lower()  # case-insensitive file systems would merge 'Drums' and 'drums'
    if folded in seen:
        raise MusicStemsError(
            f"stem name {name!r} is given twice (as {seen[folded]!r} too); every stem needs its "
            "own name, e.g. 'drums' and 'drums_2'."
        )
    seen[folded] = name
    return name


def _check_prompt(name: str, prompt: Any) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise MusicStemsError(
            f"stem {name!r} has prompt {prompt!r}; give it a non-empty text describing the "
            "instrument, e.g. 'deep rolling acid bassline'."
        )
    return " ".join(prompt.split())


def parse_stems(stems: Any) -> tuple[Stem, ...]:
    """Turn ``{"name": "prompt"}`` or a list of :class:`Stem` into validated stems."""
    if isinstance(stems, Mapping):
        items: Iterable[Any] = [Stem(n, p) if not isinstance(p, Stem) else p
                                for n, p in stems.items()]
    elif isinstance(stems, (list, tuple)):
        items = stems
    else:
        raise MusicStemsError(
            f"stems={stems!r} is not a dict or list; pass {{'drums': 'punchy techno drums', ...}} "
            "or [Stem('drums', 'punchy techno drums'), ...]."
        )
    seen: dict[str, str] = {}
    parsed = []
    for item in items:
        if not isinstance(item, Stem):
            raise MusicStemsError(
                f"stems contains {item!r}; each entry must be a musicstems.Stem(name, prompt)."
            )
        name = _check_name(item.name, seen)
        prompt = _check_prompt(name, item.prompt)
        gain_db = check_finite(item.gain_db, f"stem {name!r} gain_db", low=GAIN_DB_RANGE[0],
                               high=GAIN_DB_RANGE[1])
        pan = check_finite(item.pan, f"stem {name!r} pan", low=-1, high=1,
                           fix="-1 is hard left, 0 centre, 1 hard right.")
        parsed.append(Stem(name, prompt, gain_db, pan, item.melody,
                           _check_stem_seed(name, item.seed)))
    if not parsed:
        raise MusicStemsError(
            "stems is empty; give at least one stem, e.g. {'drums': 'punchy techno drums'}."
        )
    return tuple(parsed)


def build_prompt(prompt: str, *, style: str | None, bpm: float | None, key: Key | None) -> str:
    """The text sent to the model: the stem's own prompt plus the shared context, so stems that
    are generated separately still agree on genre, tempo and key."""
    parts = [prompt]
    if style:
        parts.append(style)
    if bpm is not None:
        parts.append(f"{bpm:g} bpm")
    if key is not None:
        parts.append(f"in {key.name}")
    return ", ".join(parts)
