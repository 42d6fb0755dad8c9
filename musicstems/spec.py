"""Stems and song settings: every user input is parsed and validated here, in one place.

Every public entry point (``compose``, the CLI, ``align_stems``) passes its arguments through this
module before any model loads or any audio is touched, so a bad argument costs nothing and the
error names the argument, the value and the fix.

:data:`SETTINGS` is the one table of song settings: the validator, ``SongSpec.settings()`` (the
manifest) and the CLI's options are made from it, and tests hold ``compose``'s signature, its
docstring and :class:`SongSpec` to it.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .checks import (check_choice, check_finite, check_flag, check_precision_device,
                     check_text, check_whole)
from .errors import MusicStemsError
from .keys import FLAT_NAMES, SHARP_NAMES, Key, parse_key  # noqa: F401 - re-exported
from .stems import Stem, build_prompt, parse_stems  # noqa: F401 - re-exported

__all__ = [
    "Stem",
    "Key",
    "SongSpec",
    "parse_key",
    "parse_stems",
    "build_prompt",
    "build_prompts",
    "validate_compose_args",
    "Setting",
    "SETTINGS",
    "check_bpm",
    "check_finite",
    "check_precision_device",
    "DEFAULT_MODEL",
    "MUSICGEN_MAX_DURATION_S",
]

DEFAULT_MODEL = "facebook/musicgen-small"
# MusicGen was trained on 30 s windows; longer songs are generated window by window
# (backends/windows.py), up to 5 minutes.
MUSICGEN_MAX_DURATION_S = 300.0
SKETCH_MAX_DURATION_S = 600.0
MIN_DURATION_S = 0.001
BPM_RANGE = (20.0, 300.0)
BACKENDS = ("musicgen", "sketch")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
DEVICES = ("auto", "cpu", "cuda", "mps")

def check_bpm(bpm: Any, argument: str = "bpm") -> float | None:
    """A tempo as the ``bpm`` setting allows it (``align_stems`` reuses it), or None."""
    rule = SETTING["bpm"]
    return None if bpm is None else check_finite(bpm, argument, low=rule.low, high=rule.high,
                                                 fix=rule.fix)


def _check_model(model: Any) -> str:
    if not isinstance(model, (str, os.PathLike)) or not str(model).strip():
        raise MusicStemsError(
            f"model={model!r} is not a model name; pass a Hugging Face hub id such as "
            f"'{DEFAULT_MODEL}' or the path of a local model folder.",
            arguments={"model": model})
    text = os.fspath(model)
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # "~someone" with no such user: then no such folder either
        path = Path(text)
    # Hub ids are "name" or "org/name"; anything else that looks like a path is a local folder.
    looks_local = (isinstance(model, os.PathLike) or path.exists() or text.count("/") > 1
                   or text.startswith((".", "/", "~")) or "\\" in text)
    if looks_local:
        if not path.is_dir():
            raise MusicStemsError(
                f"model={text!r} is not a folder on this machine; pass an existing folder "
                f"saved with save_pretrained, or a hub id such as '{DEFAULT_MODEL}'.",
                arguments={"model": text})
        if not (path / "config.json").is_file():
            raise MusicStemsError(
                f"model={text!r} has no config.json, so it is not a saved model folder; pass a "
                "folder written by save_pretrained (musicstems.testing.tiny_musicgen makes one).",
                arguments={"model": text})
        return str(path.resolve())
    return text


@dataclass(frozen=True)
class Setting:
    """One song setting: everything the validator, the manifest and the CLI need to know of it.

    ``type``, ``optional`` and ``default`` are what ``compose``'s signature says (a test keeps
    them equal); ``low``/``high``/``low_open``/``choices`` the allowed values; ``fix`` the advice
    appended to a refusal; ``flag`` the CLI option (None: not on the command line), with
    ``negate`` for an on/off setting whose flag turns it off (``--no-align``) and ``demo`` when
    ``musicstems demo`` offers it too. ``check`` replaces the check ``type`` implies when a
    setting needs more (it gets the settings checked so far; those it reads are in ``after``).
    """

    name: str
    type: type
    default: Any
    help: str
    optional: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    fix: str = ""
    flag: str | None = None
    negate: bool = False
    demo: bool = False
    in_manifest: bool = True
    check: Callable[["Setting", Any, Mapping[str, Any]], Any] | None = None
    after: tuple[str, ...] = ()

    @property
    def annotation(self) -> str:
        """The annotation ``compose`` writes for it, e.g. ``"float | None"``."""
        return self.type.__name__ + (" | None" if self.optional else "")

    def validate(self, value: Any, checked: Mapping[str, Any]) -> Any:
        """Return ``value`` checked and normalized, or raise naming this setting."""
        if self.check is not None:
            return self.check(self, value, checked)
        if value is None and self.optional:
            return None
        if self.choices:
            return check_choice(value, self.name, self.choices)
        if self.type is float:
            return check_finite(value, self.name, low=self.low, high=self.high,
                                low_open=self.low_open, fix=self.fix)
        if self.type is int:
            return check_whole(value, self.name, low=int(self.low or 0), fix=self.fix)
        if self.type is bool:
            return bool(value)
        return check_text(value, self.name)


def _check_key(setting: Setting, value: Any, checked: Mapping[str, Any]) -> Key | None:
    return parse_key(value, argument=setting.name)


def _check_duration(setting: Setting, value: Any, checked: Mapping[str, Any]) -> float:
    backend = checked["backend"]
    limit = MUSICGEN_MAX_DURATION_S if backend == "musicgen" else SKETCH_MAX_DURATION_S
    # 1 ms is 32 samples at 32 kHz; much shorter rounds to no audio at all
    return check_finite(
        value, setting.name, low=MIN_DURATION_S, high=limit,
        fix=f"The {backend} backend generates at most {limit:g} s.")


def _check_seed(setting: Setting, value: Any, checked: Mapping[str, Any]) -> int:
    if value is None:
        return int.from_bytes(os.urandom(4), "little")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise MusicStemsError(
            f"seed={value!r} is not allowed; pass a whole number from 0 to 2**32 - 1, or None "
            "to draw one (it is recorded in the manifest).", arguments={"seed": value})
    return value


def _check_model_for(setting: Setting, value: Any, checked: Mapping[str, Any]) -> str:
    # Only MusicGen loads a model; the sketch backend records the name and never reads it.
    return _check_model(value) if checked["backend"] == "musicgen" else str(value)


def _check_cache(setting: Setting, value: Any, checked: Mapping[str, Any]) -> bool | None:
    from .cache import cache_enabled  # None: $MUSICSTEMS_CACHE decides, checked here

    if value is not None:
        return check_flag(value, setting.name)
    cache_enabled(None)
    return None


def _check_cache_dir(setting: Setting, value: Any, checked: Mapping[str, Any]) -> str | None:
    from .cache import cache_enabled, check_cache_dir  # no disk is read when the cache is off

    return check_cache_dir(value, enabled=cache_enabled(checked["cache"]))


def _check_off(setting: Setting, value: Any, checked: Mapping[str, Any]) -> str | None:
    # None turns it off; "none" is the same, as the command line spells it
    if value is None or value == "none":
        return None
    if value not in setting.choices:
        raise MusicStemsError(f"{setting.name}={value!r} is not known; use "
                              + ", ".join(repr(c) for c in setting.choices if c != "none")
                              + f" or None. {setting.fix}", arguments={setting.name: value})
    return value


# The song settings of ``compose``, in the order of its signature. Add a setting here (and to
# compose's signature, its docstring and SongSpec: tests fail until all four agree).
SETTINGS: tuple[Setting, ...] = (
    Setting("style", str, None, "shared style added to every stem's prompt", optional=True,
            flag="--style", demo=True),
    Setting("bpm", float, None, "tempo in beats per minute, 20-300; every prompt says it and "
            "alignment aims at it", optional=True, low=BPM_RANGE[0], high=BPM_RANGE[1],
            fix="Tempo is in beats per minute, e.g. 128.", flag="--bpm", demo=True),
    Setting("key", str, None, "shared key, e.g. 'A minor', 'F#m'", optional=True,
            check=_check_key, flag="--key", demo=True),
    Setting("duration_s", float, 10.0, "length of the song in seconds", check=_check_duration,
            after=("backend",), flag="--duration", demo=True),
    Setting("seed", int, None, "seed for reproducible output (drawn and recorded if omitted)",
            optional=True, check=_check_seed, flag="--seed", demo=True),
    Setting("backend", str, "musicgen", "generator: MusicGen, or the offline sketch",
            choices=BACKENDS, flag="--backend"),
    Setting("model", str, DEFAULT_MODEL, "hub id or local folder of a MusicGen model",
            check=_check_model_for, after=("backend",), flag="--model", demo=True),
    Setting("device", str, "auto", "where to generate; auto picks CUDA, then MPS, then the CPU",
            choices=DEVICES, flag="--device", demo=True),
    Setting("precision", str, "auto", "numeric precision of generation", choices=PRECISIONS,
            flag="--precision", demo=True),
    Setting("guidance_scale", float, 3.0, "classifier-free guidance, >= 1 (1 = off)", low=1.0,
            fix="1 turns classifier-free guidance off; 3 is MusicGen's default.",
            flag="--guidance-scale"),
    Setting("temperature", float, 1.0, "sampling temperature, in (0, 10]", low=0.0,
            low_open=True, high=10.0, flag="--temperature"),
    Setting("top_k", int, 250, "top-k sampling, 0 = off", low=0,
            fix="0 turns top-k filtering off; 250 is MusicGen's default.", flag="--top-k"),
    Setting("top_p", float, 0.0, "nucleus sampling, in [0, 1], 0 = off", low=0.0, high=1.0,
            fix="0 turns nucleus sampling off.", flag="--top-p"),
    Setting("stem_lufs", float, -20.0, "loudness of every stem before its gain, LUFS", low=-70,
            high=0, fix="Loudness is in LUFS, e.g. -20.", flag="--stem-lufs"),
    Setting("target_lufs", float, -14.0, "loudness of the mastered mix, LUFS", low=-70, high=0,
            fix="Loudness is in LUFS; -14 suits streaming services.", flag="--target-lufs"),
    Setting("ceiling_dbfs", float, -1.0, "true-peak ceiling of the mastered mix, dBFS", low=-20,
            high=0, fix="The peak ceiling is in dBFS, e.g. -1.", flag="--ceiling"),
    Setting("align", bool, True, "skip tempo/beat/key alignment", flag="--no-align",
            negate=True),
    Setting("progress", bool, True, "no progress bar", flag="--quiet", negate=True, demo=True,
            in_manifest=False),
    Setting("primer", str, "plan", "audio MusicGen continues: 'plan' (a count-in rendered "
            "from the plan) or 'none' (text only)", optional=True, choices=("plan", "none"),
            check=_check_off, fix="'plan' is a count-in rendered from the plan's tempo and "
            "key; None is the text alone.", flag="--primer"),
    Setting("harmony", str, "auto", "chroma a melody model follows: 'plan' (each tonal "
            "stem's planned part), 'none', or 'auto' ('plan' with a melody model)",
            optional=True, choices=("auto", "plan", "none"), check=_check_off,
            fix="'plan' needs a melody model; 'auto' is 'plan' with one and off without.",
            flag="--harmony"),
    # how many stems share a sampling loop: a batch's float rounding is the stems' own
    # (docs/backends.md), so it is part of what the song is
    Setting("max_batch", int, None, "at most this many stems sampled in one batch "
            "(default: all, as the memory budget allows)", optional=True, low=1,
            fix="1 samples every stem alone; None puts all of a song's stems in one batch.",
            flag="--max-batch"),
    # where the memory comes from, not what the song is: the batches it gave are recorded
    Setting("memory_budget_gb", float, None, "memory a batch may plan to use, in GB "
            "(default: 80 percent of what is available when generation starts, on a CPU)",
            optional=True, low=0.0, low_open=True, high=1e6,
            fix="It is in GB (10**9 bytes), e.g. 8; None plans against the memory available.",
            flag="--memory-budget", in_manifest=False),
    # where stems come from, not what they are: kept out of the manifest's settings (each
    # stem's entry says whether it came from the cache)
    Setting("cache", bool, None, "neither read nor write the stem cache (default: on, unless "
            "$MUSICSTEMS_CACHE=0)", optional=True, check=_check_cache, flag="--no-cache",
            negate=True, demo=True, in_manifest=False),
    Setting("cache_dir", str, None, "folder of the stem cache (default: $MUSICSTEMS_CACHE_DIR "
            "or the user cache folder)", optional=True, check=_check_cache_dir, after=("cache",),
            flag="--cache-dir", demo=True, in_manifest=False),
)
SETTING = {s.name: s for s in SETTINGS}


def _loudness_below_ceiling(values: Mapping[str, Any]) -> None:
    target, ceiling = values["target_lufs"], values["ceiling_dbfs"]
    if target > ceiling:
        raise MusicStemsError(
            f"target_lufs={target:g} is above ceiling_dbfs={ceiling:g}; a mix cannot be "
            "louder on average than its peaks allow. Lower target_lufs or raise ceiling_dbfs.",
            arguments={"target_lufs": target, "ceiling_dbfs": ceiling})


# Rules between settings, checked once every setting is valid on its own.
RULES: tuple[Callable[[Mapping[str, Any]], None], ...] = (
    _loudness_below_ceiling,
    lambda values: check_precision_device(values["precision"], values["device"]),
)


@dataclass(frozen=True)
class SongSpec:
    """Everything ``compose`` was asked for, validated. Stages read it; nobody mutates it.

    One field per entry of :data:`SETTINGS` (made by :func:`validate_compose_args`, which
    fills every one), plus ``stems`` and ``prompts``: the text sent to the model per stem,
    empty until :func:`musicstems.render` builds it from the plan's tempo and key.
    """

    stems: tuple[Stem, ...]
    style: str | None
    bpm: float | None
    key: Key | None
    duration_s: float
    seed: int
    backend: str
    model: str
    device: str
    precision: str
    guidance_scale: float
    temperature: float
    top_k: int
    top_p: float
    stem_lufs: float
    target_lufs: float
    ceiling_dbfs: float
    align: bool
    progress: bool
    primer: str | None
    harmony: str | None
    # defaults, so a SongSpec made field by field before these settings existed still builds
    max_batch: int | None = None
    memory_budget_gb: float | None = None
    cache: bool | None = None
    cache_dir: str | None = None
    prompts: Mapping[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stems]

    def settings(self) -> dict[str, Any]:
        """The settings as plain JSON-able values, for the manifest."""
        values = {s.name: getattr(self, s.name) for s in SETTINGS if s.in_manifest}
        return {name: v.name if isinstance(v, Key) else v for name, v in values.items()}


def build_prompts(spec: SongSpec, *, bpm: float | None, key: Key | None) -> dict[str, str]:
    """Every stem's text for the model, with the tempo and key the song is played in (the
    plan's: they fill in what the user left open), so separately generated stems agree."""
    return {s.name: build_prompt(s.prompt, style=spec.style, bpm=bpm, key=key)
            for s in spec.stems}


def _unknown(name: str, value: Any) -> MusicStemsError:
    close = difflib.get_close_matches(name, SETTING, n=1)
    hint = f"did you mean {close[0]}?" if close else f"the settings are {', '.join(SETTING)}."
    return MusicStemsError(f"{name}={value!r} is not a setting of compose; {hint}",
                           arguments={name: value})


def validate_compose_args(stems: Any, **settings: Any) -> SongSpec:
    """The one door of ``compose``: check every argument and return a :class:`SongSpec`.

    ``settings`` are any of :data:`SETTINGS` by name; the rest take their defaults. Raises
    :class:`MusicStemsError` naming the argument, its value and the fix, also for a name that
    is not a setting (with the closest one).
    """
    for name, value in settings.items():
        if name not in SETTING:
            raise _unknown(name, value)
    parsed = parse_stems(stems)
    checked: dict[str, Any] = {}
    # those that read other settings come last; the ones they read have no `after` themselves
    for setting in sorted(SETTINGS, key=lambda s: bool(s.after)):
        checked[setting.name] = setting.validate(settings.get(setting.name, setting.default),
                                                 checked)
    for rule in RULES:
        rule(checked)
    from .conditioning import check_conditioning  # reads the model's config: no torch

    check_conditioning(parsed, checked)
    return SongSpec(stems=parsed, **checked)
