"""Stems and song settings: every user input is parsed and validated here, in one place.

Every public entry point (``compose``, the CLI, ``align_stems``) passes its arguments through this
module before any model loads or any audio is touched, so a bad argument costs nothing and the
error names the argument, the value and the fix.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import MusicStemsError

__all__ = [
    "Stem",
    "Key",
    "SongSpec",
    "parse_key",
    "parse_stems",
    "build_prompt",
    "validate_compose_args",
    "check_bpm",
    "check_finite",
    "check_precision_device",
    "DEFAULT_MODEL",
    "MUSICGEN_MAX_DURATION_S",
]

DEFAULT_MODEL = "facebook/musicgen-small"
# MusicGen was trained on 30 s windows; past that it needs a long-form method (a later issue).
MUSICGEN_MAX_DURATION_S = 30.0
SKETCH_MAX_DURATION_S = 600.0
BPM_RANGE = (20.0, 300.0)
BACKENDS = ("musicgen", "sketch")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
DEVICES = ("auto", "cpu", "cuda", "mps")

_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
_MODE_WORDS = {
    "": "major", "maj": "major", "major": "major", "ionian": "major", "dur": "major",
    "m": "minor", "min": "minor", "minor": "minor", "aeolian": "minor", "moll": "minor",
}
_KEY_RE = re.compile(r"^\s*([A-Ga-g])\s*([#♯b♭]?)\s*[-_ ]?\s*([A-Za-z]*)\s*$")
# Names that are not portable file names (Windows reserves these whatever the extension).
_RESERVED_NAMES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                   *(f"lpt{i}" for i in range(1, 10))}
_SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")


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
            f"{argument}={key!r} is not a key name; pass a string such as 'A minor' or 'F# major'."
        )
    match = _KEY_RE.match(key)
    mode = _MODE_WORDS.get(match.group(3).lower()) if match else None
    if match is None or mode is None:
        raise MusicStemsError(
            f"{argument}={key!r} is not a key musicstems can read; write a tonic A-G with an "
            "optional # or b and a mode, e.g. 'A minor', 'Am', 'F# major', 'Bb'."
        )
    letter, accidental = match.group(1).upper(), match.group(2)
    tonic = _PITCH_CLASSES[letter] + (1 if accidental in "#♯" and accidental else 0)
    tonic -= 1 if accidental in ("b", "♭") else 0
    return Key(tonic % 12, mode)


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
    """

    name: str
    prompt: str
    gain_db: float = 0.0
    pan: float = 0.0
    melody: Any = None


@dataclass(frozen=True)
class SongSpec:
    """Everything ``compose`` was asked for, validated. Stages read it; nobody mutates it."""

    stems: tuple[Stem, ...]
    style: str | None = None
    bpm: float | None = None
    key: Key | None = None
    duration_s: float = 10.0
    seed: int = 0
    backend: str = "musicgen"
    model: str = DEFAULT_MODEL
    device: str = "auto"
    precision: str = "auto"
    guidance_scale: float = 3.0
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    stem_lufs: float = -20.0
    target_lufs: float = -14.0
    ceiling_dbfs: float = -1.0
    align: bool = True
    progress: bool = True
    prompts: Mapping[str, str] = field(default_factory=dict)
    primer: str | None = None  # conditioning.check_conditioning decides; None: text only
    harmony: str | None = None

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stems]

    def settings(self) -> dict[str, Any]:
        """The settings as plain JSON-able values, for the manifest."""
        return {
            "style": self.style, "bpm": self.bpm, "key": self.key.name if self.key else None,
            "duration_s": self.duration_s, "seed": self.seed, "backend": self.backend,
            "model": self.model, "device": self.device, "precision": self.precision,
            "guidance_scale": self.guidance_scale, "temperature": self.temperature,
            "top_k": self.top_k, "top_p": self.top_p, "stem_lufs": self.stem_lufs,
            "target_lufs": self.target_lufs, "ceiling_dbfs": self.ceiling_dbfs,
            "align": self.align,
        }


def check_finite(value: Any, argument: str, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False, fix: str = "") -> float:
    """Return ``value`` as a float, or raise naming ``argument`` when it is not a finite
    number inside [low, high] (or (low, high] with ``low_open``)."""
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    number = float("nan") if bad else float(value)
    if bad or not math.isfinite(number) or (low is not None and (
            number <= low if low_open else number < low)) or (high is not None and number > high):
        bounds = ""
        if low is not None and high is not None:
            bounds = f" in {'(' if low_open else '['}{low:g}, {high:g}]"
        elif low is not None:
            bounds = f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            bounds = f" <= {high:g}"
        raise MusicStemsError(f"{argument}={value!r} is not allowed; pass a finite number{bounds}."
                              + (f" {fix}" if fix else ""))
    return number


def check_bpm(bpm: Any, argument: str = "bpm") -> float | None:
    if bpm is None:
        return None
    return check_finite(bpm, argument, low=BPM_RANGE[0], high=BPM_RANGE[1],
                        fix="Tempo is in beats per minute, e.g. 128.")


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
        gain_db = check_finite(item.gain_db, f"stem {name!r} gain_db", low=-60, high=24)
        pan = check_finite(item.pan, f"stem {name!r} pan", low=-1, high=1,
                           fix="-1 is hard left, 0 centre, 1 hard right.")
        parsed.append(Stem(name, prompt, gain_db, pan, item.melody))
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


def _check_model(model: Any) -> str:
    if not isinstance(model, (str, os.PathLike)) or not str(model).strip():
        raise MusicStemsError(
            f"model={model!r} is not a model name; pass a Hugging Face hub id such as "
            f"'{DEFAULT_MODEL}' or the path of a local model folder."
        )
    text = os.fspath(model)
    path = Path(text).expanduser()
    # Hub ids are "name" or "org/name"; anything else that looks like a path is a local folder.
    looks_local = (isinstance(model, os.PathLike) or path.exists() or text.count("/") > 1
                   or text.startswith((".", "/", "~")) or "\\" in text)
    if looks_local:
        if not path.is_dir():
            raise MusicStemsError(
                f"model={text!r} is not a folder on this machine; pass an existing folder "
                f"saved with save_pretrained, or a hub id such as '{DEFAULT_MODEL}'."
            )
        if not (path / "config.json").is_file():
            raise MusicStemsError(
                f"model={text!r} has no config.json, so it is not a saved model folder; pass a "
                "folder written by save_pretrained (musicstems.testing.tiny_musicgen makes one)."
            )
        return str(path.resolve())
    return text


def check_precision_device(precision: str, device: str) -> None:
    """The one rule of which precision runs on which device, checked at the door (``device``
    as given) and again once ``"auto"`` has been resolved to a real device.

    Raises :class:`MusicStemsError` for fp16 on a CPU (no fast fp16 there) and int8 on a GPU
    (int8 is CPU dynamic quantization); ``"auto"`` on either side passes.
    """
    if precision == "fp16" and device == "cpu":
        raise MusicStemsError("precision='fp16' needs a GPU and device='cpu' was given or "
                              "found; use precision='bf16', 'int8' or 'auto' on a CPU.")
    if precision == "int8" and device in ("cuda", "mps"):
        raise MusicStemsError(f"precision='int8' is CPU dynamic quantization and "
                              f"device={device!r} is a GPU; use precision='fp16', 'bf16' or "
                              "'auto' there, or device='cpu'.")


def _choice(value: Any, argument: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise MusicStemsError(
            f"{argument}={value!r} is not one of {', '.join(repr(c) for c in choices)}."
        )
    return value


def _optional_text(value: Any, argument: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MusicStemsError(f"{argument}={value!r} must be a text, e.g. 'dark berlin techno'.")
    return " ".join(value.split()) or None


def validate_compose_args(stems: Any, **kwargs: Any) -> SongSpec:
    """The one door of ``compose``: check every argument and return a :class:`SongSpec`.

    Raises :class:`MusicStemsError` naming the argument, its value and the fix.
    """
    parsed = parse_stems(stems)
    backend = _choice(kwargs.get("backend", "musicgen"), "backend", BACKENDS)
    style = _optional_text(kwargs.get("style"), "style")
    bpm = check_bpm(kwargs.get("bpm"))
    key = parse_key(kwargs.get("key"))
    limit = MUSICGEN_MAX_DURATION_S if backend == "musicgen" else SKETCH_MAX_DURATION_S
    duration_s = check_finite(
        kwargs.get("duration_s", 10.0), "duration_s", low=0.0, low_open=True, high=limit,
        fix=(f"The {backend} backend generates at most {limit:g} s in one window"
             + ("; long-form generation is not available yet." if backend == "musicgen" else ".")))
    seed = kwargs.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed < 2**32):
        raise MusicStemsError(
            f"seed={seed!r} is not allowed; pass a whole number from 0 to 2**32 - 1, or None to "
            "draw one (it is recorded in the manifest)."
        )
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    model = _check_model(kwargs.get("model", DEFAULT_MODEL)) if backend == "musicgen" else \
        str(kwargs.get("model", DEFAULT_MODEL))
    guidance_scale = check_finite(kwargs.get("guidance_scale", 3.0), "guidance_scale", low=1.0,
                                  fix="1 turns classifier-free guidance off; 3 is MusicGen's "
                                      "default.")
    temperature = check_finite(kwargs.get("temperature", 1.0), "temperature", low=0.0,
                               low_open=True, high=10.0)
    top_k = kwargs.get("top_k", 250)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise MusicStemsError(f"top_k={top_k!r} is not allowed; pass a whole number >= 0 "
                              "(0 turns top-k filtering off; 250 is MusicGen's default).")
    top_p = check_finite(kwargs.get("top_p", 0.0), "top_p", low=0.0, high=1.0,
                         fix="0 turns nucleus sampling off.")
    stem_lufs = check_finite(kwargs.get("stem_lufs", -20.0), "stem_lufs", low=-70, high=0,
                             fix="Loudness is in LUFS, e.g. -20.")
    target_lufs = check_finite(kwargs.get("target_lufs", -14.0), "target_lufs", low=-70, high=0,
                               fix="Loudness is in LUFS; -14 suits streaming services.")
    ceiling_dbfs = check_finite(kwargs.get("ceiling_dbfs", -1.0), "ceiling_dbfs", low=-20,
                                high=0, fix="The peak ceiling is in dBFS, e.g. -1.")
    if target_lufs > ceiling_dbfs:
        raise MusicStemsError(
            f"target_lufs={target_lufs:g} is above ceiling_dbfs={ceiling_dbfs:g}; a mix cannot be "
            "louder on average than its peaks allow. Lower target_lufs or raise ceiling_dbfs."
        )
    device = _choice(kwargs.get("device", "auto"), "device", DEVICES)
    precision = _choice(kwargs.get("precision", "auto"), "precision", PRECISIONS)
    check_precision_device(precision, device)
    spec = SongSpec(
        stems=parsed, style=style, bpm=bpm, key=key, duration_s=duration_s, seed=seed,
        backend=backend, model=model, device=device, precision=precision,
        guidance_scale=guidance_scale, temperature=temperature, top_k=top_k, top_p=top_p,
        stem_lufs=stem_lufs, target_lufs=target_lufs, ceiling_dbfs=ceiling_dbfs,
        align=bool(kwargs.get("align", True)), progress=bool(kwargs.get("progress", True)),
    )
    prompts = {s.name: build_prompt(s.prompt, style=style, bpm=bpm, key=key) for s in parsed}
    from .conditioning import check_conditioning

    primer, harmony = check_conditioning(
        spec, **{k: kwargs[k] for k in ("primer", "harmony") if k in kwargs})
    return replace(spec, prompts=prompts, primer=primer, harmony=harmony)
