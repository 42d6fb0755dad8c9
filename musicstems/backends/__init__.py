"""Generation backends behind one small interface.

A backend turns validated stems into raw audio::

    backend.generate(stems, plan, settings) -> Generated

``stems`` is the tuple of :class:`~musicstems.spec.Stem`, ``plan`` the song's shared musical plan
(or ``None``), ``settings`` the validated :class:`~musicstems.spec.SongSpec` (prompts as sent,
duration, seed, sampling settings). A backend returns every stem exactly
``round(duration_s * sample_rate)`` samples long, float32 ``(channels, samples)``; what happens
afterwards (alignment, loudness, mix, export) is the same for every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

__all__ = ["Generated", "Backend", "get_backend", "ProgressCallback"]

ProgressCallback = Callable[[dict], None]


@dataclass
class Generated:
    """Raw stems from a backend, before any processing."""

    stems: dict[str, np.ndarray]
    sample_rate: int
    report: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def generate(self, stems, plan, settings, *, callback: ProgressCallback | None = None
                 ) -> Generated: ...


def get_backend(name: str) -> Backend:
    """The backend called ``name`` ("musicgen" or "sketch"); heavy imports happen on first use."""
    if name == "musicgen":
        from .musicgen import MusicGenBackend
        return MusicGenBackend()
    if name == "sketch":
        from .sketch import SketchBackend
        return SketchBackend()
    from ..errors import MusicStemsError
    raise MusicStemsError(f"backend={name!r} is not known; use 'musicgen' or 'sketch'.")


def fit_length(audio: np.ndarray, num_samples: int) -> np.ndarray:
    """Trim or zero-pad ``audio`` (channels, samples) to exactly ``num_samples``."""
    if audio.shape[-1] >= num_samples:
        return np.ascontiguousarray(audio[..., :num_samples], dtype=np.float32)
    pad = np.zeros(audio.shape[:-1] + (num_samples - audio.shape[-1],), dtype=np.float32)
    return np.concatenate([audio.astype(np.float32, copy=False), pad], axis=-1)
