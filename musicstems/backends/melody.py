"""MusicGen-Melody's chroma as the model takes it: ``input_features`` (batch, frames, 12).

``generate(input_features=...)`` projects the chroma to the decoder's width, tiles it to
``chroma_length`` frames (235: 30 s) and prepends it, with the text, to the decoder's input;
guidance's unconditional half gets the "no melody" chroma -- zeros with pitch class 0 set --
of the same shape. :func:`melody_features` stacks the stems' chromas
(:func:`musicstems.conditioning.melodies`) into that layout, the "no melody" chroma on the rows
of stems without one (drums), so one batch carries tonal stems and drums alike.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["is_melody", "melody_features", "null_chroma"]


def is_melody(model) -> bool:
    """Whether a loaded model is a MusicGen-Melody (conditioned on a chroma)."""
    return getattr(model.config, "model_type", None) == "musicgen_melody"


def null_chroma(frames: int, num_chroma: int = 12) -> np.ndarray:
    """The model's own "no melody" input, (frames, 12): what ``generate`` feeds guidance's
    unconditional rows, and what it feeds every row when no chroma is given."""
    out = np.zeros((frames, num_chroma), dtype=np.float32)
    out[:, 0] = 1.0
    return out


def melody_features(model, chromas: list[np.ndarray | None]) -> torch.Tensor | None:
    """``input_features`` for a batch: one chroma (frames, 12) per row, None for a row without
    one; None when no row has one (the model's own default is then the same "no melody").

    Returns
    -------
    torch.Tensor [shape=(batch, frames, 12)] or None
        In the model's dtype and device; cut to ``chroma_length`` frames, as the model would.
    """
    given = [c for c in chromas if c is not None]
    if not given:
        return None
    frames = min(given[0].shape[0], int(model.config.chroma_length))
    if any(c.shape[0] != given[0].shape[0] for c in given):
        raise ValueError("every stem's chroma covers the same timeline: one frame count")
    rows = [null_chroma(frames) if c is None else c[:frames] for c in chromas]
    weight = next(model.decoder.parameters())
    return torch.from_numpy(np.stack(rows)).to(device=weight.device, dtype=weight.dtype)
