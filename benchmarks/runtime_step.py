"""musicstems' decoder step as one plain torch module, for runtimes that convert a graph.

:class:`ExportStep` computes what ``decoding.DecoderStep`` computes for one step -- the same
embeddings, layer order, SDPA attention and output heads, from the fp32 model's own modules --
but with the KV cache as inputs and outputs (past in, past + this step out, the layout optimum
exports decoders with), so that ``openvino.convert_model`` and ``torch.onnx.export`` can trace
it. The cross-attention keys and values are inputs too: they are computed once per song in
torch (:func:`cross_keys_values`), as ``DecoderStep.set_encoder`` does. Shapes are fixed but
the cache's length: ``rows`` rows, the first ``text_rows`` with text (guidance's unconditional
half attends to nothing and gets zero, as in ``DecoderStep``).

Used by ``benchmarks/runtimes.py`` only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ExportStep", "cross_keys_values", "input_names", "output_names"]


def input_names(layers: int) -> list[str]:
    return (["codes", "position", "cross_mask"]
            + [f"cross_{kind}.{i}" for i in range(layers) for kind in ("key", "value")]
            + [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")])


def output_names(layers: int) -> list[str]:
    return ["logits"] + [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]


def cross_keys_values(model, states: torch.Tensor, text_rows: int) -> list[torch.Tensor]:
    """Per layer, the cross-attention keys then values of the rows with text, (text_rows,
    heads, tokens, head_dim) each, from the fp32 model's projections: computed once a song."""
    config = model.config.decoder
    heads = config.num_attention_heads
    dim = config.hidden_size // heads
    states = states[:text_rows]
    rows, length, _ = states.shape
    out = []
    for layer in model.decoder.model.decoder.layers:
        attn = layer.encoder_attn
        for proj in (attn.k_proj, attn.v_proj):
            out.append(proj(states).view(rows, length, heads, dim).transpose(1, 2).contiguous())
    return out


class ExportStep(torch.nn.Module):
    """One decoder step: ``forward(codes, position, cross_mask, *cross, *past)`` ->
    ``(logits, *present)``.

    codes : int64 (rows, codebooks); position : int64 (1,), the step's position (the cache's
    length); cross_mask : bool (text_rows, 1, 1, tokens); cross : per layer key, value
    (text_rows, heads, tokens, head_dim); past : per layer key, value (rows, heads, length,
    head_dim). logits : float32 (rows * codebooks, vocab); present : per layer key, value
    (rows, heads, length + 1, head_dim)."""

    def __init__(self, model, rows: int, text_rows: int):
        super().__init__()
        decoder = model.decoder.model.decoder
        config = model.config.decoder
        self.embed_tokens = decoder.embed_tokens
        self.register_buffer("positions", decoder.embed_positions.weights.detach().clone(),
                             persistent=False)
        self.layers = decoder.layers
        self.layer_norm = decoder.layer_norm
        self.lm_heads = model.decoder.lm_heads
        self.rows, self.text_rows = rows, text_rows
        self.num_codebooks = config.num_codebooks
        self.heads = config.num_attention_heads
        self.head_dim = config.hidden_size // self.heads

    def _split(self, x):
        return x.reshape(x.shape[0], 1, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, codes, position, cross_mask, *tensors):
        n_layers = len(self.layers)
        cross, past = tensors[:2 * n_layers], tensors[2 * n_layers:]
        hidden = self.embed_tokens[0](codes[:, 0])
        for k in range(1, self.num_codebooks):
            hidden = hidden + self.embed_tokens[k](codes[:, k])
        hidden = (hidden + self.positions.index_select(0, position))[:, None, :]
        rows, n = self.rows, self.text_rows
        present = []
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            x = layer.self_attn_layer_norm(hidden)
            q = self._split(attn.q_proj(x))
            k = torch.cat([past[2 * i], self._split(attn.k_proj(x))], dim=2)
            v = torch.cat([past[2 * i + 1], self._split(attn.v_proj(x))], dim=2)
            present += [k, v]
            # SDPA's own scale where it is the layer's (MusicGen's 1/sqrt(head_dim)): a third
            # argument becomes an attention-mask input in OpenVINO's graph, which its fused
            # cache kernel does not take
            if attn.scaling == self.head_dim ** -0.5:
                out = F.scaled_dot_product_attention(q, k, v)
            else:
                out = F.scaled_dot_product_attention(q, k, v, scale=attn.scaling)
            hidden = hidden + attn.out_proj(out.transpose(1, 2).reshape(rows, 1, -1))

            attn = layer.encoder_attn
            x = layer.encoder_attn_layer_norm(hidden)
            q = self._split(attn.q_proj(x))
            out = F.scaled_dot_product_attention(q[:n], cross[2 * i], cross[2 * i + 1],
                                                 attn_mask=cross_mask, scale=attn.scaling)
            if n < rows:
                out = torch.cat([out, out.new_zeros((rows - n,) + tuple(out.shape[1:]))])
            hidden = hidden + attn.out_proj(out.transpose(1, 2).reshape(rows, 1, -1))

            x = layer.final_layer_norm(hidden)
            hidden = hidden + layer.fc2(F.gelu(layer.fc1(x)))
        hidden = self.layer_norm(hidden)
        logits = torch.stack([head(hidden) for head in self.lm_heads], dim=1)
        return (logits.reshape(rows * self.num_codebooks, -1), *present)
