"""The reference every bit-exact test of the sampling loop compares with: the codes
transformers' own ``generate`` hands to the codec."""

from __future__ import annotations

import torch


def generate_codes(model, inputs, seed, **generate_kwargs):
    """The codes ``model.generate(**inputs, do_sample=True, **generate_kwargs)`` hands to the
    codec under ``seed``, caught at the codec's door: (batch, codebooks, frames); a stereo
    model's left and right codebooks, decoded one side at a time, interleaved again
    (L0 R0 L1 R1 ...)."""
    caught = []
    decode = model.audio_encoder.decode

    def catch(codes, **kwargs):
        caught.append(codes.clone())
        return decode(codes, **kwargs)

    model.audio_encoder.decode = catch
    try:
        with torch.random.fork_rng(), torch.inference_mode():
            torch.manual_seed(seed)
            model.generate(**inputs, do_sample=True, **generate_kwargs)
    finally:
        del model.audio_encoder.decode  # the instance attribute: back to the class's method
    if len(caught) == 1:
        return caught[0]
    return torch.stack(caught, dim=3).flatten(2, 3)
