"""Input checks for :func:`~musicstems.align.align_stems`: every argument and stem is validated
before any audio is processed, with messages that name the argument, the value and the fix."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import MusicStemsError
from ..spec import check_bpm, check_finite, parse_key

_MAX_CHANNELS = 16
_SILENCE_PEAK = 1e-6  # -120 dBFS


def _check_flag(value: Any, argument: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise MusicStemsError(f"{argument}={value!r} is not allowed; pass True or False.")
    return bool(value)


# An output longer than this many seconds is refused: 2**32 samples would be a 16 GB array per
# channel, allocated lazily and filled later, long after the call looked fine.
MAX_LENGTH_S = 3600.0


def _check_length(length: Any, longest: int, rate: int) -> int:
    """``length`` in samples as an int; None means the longest stem."""
    if length is None:
        return longest
    if isinstance(length, np.integer):
        length = length.item()
    most = max(longest, int(MAX_LENGTH_S * rate))
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= most:
        raise MusicStemsError(
            f"length={length!r} is not allowed; pass the output length in samples as a positive "
            f"int up to {most} ({MAX_LENGTH_S:g} s at {rate} Hz; e.g. {longest}, the longest "
            "stem), or None for the longest stem.", arguments={"length": length})
    return length


def _check_inputs(stems, sample_rate, *, bpm, key, stretch, beat_offset, pitch_shift,
                  reference, length=None):
    """Check every argument and stem before any work; return the stems as float32
    (channels, samples) arrays, the sample rate as an int, bpm, the target Key, reference and
    the output length in samples."""
    if isinstance(sample_rate, np.generic):  # np.int64(32000) from a file reader is fine
        sample_rate = sample_rate.item()
    if isinstance(bpm, np.generic):
        bpm = bpm.item()
    rate = check_finite(sample_rate, "sample_rate", low=8000, high=384000,
                        fix="Pass the rate of the audio in Hz, e.g. 32000 for MusicGen.")
    if rate != int(rate):
        raise MusicStemsError(f"sample_rate={sample_rate!r} is not a whole number of Hz; "
                              "pass e.g. 32000 or 44100.")
    rate = int(rate)
    for flag, argument in ((stretch, "stretch"), (beat_offset, "beat_offset"),
                           (pitch_shift, "pitch_shift")):
        _check_flag(flag, argument)
    bpm = check_bpm(bpm)
    target_key = parse_key(key)
    if not isinstance(stems, Mapping):
        raise MusicStemsError(
            f"stems={type(stems).__name__} is not a dict; pass {{'drums': audio, ...}} with "
            "float32 numpy arrays shaped (channels, samples).")
    if not stems:
        raise MusicStemsError("stems is empty; pass at least one stem, e.g. {'drums': audio}.")
    audio: dict[str, np.ndarray] = {}
    for name, value in stems.items():
        if not isinstance(name, str) or not name:
            raise MusicStemsError(f"stems has the name {name!r}; name every stem with a "
                                  "non-empty text, e.g. 'drums'.")
        audio[name] = _check_stem(name, value, rate)
    length = _check_length(length, max(y.shape[-1] for y in audio.values()), rate)
    if reference is not None and reference not in audio:
        raise MusicStemsError(
            f"reference={reference!r} is not one of the stems ({', '.join(map(repr, audio))}); "
            "pass one of those names, or None to follow the most rhythmic / most tonal stem.")
    return audio, rate, bpm, target_key, reference, length


def _check_stem(name: str, value: Any, sample_rate: int) -> np.ndarray:
    if isinstance(value, tuple):
        if len(value) != 2:
            raise MusicStemsError(f"stem {name!r} is a tuple of {len(value)} items; pass an "
                                  "array, or an (array, sample_rate) pair.")
        value, stem_rate = value
        if isinstance(stem_rate, bool) or not isinstance(stem_rate, (int, float, np.number)) \
                or float(stem_rate) != sample_rate:
            raise MusicStemsError(
                f"stem {name!r} has sample rate {stem_rate!r} but sample_rate={sample_rate}; "
                f"resample it first, e.g. librosa.resample(y, orig_sr={stem_rate!r}, "
                f"target_sr={sample_rate}).")
    if not isinstance(value, np.ndarray):
        raise MusicStemsError(
            f"stem {name!r} is a {type(value).__name__}, not a numpy array; pass "
            "np.asarray(audio, dtype=np.float32) shaped (channels, samples).")
    if not np.issubdtype(value.dtype, np.floating):
        raise MusicStemsError(
            f"stem {name!r} has dtype {value.dtype}; pass floating-point audio in [-1, 1], e.g. "
            "audio.astype(np.float32) / 32768 for 16-bit samples.")
    if value.ndim == 1:
        value = value[None, :]
    if value.ndim != 2:
        raise MusicStemsError(f"stem {name!r} has shape {value.shape}; pass (channels, samples) "
                              "or (samples,).")
    channels, samples = value.shape
    if samples == 0 or channels == 0:
        raise MusicStemsError(f"stem {name!r} is empty (shape {value.shape}); pass audio with at "
                              "least one sample, or leave the stem out.")
    if channels > _MAX_CHANNELS or channels > samples:
        raise MusicStemsError(
            f"stem {name!r} has shape {value.shape}, which reads as {channels} channels of "
            f"{samples} samples; audio is (channels, samples): pass audio.T.")
    finite = np.isfinite(value)
    if not finite.all():
        bad = int(value.size - np.count_nonzero(finite))
        first = int(np.argmin(finite.all(axis=0)))
        raise MusicStemsError(
            f"stem {name!r} has {bad} NaN or infinite samples (the first at sample {first}); "
            "fix the audio, e.g. np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0).")
    peak = float(np.max(np.abs(value)))
    if peak < _SILENCE_PEAK:  # silent() says the same
        raise MusicStemsError(
            f"stem {name!r} is silent (peak {peak:.3g}, below -120 dBFS); it has no tempo or "
            "key to align. Leave it out of the stems given to align_stems.")
    return np.ascontiguousarray(value, dtype=np.float32)


def silent(audio: np.ndarray) -> bool:
    """Whether ``audio`` is too quiet to align (peak below -120 dBFS): ``align_stems`` refuses
    such a stem, and the pipeline passes it through unaligned."""
    audio = np.asarray(audio)
    return audio.size == 0 or float(np.max(np.abs(audio))) < _SILENCE_PEAK
