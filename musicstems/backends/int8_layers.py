"""The int8 recipe's decoder layers as one TorchScript call per step.

``decoding.DecoderStep`` runs every decoder layer of a model prepared by the int8 recipe
(``int8.quantize_decoder_int8``, 8-bit activations with the fused query|key|value product)
through :func:`scripted_layers` where TorchScript compiles: op for op the arithmetic of its eager
layer (tested bit for bit), without Python between the kernels nor the conversion of a layer's
twenty arguments on every call. Everything else runs eagerly.

Imported only when MusicGen generation runs: it needs torch.
"""

from __future__ import annotations

import functools
import warnings
from typing import List, Optional

import torch
import torch.nn.functional as F

from .int8 import full_range_linear
from .prepared import PreparedDecoder

__all__ = ["scripted_layers", "scripted_int8_layers"]


def _int8_layer(hidden: torch.Tensor, norms: List[torch.Tensor], eps: List[float],
                linears: List[torch.classes.quantized.LinearPackedParamsBase],
                keys: torch.Tensor, values: torch.Tensor, length: int, cross_keys: torch.Tensor,
                cross_values: torch.Tensor, cross_mask: Optional[torch.Tensor], text_rows: int,
                heads: int, head_dim: int, scale: float, cross_scale: float) -> torch.Tensor:
    """One decoder layer of ``decoding.DecoderStep`` for the int8 recipe, op for op what the eager
    loop runs (``norms``: the weight and bias of its three layer norms, in order; ``linears``:
    the fused query|key|value product, out, cross q, cross out, fc1, fc2, packed for 8-bit
    activations)."""
    rows = hidden.shape[0]
    width = hidden.shape[2]
    x = F.layer_norm(hidden, [width], norms[0], norms[1], eps[0])
    qkv = torch.ops.quantized.linear_dynamic(x, linears[0], False)
    q = qkv.narrow(2, 0, width).view(rows, 1, heads, head_dim).transpose(1, 2)
    end = length + 1
    k = qkv.narrow(2, width, width).view(rows, 1, heads, head_dim).transpose(1, 2)
    keys[:, :, length:end].copy_(k)
    v = qkv.narrow(2, 2 * width, width).view(rows, 1, heads, head_dim).transpose(1, 2)
    values[:, :, length:end].copy_(v)
    k = keys[:, :, :end]
    v = values[:, :, :end]
    out = F.scaled_dot_product_attention(q.to(k.dtype), k, v, scale=scale).to(q.dtype)
    out = out.transpose(1, 2).reshape(rows, 1, -1)
    hidden = hidden + torch.ops.quantized.linear_dynamic(out, linears[1], False)

    x = F.layer_norm(hidden, [width], norms[2], norms[3], eps[1])
    q = torch.ops.quantized.linear_dynamic(x, linears[2], False)
    q = q.view(rows, 1, heads, head_dim).transpose(1, 2)
    if text_rows == rows:
        out = F.scaled_dot_product_attention(q, cross_keys, cross_values, attn_mask=cross_mask,
                                             scale=cross_scale)
    else:
        out = q.new_zeros(q.shape)
        out[:text_rows] = F.scaled_dot_product_attention(
            q[:text_rows], cross_keys, cross_values, attn_mask=cross_mask, scale=cross_scale)
    out = out.transpose(1, 2).reshape(rows, 1, -1)
    hidden = hidden + torch.ops.quantized.linear_dynamic(out, linears[3], False)

    x = F.layer_norm(hidden, [width], norms[4], norms[5], eps[2])
    inner = F.gelu(torch.ops.quantized.linear_dynamic(x, linears[4], False))
    return hidden + torch.ops.quantized.linear_dynamic(inner, linears[5], False)


def _int8_layers(hidden: torch.Tensor, norms: List[List[torch.Tensor]], eps: List[List[float]],
                 linears: List[List[torch.classes.quantized.LinearPackedParamsBase]],
                 scales: List[List[float]], keys: List[torch.Tensor],
                 values: List[torch.Tensor], length: int, cross_keys: List[torch.Tensor],
                 cross_values: List[torch.Tensor], cross_mask: Optional[torch.Tensor],
                 text_rows: int, heads: int, head_dim: int) -> torch.Tensor:
    """Every decoder layer of the int8 recipe in turn (:func:`_int8_layer`), the per-layer
    arguments as lists. Run through TorchScript as one call per step: the same kernels without
    Python between them, nor the conversion of a layer's twenty arguments on every call."""
    for i in range(len(keys)):
        hidden = _int8_layer(hidden, norms[i], eps[i], linears[i], keys[i], values[i], length,
                             cross_keys[i], cross_values[i], cross_mask, text_rows, heads,
                             head_dim, scales[i][0], scales[i][1])
    return hidden


@functools.lru_cache(maxsize=1)
def scripted_int8_layers():
    """:func:`_int8_layers` compiled by TorchScript, or None where it cannot be (a torch without
    ``torch.jit``, sources not on disk): the eager loop then runs the same arithmetic.
    TorchScript is deprecated in favour of ``torch.compile``, which compiles for tens of seconds
    per process and stumbles on the quantized modules (docs/performance.md); this runs now and
    has its fallback."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated",
                                    category=DeprecationWarning)
            return torch.jit.script(_int8_layers)
    except Exception:  # noqa: BLE001 - any failure to compile means: run eagerly
        return None


def _int8_layer_args(layer, qkv) -> tuple | None:
    """The static arguments of :func:`_int8_layer` for ``layer`` -- its norms' weights and
    biases, their epsilons, its packed products, its two attention scales -- or None when
    ``qkv`` (its fused query|key|value product, :class:`PreparedDecoder`) is None or its other
    Linear layers are not all the int8 recipe's 8-bit ones (``int8.quantize_decoder_int8``)."""
    attn, cross = layer.self_attn, layer.encoder_attn
    modules = [attn.out_proj, cross.q_proj, cross.out_proj, layer.fc1, layer.fc2]
    norms = [layer.self_attn_layer_norm, layer.encoder_attn_layer_norm, layer.final_layer_norm]
    if qkv is None:
        return None
    try:
        full_range = full_range_linear()
    except ImportError:  # a torch without torch.ao quantization: no int8 layers either
        return None
    if not all(type(m) is full_range for m in modules):
        return None
    if not all(isinstance(n, torch.nn.LayerNorm) and n.weight is not None
               and n.bias is not None for n in norms):
        return None
    return ([t for n in norms for t in (n.weight, n.bias)], [float(n.eps) for n in norms],
            [qkv] + [m._packed_params._packed_params for m in modules],
            [float(attn.scaling), float(cross.scaling)])


def scripted_layers(layers, prepared: PreparedDecoder) -> tuple | None:
    """The scripted :func:`_int8_layers` and its static arguments for ``layers`` (norms, eps,
    linears, scales: one list each, a layer per item), or None when the layers run eagerly:
    not all int8 as :func:`_int8_layer_args` wants, or TorchScript cannot compile."""
    args = [_int8_layer_args(layer, prepared.fused_qkv(i)) for i, layer in enumerate(layers)]
    if any(a is None for a in args):
        return None
    scripted = scripted_int8_layers()
    if scripted is None:
        return None
    return scripted, tuple(list(column) for column in zip(*args))
