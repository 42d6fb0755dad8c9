"""The small checkers every door reuses: a finite number in a range, a whole number, one of a
few choices, a text, and the one precision/device rule.

Each raises :class:`MusicStemsError` naming the argument and the value (also as
``MusicStemsError.arguments``, so a front end can respell them) and the fix.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .errors import CallbackError, MusicStemsError

__all__ = ["check_finite", "check_whole", "check_choice", "check_text", "check_precision_device",
           "check_flag", "check_sample_rate", "check_audio", "guard_callback",
           "GAIN_DB_RANGE"]


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


def check_flag(value: Any, argument: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise MusicStemsError(f"{argument}={value!r} is not allowed; pass True or False.",
                              arguments={argument: value})
    return bool(value)


def check_text(value: Any, argument: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MusicStemsError(f"{argument}={value!r} must be a text, e.g. 'dark berlin techno'.",
                              arguments={argument: value})
    return " ".join(value.split()) or None


def check_whole(value: Any, argument: str, *, low: int, high: int | None = None,
                fix: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        bounds = f">= {low}" if high is None else f"from {low} to {high}"
        raise MusicStemsError(f"{argument}={value!r} is not allowed; pass a whole number "
                              f"{bounds}." + (f" {fix}" if fix else ""),
                              arguments={argument: value})
    return value


# A stem's level in the mix, dB (Stem.gain_db and normalize_loudness's gain_db).
GAIN_DB_RANGE = (-60.0, 24.0)
SAMPLE_RATE_RANGE = (8000, 384000)
MAX_CHANNELS = 16
# +120 dBFS: far beyond any real audio, and low enough that no gain of ours reaches float32's
# overflow (3.4e38); float audio lives in [-1, 1].
MAX_PEAK = 1e6


def check_sample_rate(value: Any, argument: str = "sample_rate") -> int:
    """A sample rate in Hz as an int: a whole number in :data:`SAMPLE_RATE_RANGE` (numpy
    integers, and floats such as 44100.0, are taken)."""
    if isinstance(value, np.generic):  # np.int64(32000) from a file reader is fine
        value = value.item()
    low, high = SAMPLE_RATE_RANGE
    rate = check_finite(value, argument, low=low, high=high,
                        fix="Pass the rate of the audio in Hz, e.g. 32000 for MusicGen.")
    if rate != int(rate):
        raise MusicStemsError(f"{argument}={value!r} is not a whole number of Hz; pass e.g. "
                              "32000 or 44100.", arguments={argument: value})
    return int(rate)


def check_audio(value: Any, argument: str, *, max_channels: int = MAX_CHANNELS) -> np.ndarray:
    """``value`` as float32 C-contiguous ``(channels, samples)`` audio (a 1-D array is one
    channel), or raise naming ``argument``: not an array, not floating point, another shape,
    more channels than samples (transposed), empty, NaN or infinite samples, or a peak above
    :data:`MAX_PEAK`."""
    def refuse(problem: str, fix: str) -> MusicStemsError:
        return MusicStemsError(f"{argument} {problem}; {fix}", arguments={argument: value})

    if not isinstance(value, np.ndarray):
        raise refuse(f"is a {type(value).__name__}, not a numpy array",
                     "pass np.asarray(audio, dtype=np.float32) shaped (channels, samples).")
    if not np.issubdtype(value.dtype, np.floating):
        raise refuse(f"has dtype {value.dtype}", "pass floating-point audio in [-1, 1], e.g. "
                     "audio.astype(np.float32) / 32768 for 16-bit samples.")
    audio = value[None, :] if value.ndim == 1 else value
    if audio.ndim != 2:
        raise refuse(f"has shape {value.shape}", "pass (channels, samples) or (samples,).")
    channels, samples = audio.shape
    if channels == 0 or samples == 0:
        raise refuse(f"is empty (shape {value.shape})", "pass at least one sample.")
    if channels > max_channels or channels > samples:
        raise refuse(f"has shape {value.shape}, which reads as {channels} channels of {samples} "
                     "samples", f"audio is (channels, samples) with at most {max_channels} "
                     "channels: pass audio.T, or one channel per row.")
    finite = np.isfinite(audio)
    if not finite.all():
        first = int(np.argmin(finite.all(axis=0)))
        raise refuse(f"has {int(audio.size - np.count_nonzero(finite))} NaN or infinite "
                     f"samples (the first at sample {first})", "fix the audio first, e.g. "
                     "np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0).")
    peak = float(np.max(np.abs(audio)))
    if peak > MAX_PEAK:
        raise refuse(f"peaks at {peak:.3g}, beyond +120 dBFS", "float audio is in [-1, 1]; "
                     "divide integer-scaled samples by their full scale, e.g. / 32768.")
    return np.ascontiguousarray(audio, dtype=np.float32)


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
