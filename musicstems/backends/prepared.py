"""A loaded model turned into its precision's recipe, and what the recipe hands the loop.

Each recipe changes the model in place (so transformers' ``generate`` runs the very same
modules: it is the fallback and the reference of the bit-exact tests) and returns a
:class:`PreparedDecoder`: the objects musicstems' own decoder step needs beyond the model's
modules, and the report of what was done. The loaded model holds it; the sampling loop takes it
as an argument. torch is imported inside the functions, never at module import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PreparedDecoder", "prepare_decoder", "prepare_bf16_cpu"]


@dataclass(frozen=True)
class PreparedDecoder:
    """What a precision recipe prepared for :class:`~musicstems.backends.decoding.DecoderStep`.

    Attributes
    ----------
    qkv : tuple
        Per decoder layer, in order, its query|key|value projections packed as one int8
        product (torch's ``LinearPackedParamsBase``; ``int8.fuse_int8_linears``), which the
        step computes once; empty where the recipe fused nothing (the step then calls the
        model's three projection modules).
    kv_dtype : torch.dtype or None
        The KV cache's dtype where it differs from the activations' (queries are cast to it);
        None: the activations' dtype.
    recipe : dict
        What each part of the model runs in, for the manifest.
    """

    qkv: tuple = ()
    kv_dtype: Any = None
    recipe: dict = field(default_factory=dict)

    def fused_qkv(self, layer: int):
        """Layer ``layer``'s fused query|key|value product, or None where it has none."""
        return self.qkv[layer] if self.qkv else None


def prepare_bf16_cpu(model) -> PreparedDecoder:
    """The ``"bf16"`` recipe on a CPU, in place, on a model loaded in bf16.

    The decoder's Linear layers and output heads are packed for oneDNN
    (``onednn.pack_linears_onednn``: bit-identical results, no per-call re-layout of the
    weights), and the KV cache is fp32 where torch's bf16 attention is slow
    (``cpu.fast_bf16_attention``): the keys and values are the bf16 projections, widened
    exactly; the queries are cast to fp32."""
    import torch

    from . import cpu, onednn

    packed = onednn.pack_linears_onednn(model.decoder)
    fast = cpu.fast_bf16_attention(cpu.cpu_features())
    return PreparedDecoder(kv_dtype=None if fast else torch.float32,
                           recipe={"all": "bf16",
                                   "decoder_linear": ("packed for oneDNN" if packed
                                                      else "torch default"),
                                   "kv_cache": "bf16" if fast else "fp32"})


def prepare_decoder(model, precision: str, device: str) -> PreparedDecoder:
    """Run ``precision``'s recipe on ``model`` (loaded in ``device.torch_dtype(precision)``)
    in place, and return what it prepared: ``"int8"`` is ``int8.quantize_decoder_int8``,
    ``"bf16"`` on a CPU :func:`prepare_bf16_cpu`; every other precision runs the model as
    loaded."""
    if precision == "int8":
        from .int8 import quantize_decoder_int8

        return quantize_decoder_int8(model)
    if precision == "bf16" and device == "cpu":
        return prepare_bf16_cpu(model)
    return PreparedDecoder(recipe={"all": precision})
