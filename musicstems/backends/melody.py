"""MusicGen-Melody's chroma as the model takes it: ``input_features`` (batch, frames, 12).

``generate(input_features=...)`` projects the chroma to the decoder's width, tiles it to
``chroma_length`` frames (235: 30 s) and prepends it, with the text, to the decoder's input;
guidance's unconditional half gets the "no melody" chroma -- zeros with pitch class 0 set --
of the same shape. :func:`melody_features` stacks the stems' chromas
(:func:`musicstems.conditioning.melodies`) into that layout, the "no melody" chroma on the rows
of stems without one (drums), so one batch carries tonal stems and drums alike.

:func:`sample_melody_codes` is musicstems' sampling loop for these models (the text-only
loop, ``decoding.sample_codes``, runs MusicGen's cross-attention; a melody decoder has none):
the prefix -- chroma, then text -- and the known codes in one causal pass, then a step at a
time into a KV cache written in place, sampled as ``generate`` samples. Tested bit for bit
against ``generate(input_features=..., decoder_input_ids=...)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["is_melody", "melody_features", "null_chroma", "condition_states", "MelodyStep",
           "sample_melody_codes", "unsupported_reason"]


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


def unsupported_reason(model) -> str | None:
    """Why :func:`sample_melody_codes` cannot run ``model`` (then ``generate`` runs it)."""
    from .decoding import decoder_config_reason

    if not is_melody(model):
        return "not a MusicGen-Melody"
    return decoder_config_reason(model)


def condition_states(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                     features: torch.Tensor | None, *, guided: bool) -> torch.Tensor:
    """The decoder's prefix, (rows, chroma_length + text tokens, width), as
    ``generate(input_features=...)`` builds it: the chroma projected and tiled to
    ``chroma_length`` frames, then the text encoder's states projected, padding zeroed;
    guidance's unconditional half has zero text and the "no melody" chroma."""
    config = model.config
    text = model.text_encoder(input_ids=input_ids, attention_mask=attention_mask
                              ).last_hidden_state
    if config.text_encoder.hidden_size != config.decoder.hidden_size:
        text = model.enc_to_dec_proj(text)
    if guided:
        text = torch.cat([text, torch.zeros_like(text)], dim=0)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, torch.zeros_like(attention_mask)], dim=0)
    if attention_mask is not None:
        text = text * attention_mask[..., None]
    batch = input_ids.shape[0]
    if features is None:
        features = torch.zeros((batch, 1, config.num_chroma), device=text.device,
                               dtype=model.dtype)
        features[:, :, 0] = 1
    null = torch.zeros_like(features)
    null[:, :, 0] = 1
    chroma = torch.cat([features, null], dim=0) if guided else features
    if config.num_chroma != config.decoder.hidden_size:
        chroma = model.audio_enc_to_dec_proj(chroma)
    if chroma.shape[1] < config.chroma_length:
        chroma = chroma.repeat(1, math.ceil(config.chroma_length / chroma.shape[1]), 1)
    return torch.cat([chroma[:, :config.chroma_length], text], dim=1)


class MelodyStep:
    """MusicGen-Melody's decoder -- self-attention only, over the conditioning prefix and the
    codes -- for ``rows`` rows: :meth:`prefill` runs the prefix and the known codes in one
    pass, as ``generate``'s first forward; each call then one step, into a KV cache of
    ``capacity`` positions written in place."""

    def __init__(self, model, rows: int, capacity: int, prepared=None):
        from .decoding import DecoderStep

        decoder = model.decoder.model.decoder
        config = model.config.decoder
        self.decoder, self.heads = decoder, model.decoder.lm_heads
        self.layers = list(decoder.layers)
        self.num_codebooks = config.num_codebooks
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.projections = DecoderStep._projections
        # the int8 recipe's fused q|k|v products; the cache stays in the activations' dtype
        # (prepared.kv_dtype is the text loop's choice), so the arithmetic is generate's
        self.qkv = [None if prepared is None else prepared.fused_qkv(i)
                    for i in range(len(self.layers))]
        weight = decoder.layer_norm.weight
        shape = (rows, self.num_heads, capacity, self.head_dim)
        self.keys = [torch.empty(shape, dtype=weight.dtype, device=weight.device)
                     for _ in self.layers]
        self.values = [torch.empty(shape, dtype=weight.dtype, device=weight.device)
                       for _ in self.layers]
        self.length = 0

    def _embed(self, codes: torch.Tensor) -> torch.Tensor:
        """(rows, codebooks, positions) -> (rows, positions, width), as the model sums them."""
        return sum(self.decoder.embed_tokens[k](codes[:, k]) for k in range(self.num_codebooks))

    def _layers(self, hidden: torch.Tensor) -> torch.Tensor:
        rows, new, _ = hidden.shape
        start, end = self.length, self.length + new
        if end > self.keys[0].shape[2]:
            raise RuntimeError(f"MelodyStep: {end} positions into a cache of "
                               f"{self.keys[0].shape[2]}")
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            q, k, v = self.projections(attn, self.qkv[i], layer.self_attn_layer_norm(hidden))

            def split(x):
                return x.reshape(rows, new, self.num_heads, self.head_dim).transpose(1, 2)

            self.keys[i][:, :, start:end].copy_(split(k))
            self.values[i][:, :, start:end].copy_(split(v))
            out = F.scaled_dot_product_attention(
                split(q), self.keys[i][:, :, :end], self.values[i][:, :, :end],
                is_causal=new > 1, scale=attn.scaling)  # a prefill starts from an empty cache
            hidden = hidden + attn.out_proj(out.transpose(1, 2).reshape(rows, new, -1))
            x = layer.final_layer_norm(hidden)
            hidden = hidden + layer.fc2(F.gelu(layer.fc1(x)))
        self.length = end
        return self.decoder.layer_norm(hidden)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        # the heads over every position given, as the model's forward; the last one's logits
        logits = torch.stack([head(hidden) for head in self.heads], dim=1)[:, :, -1]
        return logits.reshape(hidden.shape[0] * self.num_codebooks, -1).float()

    def prefill(self, prefix: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """``prefix`` (rows, positions, width) from :func:`condition_states`, then ``codes``
        (rows, codebooks, known): logits of the next step, (rows * codebooks, vocab)."""
        if self.length:
            raise RuntimeError("MelodyStep.prefill: the cache is not empty")
        hidden = torch.cat([prefix, self._embed(codes)], dim=1)
        hidden = hidden + self.decoder.embed_positions.weights[:hidden.shape[1]]
        return self._logits(self._layers(hidden))

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes``: (rows, codebooks) of the last step; logits of the next."""
        hidden = self._embed(codes[:, :, None])
        hidden = hidden + self.decoder.embed_positions.weights[self.length:self.length + 1]
        return self._logits(self._layers(hidden))


def sample_melody_codes(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                        features: torch.Tensor | None, settings, *, prepared=None,
                        on_step=None, prefix_codes: torch.Tensor | None = None,
                        streams=None) -> tuple[torch.Tensor, dict]:
    """:func:`~musicstems.backends.decoding.sample_codes` for a MusicGen-Melody: the same
    delay pattern, primer, random streams, sampling and return, the chroma ``features``
    (batch, frames, 12) or None heard through the decoder's prefix.

    Returns
    -------
    codes : torch.Tensor [shape=(1, batch, codebooks, frames)]
    report : dict
        ``decoder_layers``: ``"eager"``.
    """
    from .sampling import DelayPattern, run_steps

    guided = settings.guided
    prefix = condition_states(model, input_ids, attention_mask, features, guided=guided)
    pattern = DelayPattern(model, input_ids.shape[0], settings.max_new_tokens, prefix_codes,
                           input_ids.device)
    rows = 2 * pattern.batch if guided else pattern.batch
    step = MelodyStep(model, rows, prefix.shape[1] + pattern.length, prepared)
    # the conditioning prefix always goes in with the known codes, in one causal pass
    codes = run_steps(step, pattern, settings, on_step=on_step, streams=streams,
                      prefill=lambda seen: step.prefill(prefix, seen))
    del step  # the KV cache
    return codes, {"decoder_layers": "eager"}
