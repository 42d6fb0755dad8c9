"""The ``"int8"`` recipe: MusicGen's decoder as dynamic int8 Linear layers on a CPU.

The decoder is read on every step, so it is where a CPU spends its memory bandwidth; its
Linear layers become int8 (weights per output channel, activations quantized per call), packed
for the kernel library that suits the CPU. The speed and drift from fp32 of every choice here
are in docs/performance.md ("What each precision runs", "What makes it fast").

This uses ``torch.ao.quantization`` and a few private quantized ops (``linear_dynamic``,
``linear_prepack``, ``_make_per_channel_quantized_tensor``); ``versions.py`` names the torch
releases the whole custom path was tested against. torch is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import functools

from ..errors import MusicStemsError
from . import cpu, onednn
from .pages import release_checkpoint_pages
from .prepared import PreparedDecoder

__all__ = ["quantize_decoder_int8", "int8_engine", "packing_engine", "full_range_linear",
           "fuse_int8_linears", "fused_slice_linear"]

#: oneDNN's second int8 copy of the decoder must stay under this share of the machine's memory
#: (musicgen-small's 0.40 GB on machines of 4 GB and more, musicgen-medium's 1.81 GB from 18 GB).
_ONEDNN_MAX_MEMORY_SHARE = 0.1


def int8_engine(features: dict, int8_bytes: int = 0) -> str:
    """The engine int8 weights of ``int8_bytes`` are packed for: oneDNN on CPUs with AMX-INT8
    tiles where a second copy of them is small against the machine's memory, torch's default
    (fbgemm) elsewhere.

    On AMX, oneDNN's int8 products are faster at a decoder step's few rows with the same drift
    from fp32, but its packed weights keep the original int8 tensor beside the blocked one: the
    loaded model holds that many bytes more (docs/performance.md). The choice depends only on
    the machine, never on its load, so a seed gives the same song on it every time."""
    import torch

    engines = torch.backends.quantized.supported_engines
    memory = cpu.physical_memory_bytes()
    if (features.get("amx_int8") and "onednn" in engines and memory is not None
            and int8_bytes <= _ONEDNN_MAX_MEMORY_SHARE * memory):
        return "onednn"
    return "fbgemm" if "fbgemm" in engines else torch.backends.quantized.engine


@contextlib.contextmanager
def packing_engine(name: str):
    """Pack quantized weights for ``name``'s kernels. torch's engine setting is process-wide;
    it is changed only while musicstems quantizes (under the model cache's lock) and restored.
    A packed weight runs its own engine's kernel whatever the setting is afterwards."""
    import torch

    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


@functools.lru_cache(maxsize=1)
def full_range_linear():
    """torch's dynamic int8 Linear, with activations quantized to all 8 bits.

    torch quantizes activations to 7 bits (``reduce_range=True``) because CPUs without VNNI
    multiply int8 pairs into int16 and could saturate. With AVX512-VNNI the products accumulate
    in int32 and the 8th bit is free: the drift from fp32 falls by about 3x at the same
    speed."""
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    class FullRangeDynamicLinear(DynamicLinear):
        def forward(self, x):
            return torch.ops.quantized.linear_dynamic(
                x, self._packed_params._packed_params, reduce_range=False).to(x.dtype)

    return FullRangeDynamicLinear


def fuse_int8_linears(linears):
    """One packed int8 weight whose product is the concatenation of ``linears``' products
    (torch's dynamic int8 Linear modules, bias-free or not), packed for the current engine.

    A decoder layer's query, key and value projections multiply the same activation: one
    product three times as wide saves two calls' fixed cost and reads the weights at the
    bandwidth of a larger product. The weights are quantized per output channel and the
    activation once per call either way, so the numbers are the three products' exactly
    (tested)."""
    import torch

    weights, biases = zip(*(m._packed_params._weight_bias() for m in linears))
    weight = torch._make_per_channel_quantized_tensor(
        torch.cat([w.int_repr() for w in weights]),
        torch.cat([w.q_per_channel_scales() for w in weights]),
        torch.cat([w.q_per_channel_zero_points() for w in weights]), 0)
    bias = None if all(b is None for b in biases) else torch.cat(
        [torch.zeros(w.shape[0]) if b is None else b for w, b in zip(weights, biases)])
    return torch.ops.quantized.linear_prepack(weight, bias)


@functools.lru_cache(maxsize=1)
def fused_slice_linear():
    """The class of one of a layer's query, key and value projections once their int8 weights
    are packed as one product (:func:`fuse_int8_linears`): its columns of that product. It
    exists for transformers' ``generate``, which calls the three projections one by one;
    musicstems' step takes the product from :class:`~.prepared.PreparedDecoder` instead."""
    import torch

    class FusedInt8Slice(torch.nn.Module):
        def __init__(self, packed, start: int, out_features: int, in_features: int):
            super().__init__()
            self.packed = packed  # a plain attribute: the product shared with its siblings
            self.start = start
            self.out_features = out_features
            self.in_features = in_features

        def forward(self, x):
            # generate computes the whole product once per projection, three times a layer
            out = torch.ops.quantized.linear_dynamic(x, self.packed, False)
            return out.narrow(-1, self.start, self.out_features).contiguous().to(x.dtype)

        def extra_repr(self) -> str:
            return (f"in_features={self.in_features}, out_features={self.out_features}, "
                    f"columns {self.start}..{self.start + self.out_features} of a fused int8 "
                    "product")

        def _save_to_state_dict(self, destination, prefix, keep_vars):
            raise MusicStemsError(
                f"{prefix.rstrip('.') or 'this layer'} is part of an int8 product fused by "
                "musicstems' int8 CPU recipe, which cannot be saved; load the model with "
                "precision='fp32' to save it.")

    return FusedInt8Slice


def _fuse_query_key_value(attn):
    """Pack ``attn``'s int8 query, key and value weights as one product
    (:func:`fuse_int8_linears`) and make the three projections its column slices: the same
    numbers, and no second copy of the weights. Returns the product."""
    projections = [attn.q_proj, attn.k_proj, attn.v_proj]
    fused = fuse_int8_linears(projections)
    slice_class = fused_slice_linear()
    start = 0
    for name, linear in zip(("q_proj", "k_proj", "v_proj"), projections):
        setattr(attn, name, slice_class(fused, start, linear.out_features, linear.in_features))
        start += linear.out_features
    return fused


def quantize_decoder_int8(model, *, full_range: bool | None = None) -> PreparedDecoder:
    """The ``"int8"`` recipe, in place, on a model loaded in fp32 on the CPU.

    - The decoder's Linear layers become int8, one decoder layer at a time: weights per output
      channel, activations quantized per call (``torch.ao.quantization.quantize_dynamic``) --
      to all 8 bits on CPUs with VNNI (``full_range``), else to torch's 7; packed for
      :func:`int8_engine`'s kernels. Each layer's fp32 weights are dropped as soon as its int8
      copy exists and their checkpoint pages are handed back (``pages``): no fp32 copy of the
      decoder stays resident.
    - With 8-bit activations, each layer's query, key and value weights are packed as one
      product (:func:`fuse_int8_linears`, the same numbers), returned in
      :attr:`PreparedDecoder.qkv` for the decoder step, which computes it once per layer; the
      three projection modules become its column slices, for transformers' ``generate``.
    - The four output heads stay fp32: classifier-free guidance amplifies their error, and
      they are a small share of a step's bytes. They are packed for oneDNN
      (``onednn.pack_linears_onednn``).
    - The T5 text encoder (run once per song) stays fp32.
    - On CPUs that compute bf16 natively the EnCodec decoder runs in bf16 (faster, within the
      codec threshold). The KV cache -- the other half of a step's memory traffic on long
      songs -- is bf16 where torch's attention over bf16 is fast
      (``cpu.fast_bf16_attention``), else fp32.

    Returns
    -------
    PreparedDecoder
        The fused products (empty without 8-bit activations), the KV cache's dtype
        (``torch.bfloat16``, or None for the activations' dtype), and the recipe report.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    features = cpu.cpu_features()
    full_range = features["vnni"] if full_range is None else full_range
    mapping = {torch.nn.Linear: full_range_linear()} if full_range else None
    released = 0
    qkv = []
    linears = [m for m in model.decoder.model.decoder.modules() if type(m) is torch.nn.Linear]
    engine = int8_engine(features, sum(m.weight.numel() for m in linears))
    del linears
    with cpu.quiet_ao_deprecation(), packing_engine(engine):
        for block in model.decoder.model.decoder.layers:
            old = [m.weight for m in block.modules() if type(m) is torch.nn.Linear]
            quantize_dynamic(block, {torch.nn.Linear: per_channel_dynamic_qconfig},
                             dtype=torch.qint8, mapping=mapping, inplace=True)
            released += release_checkpoint_pages(old)
            del old
            if full_range:
                qkv.append(_fuse_query_key_value(block.self_attn))
    heads_packed = onednn.pack_linears_onednn(model.decoder.lm_heads)
    kv_dtype = torch.bfloat16 if cpu.fast_bf16_attention(features) else None
    if features["bf16"]:
        # .data: the fp32 storages themselves (``to`` swaps them out of the same Parameters)
        old = [t.data for t in (*model.audio_encoder.parameters(),
                                *model.audio_encoder.buffers())]
        model.audio_encoder.to(torch.bfloat16)
        released += release_checkpoint_pages(old)
        del old
    recipe = {"decoder_linear": "int8 per-channel, dynamic activations "
                                + ("8-bit, q|k|v as one product" if full_range else "7-bit")
                                + f", {engine}",
              "output_heads": "fp32" + (", packed for oneDNN" if heads_packed else ""),
              "text_encoder": "fp32",
              "kv_cache": "bf16" if kv_dtype is not None else "fp32",
              "codec": "bf16" if features["bf16"] else "fp32",
              "released_checkpoint_mb": round(released / 2 ** 20)}
    return PreparedDecoder(qkv=tuple(qkv), kv_dtype=kv_dtype, recipe=recipe)
