"""Mixing with pydub: the only module that touches ``AudioSegment``.

Our float32 ``(channels, samples)`` arrays become pydub segments in :func:`to_segment` and come
back in :func:`from_segment`, nowhere else. pydub's ``overlay`` adds integer samples and clips at
the sample width's limit, so segments carry 32-bit samples with float full scale mapped to 2**24:
that leaves 7 bits (42 dB) of headroom above full scale for the sum, and keeps a 24-bit mantissa,
the precision float32 has anyway.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from .checks import check_audio, check_finite, check_sample_rate
from .errors import MusicStemsError

__all__ = ["to_segment", "from_segment", "mix_stems", "FULL_SCALE"]

FULL_SCALE = float(2 ** 24)
_INT32_LIMIT = 2 ** 31 - 1


def _pydub():
    with warnings.catch_warnings():
        # pydub warns at import when ffmpeg is missing (we never ask it to decode or encode)
        # and, on Python 3.12, that audioop is deprecated (3.13+ gets audioop-lts).
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import pydub
    return pydub


def to_segment(audio: np.ndarray, sample_rate: int):
    """float32 ``(channels, samples)`` -> 32-bit ``AudioSegment`` (interleaved)."""
    audio = np.atleast_2d(audio)
    scaled = np.round(audio.astype(np.float64) * FULL_SCALE)
    if np.max(np.abs(scaled), initial=0.0) > _INT32_LIMIT:
        raise MusicStemsError(
            f"audio peaks at {np.max(np.abs(audio)):.1f} x full scale, beyond the mixer's 42 dB "
            "of headroom; lower the stem's gain_db.")
    interleaved = scaled.T.astype("<i4").tobytes()
    return _pydub().AudioSegment(data=interleaved, sample_width=4, frame_rate=int(sample_rate),
                                 channels=audio.shape[0])


def from_segment(segment) -> np.ndarray:
    """``AudioSegment`` (any sample width) -> float32 ``(channels, samples)``."""
    width = segment.sample_width
    dtype = {1: np.int8, 2: "<i2", 4: "<i4"}.get(width)
    if dtype is None:
        raise MusicStemsError(f"a {8 * width}-bit AudioSegment cannot be read; use 8, 16 or 32.")
    samples = np.frombuffer(segment.raw_data, dtype=dtype).reshape(-1, segment.channels).T
    scale = FULL_SCALE if width == 4 else float(2 ** (8 * width - 1))
    return (samples.astype(np.float64) / scale).astype(np.float32)


def _check_mix_args(stems, sample_rate, pans):
    """mix_stems' door: the stems as float32 arrays, the rate as an int, the pans as floats."""
    if not isinstance(stems, Mapping) or not stems:
        raise MusicStemsError(f"stems={stems!r} is not a non-empty dict; pass {{'drums': audio, "
                              "...}} with arrays shaped (channels, samples).",
                              arguments={"stems": stems})
    checked = {}
    for name, audio in stems.items():
        if not isinstance(name, str) or not name:
            raise MusicStemsError(f"stems has the name {name!r}; name every stem with a "
                                  "non-empty text, e.g. 'drums'.", arguments={"stems": name})
        checked[name] = check_audio(audio, f"stem {name!r}", max_channels=2)
    lengths = {name: audio.shape[-1] for name, audio in checked.items()}
    if len(set(lengths.values())) != 1:
        raise MusicStemsError(f"stems must be the same length to mix; got samples {lengths}. "
                              "Pad or trim them to one length first.",
                              arguments={"stems": lengths})
    sample_rate = check_sample_rate(sample_rate)
    if pans is None:
        pans = {}
    if not isinstance(pans, Mapping):
        raise MusicStemsError(f"pans={pans!r} is not a dict; pass {{'bass': -0.3}} or None.",
                              arguments={"pans": pans})
    unknown = [name for name in pans if name not in checked]
    if unknown:
        raise MusicStemsError(f"pans names {unknown!r}, which are not stems ({list(checked)}); "
                              "pan only the stems given.", arguments={"pans": pans})
    pans = {name: check_finite(pan, f"pans[{name!r}]", low=-1, high=1,
                               fix="-1 is hard left, 0 centre, 1 hard right.")
            for name, pan in pans.items()}
    return checked, sample_rate, pans


def mix_stems(stems: dict[str, np.ndarray], sample_rate: int, *,
              pans: dict[str, float] | None = None) -> tuple[np.ndarray, dict]:
    """Pan each stem and overlay them all, with pydub.

    Parameters
    ----------
    stems : dict of str -> np.ndarray [shape=(channels, samples) or (samples,)], float
        Stems of equal length, mono or stereo, finite, already at their mix levels.
    sample_rate : int in [8000, 384000], Hz
    pans : dict of str -> float in [-1, 1], optional
        Stereo position per stem (only names of ``stems``); pydub's pan law boosts the near
        side by up to 3 dB.

    Returns
    -------
    mix : np.ndarray [shape=(2, samples)], float32
    report : dict
        ``pans`` used and the mix's pre-master sample peak.

    Raises
    ------
    MusicStemsError
        For any argument outside the above, before any work; and for a sum beyond the
        mixer's 42 dB of headroom.
    """
    stems, sample_rate, pans = _check_mix_args(stems, sample_rate, pans)
    num_samples = next(iter(stems.values())).shape[-1]
    # overlay slices in whole milliseconds and drops the last partial one: silence past the
    # end takes that loss, and is cut off again below, so every sample of the stems is kept
    pad = sample_rate // 1000 + 2
    mixed = None
    for name, audio in stems.items():
        segment = to_segment(np.pad(audio, ((0, 0), (0, pad))), sample_rate)
        if segment.channels == 1:
            segment = segment.set_channels(2)
        pan = float(pans.get(name, 0.0))
        if pan != 0.0:
            segment = segment.pan(pan)
        mixed = segment if mixed is None else mixed.overlay(segment)
    out = np.ascontiguousarray(from_segment(mixed)[:, :num_samples])
    return out, {"pans": {name: float(pans.get(name, 0.0)) for name in stems},
                 "peak_before_master": float(np.max(np.abs(out)))}
