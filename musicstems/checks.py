"""The small checkers every door reuses: a finite number in a range, a whole number, one of a
few choices, a text, and the one precision/device rule.

Each raises :class:`MusicStemsError` naming the argument and the value (also as
``MusicStemsError.arguments``, so a front end can respell them) and the fix.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from .errors import CallbackError, MusicStemsError

__all__ = ["check_finite", "check_whole", "check_choice", "check_text", "check_precision_device",
           "check_sample_rate", "check_audio", "guard_callback", "GAIN_DB_RANGE"]


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
                              + (f" {fix}" if fix else ""), arguments={argument: value})
    return number


def check_choice(value: Any, argument: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise MusicStemsError(
            f"{argument}={value!r} is not one of {', '.join(repr(c) for c in choices)}.",
            arguments={argument: value})
    return value


def check_text(value: Any, argument: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MusicStemsError(f"{argument}={value!r} must be a text, e.g. 'dark berlin techno'.",
                              arguments={argument: value})
    return " ".join(value.split()) or None


def check_whole(value: Any, argument: str, *, low: int, fix: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise MusicStemsError(f"{argument}={value!r} is not allowed; pass a whole number "
                              f">= {low}." + (f" {fix}" if fix else ""),
                              arguments={argument: value})
    return value


def check_precision_device(precision: str, device: str) -> None:
    """The one rule of which precision runs on which device, checked at the door (``device``
    as given) and again once ``"auto"`` has been resolved to a real device.

    Raises :class:`MusicStemsError` for fp16 on a CPU (no fast fp16 there) and int8 on a GPU
    (int8 is CPU dynamic quantization); ``"auto"`` on either side passes.
    """
    if precision == "fp16" and device == "cpu":
        raise MusicStemsError("precision='fp16' needs a GPU and device='cpu' was given or "
                              "found; use precision='bf16', 'int8' or 'auto' on a CPU.",
                              arguments={"precision": precision, "device": device})
    if precision == "int8" and device in ("cuda", "mps"):
        raise MusicStemsError(f"precision='int8' is CPU dynamic quantization and "
                              f"device={device!r} is a GPU; use precision='fp16', 'bf16' or "
                              "'auto' there, or device='cpu'.",
                              arguments={"precision": precision, "device": device})


def guard_callback(callback: Any) -> Callable[[dict], None] | None:
    """``callback`` wrapped so that an exception it raises stops the song as a
    :class:`CallbackError` naming it (the original chained); None stays None. Anything that
    cannot be called is refused here, at the door. Ctrl-C (``KeyboardInterrupt``) passes as
    it is."""
    if callback is None:
        return None
    if not callable(callback):
        raise MusicStemsError(
            f"callback={callback!r} cannot be called; pass a function that takes one dict, "
            "e.g. callback=print, or None.", arguments={"callback": callback})
    name = getattr(callback, "__qualname__", None) or repr(callback)

    def guarded(event: dict) -> None:
        try:
            callback(event)
        except Exception as exc:
            raise CallbackError(
                f"callback {name} raised {type(exc).__name__}: {exc} (at stage "
                f"{event.get('stage')!r}); the song was stopped and nothing was saved. Fix "
                "the callback, or pass callback=None.", arguments={"callback": callback}) from exc

    return guarded
