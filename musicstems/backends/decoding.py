"""MusicGen's sampling loop, with nothing in it but the arithmetic of a step.

transformers' ``generate`` is general: every step it rebuilds the model inputs and the attention
masks, runs the decoder through its output dataclasses, hooks and cache objects, and calls a list
of logits processors. This loop runs the same arithmetic with the decoder's own modules and
weights: the same embeddings, the same layer order, SDPA attention over a KV cache written in
place, the same guidance, temperature, top-k / top-p and multinomial sampling in the same order.
On torch's global RNG and the same seed it returns the codes ``generate`` returns (tested
against it); the backend gives each stem its own stream instead (``sampling.stem_streams``), and
a stem alone on its stream gets ``generate``'s codes for it under its seed. It is only sooner:
none of generate's per-step bookkeeping runs (docs/performance.md, "What makes it fast", has
the figures).

It leans on transformers' MusicGen internals (module layout, ``build_delay_pattern_mask``, the
order of the logits processors and of the RNG draws) and on private torch ops, so it runs only
on the versions listed in ``versions.py``; elsewhere the backend runs ``generate``.

The text encoder runs once per song, and the cross-attention keys and values of every layer are
computed once from its output, as ``generate`` does.

Imported only when MusicGen generation runs: it needs torch (and the model's transformers
modules).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from .int8_layers import scripted_layers
from .prepared import PreparedDecoder
from .sampling import DelayPattern, SamplingSettings, run_steps

__all__ = ["unsupported_reason", "sample_codes", "decode_audio", "encode_text", "DecoderStep",
           "SamplingSettings"]


def unsupported_reason(model) -> str | None:
    """Why this loop cannot run ``model`` (then ``generate`` runs it), or None."""
    decoder = getattr(getattr(getattr(model, "decoder", None), "model", None), "decoder", None)
    if decoder is None or not hasattr(model.decoder, "lm_heads"):
        return "not a MusicgenForConditionalGeneration"
    reason = decoder_config_reason(model)
    if reason is not None:
        return reason
    layer = decoder.layers[0]
    for name in ("self_attn", "encoder_attn", "fc1", "fc2", "self_attn_layer_norm",
                 "encoder_attn_layer_norm", "final_layer_norm"):
        if not hasattr(layer, name):
            return f"decoder layer without {name}"
    return None


def decoder_config_reason(model) -> str | None:
    """What in ``model``'s mode or decoder config the loops do not compute (None: nothing);
    shared by this loop and the melody loop."""
    if model.training:
        return "the model is in training mode"
    config = model.config.decoder
    if getattr(config, "scale_embedding", False):
        return "scaled embeddings"
    if config.activation_function != "gelu":
        return f"activation {config.activation_function!r}"
    return None


class DecoderStep:
    """The decoder, one step at a time, for ``rows`` rows (twice the prompts under guidance).

    ``set_encoder`` takes the text encoder's states once; each call then takes the codes of the
    last step, (rows, codebooks), and returns the logits of the next, (rows * codebooks, vocab)
    float32 -- the layout ``generate`` samples from. Keys and values go into buffers of
    ``capacity`` steps allocated once and written in place (``DynamicCache`` re-copies the
    whole cache every step), in ``prepared.kv_dtype`` if given: queries are cast to it, so the
    cache -- half a step's memory traffic on long songs -- is read once, in its own precision.

    ``prepared`` is what the model's precision recipe handed over (the int8 recipe's fused
    query|key|value products, the cache's dtype); without it the step runs the model's own
    modules. :attr:`layer_runner` says how the layers run: ``"torchscript"`` (the int8
    recipe, all layers in one scripted call per step, where TorchScript compiles) or
    ``"eager"``."""

    def __init__(self, model, rows: int, capacity: int, prepared: PreparedDecoder | None = None):
        prepared = PreparedDecoder() if prepared is None else prepared
        decoder = model.decoder.model.decoder
        config = model.config.decoder
        self.decoder = decoder
        self.heads = model.decoder.lm_heads
        self.num_codebooks = config.num_codebooks
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.layers = list(decoder.layers)
        self.qkv = [prepared.fused_qkv(i) for i in range(len(self.layers))]
        weight = decoder.layer_norm.weight
        dtype = prepared.kv_dtype or weight.dtype
        shape = (rows, self.num_heads, capacity, self.head_dim)
        # one buffer for the keys and values of every layer, written in place
        self.keys = [torch.empty(shape, dtype=dtype, device=weight.device)
                     for _ in self.layers]
        self.values = [torch.empty(shape, dtype=dtype, device=weight.device)
                       for _ in self.layers]
        self.length = 0
        # The int8 recipe's layers run through TorchScript when it compiles, all of them in one
        # call per step: the same numbers without Python between the kernels; everything else
        # eagerly.
        self.scripted = scripted_layers(self.layers, prepared)
        self.layer_runner = "eager" if self.scripted is None else "torchscript"
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
        # weights: only the rows before them are attended over, half the work.
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
        """(rows, positions, width) -> (rows, heads, positions, head_dim)."""
        rows, positions = x.shape[:2]
        return x.reshape(rows, positions, self.num_heads, self.head_dim).transpose(1, 2)

    @staticmethod
    def _projections(attn, fused, x: torch.Tensor) -> tuple:
        """Query, key and value of ``x``: one product where the int8 recipe fused them
        (``fused``, ``int8.fuse_int8_linears``), else the model's three modules."""
        if fused is None:
            return attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
        widths = [attn.q_proj.out_features, attn.k_proj.out_features, attn.v_proj.out_features]
        return torch.ops.quantized.linear_dynamic(x, fused, False).split(widths, dim=-1)

    def _eager_layer(self, i: int, layer, hidden: torch.Tensor, end: int) -> torch.Tensor:
        """Decoder layer ``i`` for the positions of ``hidden`` (rows, positions, width) -- one
        step, or a prefill's every known step from an empty cache, causally, as ``generate``'s
        first forward -- through the model's own modules (and the int8 recipe's fused
        query|key|value product, once)."""
        rows, new = hidden.shape[:2]
        attn = layer.self_attn
        x = layer.self_attn_layer_norm(hidden)
        q, k, v = self._projections(attn, self.qkv[i], x)
        q = self._split(q)
        keys, values = self.keys[i], self.values[i]
        keys[:, :, self.length:end].copy_(self._split(k))
        values[:, :, self.length:end].copy_(self._split(v))
        k, v = keys[:, :, :end], values[:, :, :end]
        out = F.scaled_dot_product_attention(q.to(k.dtype), k, v, is_causal=new > 1,
                                             scale=attn.scaling)
        out = out.to(q.dtype)
        hidden = hidden + attn.out_proj(out.transpose(1, 2).reshape(rows, new, -1))

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
        hidden = hidden + cross.out_proj(out.transpose(1, 2).reshape(rows, new, -1))

        x = layer.final_layer_norm(hidden)
        hidden = hidden + layer.fc2(F.gelu(layer.fc1(x)))
        return hidden

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
            hidden = self._eager_layer(i, layer, hidden, length)
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
                 settings: SamplingSettings, *, prepared: PreparedDecoder | None = None,
                 step_class=DecoderStep, on_step: Callable[[int], Any] | None = None,
                 prefix_codes: torch.Tensor | None = None,
                 streams: list[torch.Generator] | None = None) -> tuple[torch.Tensor, dict]:
    """Sample MusicGen's audio codes for a batch of text prompts, each stem from its own random
    stream (or all from torch's global RNG, as ``generate``).

    Parameters
    ----------
    model : MusicgenForConditionalGeneration
        In eval mode, with :func:`unsupported_reason` None.
    input_ids : torch.Tensor [shape=(batch, tokens)]
        The prompts' text tokens, as the model's processor gives them.
    attention_mask : torch.Tensor [shape=(batch, tokens)] or None
    settings : SamplingSettings
    prepared : PreparedDecoder, optional
        What the model's precision recipe prepared (``prepared.prepare_decoder``); handed to
        the step.
    step_class : callable, optional
        The decoder step, called as ``step_class(model, rows, capacity, prepared)``
        (:class:`DecoderStep`'s interface: ``set_encoder``, one call per step, ``prefill``
        for a primer, and its ``layer_runner``).
    on_step : callable, optional
        Called as ``on_step(step)`` after each decoder step (from 1).
    prefix_codes : torch.Tensor [shape=(batch, codebooks, primer frames)], optional
        An audio prompt's codes (``primer.encode_primers``), forced where
        ``generate(input_values=...)`` forces them -- after the start token, each codebook k
        steps late -- and run through the decoder in one pass (``step_class.prefill``).
    streams : list of torch.Generator, optional
        One per prompt (``sampling.stem_streams``): each stem's codes are drawn from its own
        stream. None: every draw on torch's global RNG, as ``generate`` draws them.

    Returns
    -------
    codes : torch.Tensor [shape=(1, batch, codebooks, frames)]
        The codes as ``generate`` hands them to the audio codec, the delay pattern undone;
        with a primer they begin with its frames, as ``generate``'s audio begins with it.
    report : dict
        ``decoder_layers``: how the step ran the decoder layers (its ``layer_runner``).

    The KV cache is freed before this returns, before the codec needs the memory.
    """
    guided = settings.guided
    states, mask = encode_text(model, input_ids, attention_mask, guided=guided)
    pattern = DelayPattern(model, input_ids.shape[0], settings.max_new_tokens, prefix_codes,
                           input_ids.device)
    step = step_class(model, 2 * pattern.batch if guided else pattern.batch, pattern.length,
                      prepared)
    step.set_encoder(states, mask)
    codes = run_steps(step, pattern, settings, on_step=on_step, streams=streams,
                      prefill=step.prefill if pattern.known > 1 else None)
    report = {"decoder_layers": step.layer_runner}
    del step  # the KV cache
    return codes, report


def decode_audio(model, codes: torch.Tensor) -> tuple[torch.Tensor, str]:
    """EnCodec's audio for ``codes``, all stems in one batched call.

    Stereo models interleave left and right codebooks, decoded one side at a time -- as
    ``generate`` does. On a CPU the decoder's convolution stack runs window by window
    (``codec.py``); elsewhere, and for codecs or lengths it does not cover, as transformers
    runs it.

    Parameters
    ----------
    model : MusicgenForConditionalGeneration
    codes : torch.Tensor [shape=(1, batch, codebooks, frames)]

    Returns
    -------
    audio : torch.Tensor [shape=(batch, channels, samples)]
        In the codec's dtype.
    decoder : str
        Which decode ran, for the manifest: ``"musicstems windowed"`` or
        ``"transformers (<why>)"``.
    """
    from . import codec as windowed

    encodec = model.audio_encoder
    reason = windowed.unsupported_reason(encodec)
    if reason is None:
        def run(side):
            return windowed.decode(encodec, side)
    else:
        scales = [None] * codes.shape[1]

        def run(side):
            audio = encodec.decode(side, audio_scales=scales).audio_values
            return audio, f"transformers ({reason})"
    if model.decoder.config.audio_channels == 1:
        return run(codes)
    (left, decoder), (right, _) = run(codes[:, :, ::2, :]), run(codes[:, :, 1::2, :])
    return torch.cat([left, right], dim=1), decoder
