"""The small checkers every door reuses: a finite number in a range, a whole number, one of a
few choices, a text, and the one precision/device rule.

Each raises :class:`MusicStemsError` naming the argument and the value (also as
``MusicStemsError.arguments``, so a front end can respell them) and the fix.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import MusicStemsError

__all__ = ["check_finite", "check_whole", "check_choice", "check_text", "check_precision_device"]


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
