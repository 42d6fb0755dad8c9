"""EnCodec's decoder on a CPU: the convolution stack as matrix products over short windows.

transformers' EnCodec decodes a whole song in one pass: every layer of the SEANet decoder runs
over the full length before the next starts. For a few stems of 10 s the last layers'
activations are far larger than the CPU's caches, so every ELU, padding and residual sum streams
them through memory, and the transposed and few-channel convolutions take oneDNN paths that copy
their inputs between layouts.

Here the quantizer, the first convolution and the LSTM -- which must see the whole sequence, and
are cheap at the frame rate -- run as transformers runs them. The rest of the stack (ELU,
transposed convolutions, residual blocks, the last convolution) then runs on windows of a few
frames of every stem at once, in (batch, time, channels) layout, so a window's activations stay
in the CPU's caches, and every convolution is one matrix product:

* a convolution of k taps: the input times all k taps' weights at once, (T, Cin) x (Cin, k Cout),
  then the k column blocks shifted by their tap and summed. Padding the products equals padding
  the input: each row of the product depends on its own input row only.
* a transposed convolution of stride s and kernel m s: (T, Cin) x (Cin, m s Cout), then the m
  blocks overlap-added and trimmed as transformers trims them.

The stack after the LSTM sees a fraction of a frame on either side. Each window carries
:func:`_context_frames` frames of context on both sides, computed and thrown away, and output is
taken only from its middle, so every output sample is computed from exactly the inputs it has in
one pass over the whole song. In fp32 the result is transformers' decode to rounding (~1e-7;
tested); in bf16 each tap's product is rounded to bf16 before the taps are summed (in fp32
for a convolution, in bf16 for a transposed convolution's overlapping blocks), which keeps it
within a dB of transformers' bf16 pass and well above the 30 dB threshold (tested). The speed
and SNR figures are in docs/performance.md ("What makes it fast").

Configurations this does not cover (EnCodec's chunked 24/48 kHz models, time-group norm, strided
convolutions in the decoder) and GPUs go through ``codec.decode`` itself;
:func:`unsupported_reason` says why.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["decode", "unsupported_reason"]

#: Rows of the last layer per window (stems x samples): 4 stems x 16 frames of 640 samples. A
#: window then holds about 5 MB of bf16 activations at 64 channels: small enough to stay in the
#: caches, large enough that each window's context and per-call costs stay a small share
#: (docs/performance.md has the window sizes measured).
_WINDOW_ROWS = 4 * 16 * 640


def _encodec_modules():
    from transformers.models.encodec import modeling_encodec as m

    return m.EncodecConv1d, m.EncodecConvTranspose1d, m.EncodecResnetBlock, m.EncodecLSTM


def _lstm_index(codec) -> int | None:
    lstm = _encodec_modules()[3]
    return next((i for i, layer in enumerate(codec.decoder.layers) if isinstance(layer, lstm)),
                None)


def unsupported_reason(codec) -> str | None:
    """Why :func:`decode` cannot run ``codec`` (``None`` when it can)."""
    conv, conv_t, resnet, _ = _encodec_modules()
    config = codec.config
    if next(codec.parameters()).device.type != "cpu":
        return "not on a CPU: the codec's own decode is faster on a GPU"
    if config.chunk_length is not None:
        return "a chunked EnCodec (24/48 kHz)"
    if config.norm_type != "weight_norm":
        return f"norm_type={config.norm_type!r}"
    if config.pad_mode not in ("reflect", "constant"):
        return f"pad_mode={config.pad_mode!r}"
    start = _lstm_index(codec)
    if start is None:
        return "no LSTM in the decoder"
    for layer in codec.decoder.layers[start + 1:]:
        inner = list(layer.block) + [layer.shortcut] if isinstance(layer, resnet) else [layer]
        for module in inner:
            if isinstance(module, conv) and module.conv.stride[0] != 1:
                return "a strided convolution in the decoder"
            if isinstance(module, conv_t) and module.conv.kernel_size[0] % module.conv.stride[0]:
                return "a transposed convolution whose kernel is not a multiple of its stride"
            if not isinstance(module, (conv, conv_t, nn.ELU, nn.Identity)):
                return f"a {type(module).__name__} in the decoder"
    return None


def _pad_time(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad (batch, time, channels) along time as ``F.pad(mode=...)`` pads the last axis."""
    if not (left or right):
        return x
    if mode == "constant":
        return F.pad(x, (0, 0, left, right))
    parts = [x[:, 1:left + 1].flip(1)] if left else []
    parts.append(x)
    if right:
        parts.append(x[:, -right - 1:-1].flip(1))
    return torch.cat(parts, dim=1)


class _Conv:
    """``EncodecConv1d`` of stride 1: pad as transformers pads, then one product for all taps."""

    def __init__(self, module):
        conv = module.conv
        weight = conv.weight.detach()  # (out, in, taps), weight norm applied
        self.taps, self.dilation = conv.kernel_size[0], conv.dilation[0]
        self.out_channels = weight.shape[0]
        # (taps * out, in): the product's columns are tap 0's outputs, then tap 1's, ...
        self.weight = weight.permute(2, 0, 1).reshape(-1, weight.shape[1]).contiguous()
        self.bias = None if conv.bias is None else conv.bias.detach()
        total = (self.taps - 1) * self.dilation
        self.pad = (total, 0) if module.causal else (total - total // 2, total // 2)
        self.mode = module.pad_mode

    def reach(self) -> int:
        return max(self.pad)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.taps == 1:
            return F.linear(x, self.weight, self.bias)
        length = x.shape[1]
        products = _pad_time(F.linear(x, self.weight), *self.pad, self.mode)
        out_channels, step = self.out_channels, self.dilation
        out = products[:, :length, :out_channels].float()
        for tap in range(1, self.taps):
            out += products[:, tap * step:tap * step + length,
                            tap * out_channels:(tap + 1) * out_channels]
        if self.bias is not None:
            out += self.bias
        return out.to(x.dtype)


class _ConvTranspose:
    """``EncodecConvTranspose1d``: one product, its blocks overlap-added, trimmed as
    transformers trims (padding_total = kernel - stride, split by causality)."""

    def __init__(self, module):
        conv = module.conv
        weight = conv.weight.detach()  # (in, out, kernel)
        self.stride = conv.stride[0]
        self.blocks = conv.kernel_size[0] // self.stride
        self.out_channels = weight.shape[1]
        self.weight = weight.permute(2, 1, 0).reshape(-1, weight.shape[0]).contiguous()
        self.bias = None if conv.bias is None else conv.bias.detach()
        total = conv.kernel_size[0] - self.stride
        right = math.ceil(total * module.trim_right_ratio) if module.causal else total // 2
        self.trim = (total - right, right)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        products = F.linear(x, self.weight).view(batch, length, self.blocks, self.stride,
                                                 self.out_channels)
        out = products.new_empty(batch, length + self.blocks - 1, self.stride, self.out_channels)
        out[:, :length] = products[:, :, 0]
        out[:, length:] = 0
        for block in range(1, self.blocks):
            out[:, block:block + length] += products[:, :, block]
        out = out.view(batch, -1, self.out_channels)
        if self.bias is not None:
            out = out + self.bias
        return out[:, self.trim[0]:out.shape[1] - self.trim[1]]


class _ResnetBlock:
    def __init__(self, module):
        self.block = [_elu(layer) if isinstance(layer, nn.ELU) else _Conv(layer)
                      for layer in module.block]
        self.shortcut = None if isinstance(module.shortcut, nn.Identity) else _Conv(
            module.shortcut)

    def reach(self) -> int:
        convs = [op for op in self.block if isinstance(op, _Conv)]
        return sum(op.reach() for op in convs) + (self.shortcut.reach() if self.shortcut else 0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        hidden = x
        for op in self.block:
            hidden = op(hidden)
        return (x if self.shortcut is None else self.shortcut(x)) + hidden


def _elu(module):
    return lambda x: F.elu(x, module.alpha)


def _build(layers) -> list:
    conv, conv_t, resnet, _ = _encodec_modules()
    ops = []
    for layer in layers:
        if isinstance(layer, nn.ELU):
            ops.append(_elu(layer))
        elif isinstance(layer, conv_t):
            ops.append(_ConvTranspose(layer))
        elif isinstance(layer, resnet):
            ops.append(_ResnetBlock(layer))
        else:
            ops.append(_Conv(layer))
    return ops


def _context_frames(ops) -> tuple[int, int]:
    """Frames of context a window needs on each side, and the fewest frames a window may have
    (every reflect padding needs more samples than it pads). Reach is summed over the layers, in
    frames at each layer's rate, and rounded up: an upper bound of the receptive field."""
    reach_frames, rate, min_frames = 0.0, 1, 1
    for op in ops:
        if isinstance(op, _ConvTranspose):
            reach_frames += (op.blocks - 1) / rate
            rate *= op.stride
        elif isinstance(op, (_Conv, _ResnetBlock)):
            reach = op.reach()
            reach_frames += reach / rate
            min_frames = max(min_frames, math.ceil((reach + 1) / rate))
    return max(1, math.ceil(reach_frames)), min_frames


def decode(codec, codes: torch.Tensor) -> tuple[torch.Tensor, str]:
    """``codec.decode(codes, [None] * batch).audio_values``, computed window by window.

    Call it only when :func:`unsupported_reason` is ``None``.

    Parameters
    ----------
    codec : EncodecModel
    codes : torch.Tensor [shape=(1, batch, codebooks, frames)]

    Returns
    -------
    audio : torch.Tensor [shape=(batch, channels, frames * hop)]
        In the codec's dtype.
    decoder : str
        Which decode ran: ``"musicstems windowed"``, or ``"transformers (...)"`` for codes
        too short to pad by reflection.
    """
    layers = codec.decoder.layers
    start = _lstm_index(codec)
    ops = _build(layers[start + 1:])
    context, min_frames = _context_frames(ops)
    if codes.shape[-1] < min_frames:  # too short to pad by reflection: transformers' own way
        audio = codec.decode(codes, [None] * codes.shape[1]).audio_values
        return audio, (f"transformers ({codes.shape[-1]} frames, fewer than the "
                       f"{min_frames} a window needs)")
    hidden = codec.quantizer.decode(codes[0].transpose(0, 1))
    for layer in layers[:start + 1]:
        hidden = layer(hidden)
    # (batch, frames, channels); contiguous, or F.linear expands its weight per batch row
    hidden = hidden.transpose(1, 2).contiguous()
    hop = math.prod(op.stride for op in ops if isinstance(op, _ConvTranspose))
    batch, frames, _ = hidden.shape
    window = max(round(_WINDOW_ROWS / (batch * hop)), 2 * context + 1, min_frames)
    step = window - 2 * context
    out = None
    for first in range(0, frames, step):
        last = min(first + step, frames)
        # The window around [first, last), moved inside the song at its ends so every window
        # has the same shape (oneDNN reuses its kernels for a shape it has seen).
        begin = min(max(first - context, 0), max(frames - window, 0))
        y = hidden[:, begin:begin + window]
        for op in ops:
            y = op(y)
        if out is None:
            out = y.new_empty(batch, frames * hop, y.shape[-1])
        out[:, first * hop:last * hop] = y[:, (first - begin) * hop:(last - begin) * hop]
    return out.transpose(1, 2).contiguous(), "musicstems windowed"
