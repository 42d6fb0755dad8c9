"""MusicGen's sampling loop, with nothing in it but the arithmetic of a step.

transformers' ``generate`` is general: every step it rebuilds the model inputs and the attention
masks, runs the decoder through its output dataclasses, hooks and cache objects, and calls a list
of logits processors. This loop runs the same arithmetic with the decoder's own modules and
weights: the same embeddings, the same layer order, SDPA attention over a KV cache written in
place, the same guidance, temperature, top-k / top-p and multinomial sampling in the same order
on the same RNG. Given the same seed it returns the codes ``generate`` returns (tested against
it), only sooner: musicgen-small, 4 stems, 250 steps, int8 54.2 against 78.7 ms per step with
transformers' own cache (docs/performance.md).

The text encoder runs once per song, and the cross-attention keys and values of every layer are
computed once from its output, as ``generate`` does.

Imported only when MusicGen generation runs: it needs torch (and the model's transformers
modules).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, List, Optional

import torch
import torch.nn.functional as F

from .precision import _full_range_linear, fused_query_key_value

__all__ = ["unsupported_reason", "sample_codes", "decode_audio", "encode_text", "DecoderStep",
           "SamplingSettings"]


@dataclass(frozen=True)
class SamplingSettings:
    max_new_tokens: int
    guidance_scale: float
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0  # 0: off

    @property
    def guided(self) -> bool:
        """Classifier-free guidance: a conditional and an unconditional row per prompt."""
        return self.guidance_scale > 1


def unsupported_reason(model) -> str | None:
    """Why this loop cannot run ``model`` (then ``generate`` runs it), or None."""
    decoder = getattr(getattr(getattr(model, "decoder", None), "model", None), "decoder", None)
    if decoder is None or not hasattr(model.decoder, "lm_heads"):
        return "not a MusicgenForConditionalGeneration"
    if model.training:
        return "the model is in training mode"
    config = model.config.decoder
    if getattr(config, "scale_embedding", False):
        return "scaled embeddings"
    if config.activation_function not in ("gelu",):
        return f"activation {config.activation_function!r}"
    layer = decoder.layers[0]
    for name in ("self_attn", "encoder_attn", "fc1", "fc2", "self_attn_layer_norm",
                 "encoder_attn_layer_norm", "final_layer_norm"):
        if not hasattr(layer, name):
            return f"decoder layer without {name}"
    return None


def _int8_layer(hidden: torch.Tensor, norms: List[torch.Tensor], eps: List[float],
                linears: List[torch.classes.quantized.LinearPackedParamsBase],
                keys: torch.Tensor, values: torch.Tensor, length: int, cross_keys: torch.Tensor,
                cross_values: torch.Tensor, cross_mask: Optional[torch.Tensor], text_rows: int,
                heads: int, head_dim: int, scale: float, cross_scale: float) -> torch.Tensor:
    """One decoder layer of :class:`DecoderStep` for the int8 recipe, op for op what the eager
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
def _scripted_int8_layers():
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


def _int8_layer_args(layer) -> tuple | None:
    """The static arguments of :func:`_int8_layer` for ``layer`` -- its norms' weights and
    biases, their epsilons, its packed products, its two attention scales -- or None when its
    Linear layers are not all musicstems' 8-bit dynamic int8 ones with the fused query, key and
    value product (``precision.quantize_decoder_int8``)."""
    attn, cross = layer.self_attn, layer.encoder_attn
    modules = [attn.out_proj, cross.q_proj, cross.out_proj, layer.fc1, layer.fc2]
    norms = [layer.self_attn_layer_norm, layer.encoder_attn_layer_norm, layer.final_layer_norm]
    try:
        full_range = _full_range_linear()
    except ImportError:  # a torch without torch.ao quantization: no int8 layers either
        return None
    qkv = fused_query_key_value(attn)
    if qkv is None or not all(type(m) is full_range for m in modules):
        return None
    if not all(isinstance(n, torch.nn.LayerNorm) and n.weight is not None
               and n.bias is not None for n in norms):
        return None
    return ([t for n in norms for t in (n.weight, n.bias)], [float(n.eps) for n in norms],
            [qkv] + [m._packed_params._packed_params for m in modules],
            [float(attn.scaling), float(cross.scaling)])


def _scripted_layers(layers) -> tuple | None:
    """The scripted :func:`_int8_layers` and its static arguments for ``layers`` (norms, eps,
    linears, scales: one list each, a layer per item), or None when the layers run eagerly:
    not all int8 as :func:`_int8_layer_args` wants, or TorchScript cannot compile."""
    args = [_int8_layer_args(layer) for layer in layers]
    if any(a is None for a in args):
        return None
    scripted = _scripted_int8_layers()
    if scripted is None:
        return None
    return scripted, tuple(list(column) for column in zip(*args))


def layer_runner(model) -> str:
    """How :class:`DecoderStep` runs ``model``'s decoder layers: ``"torchscript"`` (the int8
    recipe, where TorchScript compiles) or ``"eager"``."""
    scripted = _scripted_layers(model.decoder.model.decoder.layers)
    return "eager" if scripted is None else "torchscript"


class DecoderStep:
    """The decoder, one step at a time, for ``rows`` rows (twice the prompts under guidance).

    ``set_encoder`` takes the text encoder's states once; each call then takes the codes of the
    last step, (rows, codebooks), and returns the logits of the next, (rows * codebooks, vocab)
    float32 -- the layout ``generate`` samples from. Keys and values go into buffers of
    ``capacity`` steps allocated once and written in place (``DynamicCache`` re-copies the
    whole cache every step), in ``kv_dtype`` if given: queries are cast to it, so the cache --
    half a step's memory traffic at 10 s -- is read once, in its own precision."""

    def __init__(self, model, rows: int, capacity: int, kv_dtype=None):
        decoder = model.decoder.model.decoder
        config = model.config.decoder
        self.decoder = decoder
        self.heads = model.decoder.lm_heads
        self.num_codebooks = config.num_codebooks
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.layers = list(decoder.layers)
        weight = decoder.layer_norm.weight
        dtype = kv_dtype or weight.dtype
        shape = (rows, self.num_heads, capacity, self.head_dim)
        # one buffer for the keys and values of every layer, written in place
        self.keys = [torch.empty(shape, dtype=dtype, device=weight.device)
                     for _ in self.layers]
        self.values = [torch.empty(shape, dtype=dtype, device=weight.device)
                       for _ in self.layers]
        self.length = 0
        # The int8 recipe's layers run through TorchScript when it compiles, all of them in one
        # call per step (~7 ms of Python per step saved at musicgen-small, the same numbers);
        # everything else eagerly.
        self.scripted = _scripted_layers(self.layers)
        self.text_rows = rows  # rows that attend to text (set_encoder may skip the rest)
        self.cross_keys: list[torch.Tensor] = []  # per layer, of the rows with text
        self.cross_values: list[torch.Tensor] = []
        self.cross_mask = None

    def set_encoder(self, states: torch.Tensor, mask: torch.Tensor | None) -> None:
        rows, length, _ = states.shape
        heads, dim = self.num_heads, self.head_dim
        cross = []
        for layer in self.layers:
            attn = layer.encoder_attn
            k = attn.k_proj(states).view(rows, length, heads, dim).transpose(1, 2)
            v = attn.v_proj(states).view(rows, length, heads, dim).transpose(1, 2)
            cross.append((k, v))
        # Rows without text -- guidance's unconditional half: zero states, nothing to attend
        # to -- have all-zero values, so cross-attention gives them exactly zero whatever the
        # weights: only the rows before them are attended over (about 2 ms of a 58 ms int8
        # step at 4 stems).
        has_text = states.flatten(1).any(dim=1).tolist()
        self.text_rows = has_text.index(False) if False in has_text else rows
        if any(has_text[self.text_rows:]) or any(
                bool(v[self.text_rows:].any()) for _, v in cross):
            self.text_rows = rows
        n = self.text_rows
        self.cross_keys = [k[:n] for k, _ in cross]
        self.cross_values = [v[:n] for _, v in cross]
        # (rows, 1, 1, length): True where a text token may be attended to
        self.cross_mask = None if mask is None else mask[:n].bool()[:, None, None, :]

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        return x.view(rows, 1, self.num_heads, self.head_dim).transpose(1, 2)

    @staticmethod
    def _projections(attn, x: torch.Tensor) -> tuple:
        """Query, key and value of ``x``: one product where the int8 recipe fused them
        (``precision.fuse_int8_linears``), else the model's three modules."""
        fused = fused_query_key_value(attn)
        if fused is None:
            return attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
        widths = [attn.q_proj.out_features, attn.k_proj.out_features, attn.v_proj.out_features]
        return torch.ops.quantized.linear_dynamic(x, fused, False).split(widths, dim=-1)

    def _eager_layer(self, i: int, layer, hidden: torch.Tensor, end: int) -> torch.Tensor:
        """Decoder layer ``i`` for one step, through the model's own modules (and the int8
        recipe's fused query|key|value product, once)."""
        rows = hidden.shape[0]
        attn = layer.self_attn
        x = layer.self_attn_layer_norm(hidden)
        q, k, v = self._projections(attn, x)
        q = self._split(q)
        keys, values = self.keys[i], self.values[i]
        keys[:, :, self.length:end].copy_(self._split(k))
        values[:, :, self.length:end].copy_(self._split(v))
        k, v = keys[:, :, :end], values[:, :, :end]
        out = F.scaled_dot_product_attention(q.to(k.dtype), k, v, scale=attn.scaling)
        out = out.to(q.dtype)
        hidden = hidden + attn.out_proj(out.transpose(1, 2).reshape(rows, 1, -1))

        cross = layer.encoder_attn
        x = layer.encoder_attn_layer_norm(hidden)
        q = self._split(cross.q_proj(x))
        k, v = self.cross_keys[i], self.cross_values[i]
        n = self.text_rows
        if n == rows:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.cross_mask,
                                                 scale=cross.scaling)
        else:
            out = q.new_zeros(q.shape)
            out[:n] = F.scaled_dot_product_attention(q[:n], k, v, attn_mask=self.cross_mask,
                                                     scale=cross.scaling)
        hidden = hidden + cross.out_proj(out.transpose(1, 2).reshape(rows, 1, -1))

        x = layer.final_layer_norm(hidden)
        hidden = hidden + layer.fc2(F.gelu(layer.fc1(x)))
        return hidden

    def _prefill_layer(self, i: int, layer, hidden: torch.Tensor) -> torch.Tensor:
        """Decoder layer ``i`` over every position of ``hidden`` (rows, positions, width) at
        once, from an empty cache, as ``generate``'s first forward runs it: causal
        self-attention, the same products on the same shapes."""
        rows, length, _ = hidden.shape
        heads, dim = self.num_heads, self.head_dim
        attn = layer.self_attn
        x = layer.self_attn_layer_norm(hidden)
        q, k, v = self._projections(attn, x)
        q = q.reshape(rows, length, heads, dim).transpose(1, 2)
        self.keys[i][:, :, :length].copy_(k.reshape(rows, length, heads, dim).transpose(1, 2))
        self.values[i][:, :, :length].copy_(v.reshape(rows, length, heads, dim).transpose(1, 2))
        k, v = self.keys[i][:, :, :length], self.values[i][:, :, :length]
        out = F.scaled_dot_product_attention(q.to(k.dtype), k, v, is_causal=True,
                                             scale=attn.scaling).to(q.dtype)
        hidden = hidden + attn.out_proj(out.transpose(1, 2).reshape(rows, length, -1))

        cross = layer.encoder_attn
        x = layer.encoder_attn_layer_norm(hidden)
        q = cross.q_proj(x).reshape(rows, length, heads, dim).transpose(1, 2)
        k, v = self.cross_keys[i], self.cross_values[i]
        n = self.text_rows
        out = q.new_zeros(q.shape)
        out[:n] = F.scaled_dot_product_attention(q[:n], k, v, attn_mask=self.cross_mask,
                                                 scale=cross.scaling)
        hidden = hidden + cross.out_proj(out.transpose(1, 2).reshape(rows, length, -1))

        x = layer.final_layer_norm(hidden)
        return hidden + layer.fc2(F.gelu(layer.fc1(x)))

    def prefill(self, codes: torch.Tensor) -> torch.Tensor:
        """Every known step at once -- the start token and a primer's codes, (rows, codebooks,
        positions) -- into an empty cache, in one pass as ``generate``'s first forward (one
        batched product per weight instead of a step per position, and the same arithmetic as
        ``generate``, whose int8 activations are quantized over the whole pass). Returns the
        logits of the step after the last, as :meth:`__call__` does."""
        decoder = self.decoder
        rows, _, length = codes.shape
        if self.length or length > self.keys[0].shape[2]:
            raise RuntimeError(f"DecoderStep.prefill: {length} positions into a cache of "
                               f"{self.keys[0].shape[2]} holding {self.length}")
        hidden = sum(decoder.embed_tokens[k](codes[:, k]) for k in range(self.num_codebooks))
        hidden = hidden + decoder.embed_positions.weights[:length]
        for i, layer in enumerate(self.layers):
            hidden = self._prefill_layer(i, layer, hidden)
        self.length = length
        # norm and heads over every position, as the model's forward, then the last one
        hidden = decoder.layer_norm(hidden)
        logits = torch.stack([head(hidden) for head in self.heads], dim=1)[:, :, -1]
        return logits.reshape(rows * self.num_codebooks, -1).float()

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes``: (rows, codebooks) of the last step; returns logits (rows * codebooks,
        vocab) in float32, the layout ``generate`` samples from."""
        decoder = self.decoder
        rows = codes.shape[0]
        if self.length >= self.keys[0].shape[2]:
            raise RuntimeError(f"DecoderStep: more steps than its capacity ({self.length})")
        hidden = sum(decoder.embed_tokens[k](codes[:, k]) for k in range(self.num_codebooks))
        positions = decoder.embed_positions.weights[self.length]
        hidden = (hidden + positions)[:, None, :]  # (rows, 1, width)
        end = self.length + 1
        if self.scripted is not None:
            layers_fn, static = self.scripted
            hidden = layers_fn(hidden, *static, self.keys, self.values, self.length,
                               self.cross_keys, self.cross_values, self.cross_mask,
                               self.text_rows, self.num_heads, self.head_dim)
        else:
            for i, layer in enumerate(self.layers):
                hidden = self._eager_layer(i, layer, hidden, end)
        self.length = end
        hidden = decoder.layer_norm(hidden)
        logits = torch.stack([head(hidden) for head in self.heads], dim=1)
        return logits.reshape(rows * self.num_codebooks, -1).float()


def _process(scores: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    """transformers' logits processors for MusicGen, in their order: classifier-free guidance,
    temperature, top-k, top-p."""
    if settings.guided:
        cond, uncond = scores.split(scores.shape[0] // 2, dim=0)
        scores = uncond + (cond - uncond) * settings.guidance_scale
    if settings.temperature != 1.0:
        scores = scores / settings.temperature
    if settings.top_k:
        top_k = min(settings.top_k, scores.shape[-1])
        kth = torch.topk(scores, top_k)[0][..., -1, None]
        scores = scores.masked_fill(scores < kth, -math.inf)
    if settings.top_p and settings.top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(scores, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - settings.top_p)
        remove[..., -1:] = 0
        remove = remove.scatter(1, sorted_indices, remove)
        scores = scores.masked_fill(remove, -math.inf)
    return scores


def encode_text(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, *,
                guided: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The text encoder's states as the decoder attends to them, and their mask: projected to
    the decoder's width, padding zeroed (as the model's ``forward`` does); guidance appends the
    'null' half -- zero states with nothing to attend to -- as ``generate`` does."""
    config = model.config
    states = model.text_encoder(input_ids=input_ids, attention_mask=attention_mask
                                ).last_hidden_state
    if guided:
        states = torch.cat([states, torch.zeros_like(states)], dim=0)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, torch.zeros_like(attention_mask)], dim=0)
    if (config.text_encoder.hidden_size != config.decoder.hidden_size
            and config.decoder.cross_attention_hidden_size is None):
        states = model.enc_to_dec_proj(states)
    if attention_mask is not None:
        states = states * attention_mask[..., None]
    return states, attention_mask


def sample_codes(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                 settings: SamplingSettings, *, kv_dtype=None,
                 on_step: Callable[[int], Any] | None = None,
                 prefix_codes: torch.Tensor | None = None) -> torch.Tensor:
    """Sample MusicGen's audio codes for a batch of text prompts, on torch's global RNG.

    Returns the codes as ``generate`` hands them to the audio codec: (1, batch, codebooks,
    frames), the delay pattern undone. ``on_step(step)`` is called after each decoder step
    (from 1). The KV cache is freed before this returns, before the codec needs the memory.

    ``prefix_codes`` (batch, codebooks, primer frames), from ``primer.encode_primers``: an
    audio prompt's codes, forced where ``generate(input_values=...)`` forces them (after the
    start token, each codebook k steps late) and run through the decoder in one pass; the
    returned frames then begin with the primer's, as ``generate``'s audio begins with it.
    """
    num_codebooks = model.config.decoder.num_codebooks
    batch = input_ids.shape[0]
    guided = settings.guided
    states, mask = encode_text(model, input_ids, attention_mask, guided=guided)

    start_id = int(model.generation_config.decoder_start_token_id)
    pad_id = int(model.generation_config.pad_token_id)
    known = 1 if prefix_codes is None else 1 + prefix_codes.shape[-1]  # start token + primer
    length = known + settings.max_new_tokens
    first = torch.full((batch * num_codebooks, 1), start_id, dtype=torch.long,
                       device=input_ids.device)
    if prefix_codes is not None:
        first = torch.cat([first, prefix_codes.reshape(batch * num_codebooks, -1)], dim=1)
    # transformers' own delay pattern (mono and stereo): (batch * codebooks, length), -1 where
    # a code is sampled, else the code forced there (the start token, a primer's codes, pads)
    _, pattern = model.decoder.build_delay_pattern_mask(first, pad_token_id=start_id,
                                                        max_length=length)
    codes = torch.where(pattern == -1, start_id, pattern)
    step = DecoderStep(model, 2 * batch if guided else batch, length, kv_dtype=kv_dtype)
    step.set_encoder(states, mask)
    for t in range(known - 1, length - 1):
        if t == known - 1 and known > 1:
            prefix = codes[:, :known].view(batch, num_codebooks, known)
            logits = step.prefill(prefix.repeat(2, 1, 1) if guided else prefix)
        else:
            last = codes[:, t].view(batch, num_codebooks)
            logits = step(last.repeat(2, 1) if guided else last)
        probs = F.softmax(_process(logits, settings), dim=-1)
        sampled = torch.multinomial(probs, num_samples=1).squeeze(1)
        forced = pattern[:, t + 1]
        codes[:, t + 1] = torch.where(forced == -1, sampled, forced)
        if on_step is not None:
            on_step(t + 2 - known)
    del step  # the KV cache
    return codes[codes != pad_id].reshape(1, batch, num_codebooks, -1)


def decode_audio(model, codes: torch.Tensor) -> torch.Tensor:
    """EnCodec's audio for ``codes`` (1, batch, codebooks, frames), all stems in one batched
    call: (batch, channels, samples). Stereo models interleave left and right codebooks, decoded
    one side at a time -- as ``generate`` does. On a CPU the decoder's convolution stack runs
    window by window (``codec.py``); elsewhere, and for codecs it does not cover, as
    transformers runs it."""
    from . import codec as windowed

    encodec = model.audio_encoder
    scales = [None] * codes.shape[1]
    if windowed.unsupported_reason(encodec) is None:
        def run(side):
            return windowed.decode(encodec, side)
    else:
        def run(side):
            return encodec.decode(side, audio_scales=scales).audio_values
    if model.decoder.config.audio_channels == 1:
        return run(codes)
    return torch.cat([run(codes[:, :, ::2, :]), run(codes[:, :, 1::2, :])], dim=1)
