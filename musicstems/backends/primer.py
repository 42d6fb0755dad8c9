"""A primer's audio as MusicGen's decoder sees it: the model's own EnCodec codes.

``generate(input_values=...)`` encodes the audio prompt with the model's EnCodec (each side on
its own for a stereo model, the codebooks then interleaved left, right), prepends the decoder's
start token and lays the codes into the delay pattern, so codebook k's prompt codes sit k steps
late and generation starts after them. :func:`encode_primers` returns the same codes, for
``sample_codes(prefix_codes=...)``, which lays them out the way ``generate`` does.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["encode_primers", "primer_values"]


def primer_values(model, audio: list[np.ndarray]) -> torch.Tensor:
    """The primers as ``generate``'s ``input_values``: (batch, channels, samples) in the codec's
    dtype and device -- one channel (the mean of both) for a mono model, two for stereo."""
    codec = next(model.audio_encoder.parameters())
    stacked = np.stack(audio).astype(np.float32)  # (batch, 2, samples)
    if model.decoder.config.audio_channels == 1:
        stacked = stacked.mean(axis=1, keepdims=True)
    return torch.from_numpy(stacked).to(device=codec.device, dtype=codec.dtype)


def encode_primers(model, values: torch.Tensor) -> torch.Tensor:
    """EnCodec codes of ``values`` (batch, channels, samples): (batch, codebooks, frames), as
    ``generate`` takes them from ``input_values`` (transformers'
    ``_prepare_audio_encoder_kwargs_for_generation``)."""
    encoder = model.audio_encoder

    def encode(side):
        out = encoder.encode(side, return_dict=True)
        if any(scale is not None for scale in out.audio_scales):
            # a normalising codec decodes with these scales; musicgen-* codecs do not normalise
            raise NotImplementedError("a primer for a codec that normalises its input")
        if out.audio_codes.shape[0] != 1:
            raise NotImplementedError("a primer for a chunked EnCodec")
        return out.audio_codes[0]

    if model.decoder.config.audio_channels == 1:
        return encode(values)
    left, right = encode(values[:, :1]), encode(values[:, 1:])
    codes = left.new_empty(left.shape[0], 2 * left.shape[1], left.shape[2])
    codes[:, ::2], codes[:, 1::2] = left, right
    return codes
