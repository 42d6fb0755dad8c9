"""A self-attention KV cache that is written in place instead of grown by concatenation.

transformers' default ``DynamicCache`` appends each step's keys and values with ``torch.cat``,
which copies the whole cache of every layer on every decoder step. For a batched MusicGen song
(4 stems x 2 for classifier-free guidance, 24 layers, 1024 wide) that copy is 1.5 MB per cached
step in fp32: at 10 s (500 steps) the cache traffic of the copies outgrows the int8 weights the
step has to read. This layer allocates the cache once, for the whole song, writes each step into
it and hands attention a view of the filled part, so a step reads the cache once and copies
nothing (benchmarks/README.md has the numbers).

Imported only when MusicGen generation runs: it needs transformers.
"""

from __future__ import annotations

import inspect

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache

__all__ = ["preallocated_cache", "use_low_precision_kv", "release_cache"]

ATTENTION = "musicstems_sdpa"


class _InPlaceLayer(DynamicLayer):
    """One decoder layer's keys and values in a buffer of ``capacity`` positions, filled in
    place. It behaves as a ``DynamicLayer`` (same mask sizes, same sequence length) for the
    single forward-only sampling pass of ``generate``; it grows by doubling if a call ever needs
    more than ``capacity`` positions."""

    def __init__(self, capacity: int, dtype=None):
        super().__init__()
        self.capacity = max(int(capacity), 1)
        self.dtype = dtype  # None: the dtype of the keys and values the layer computes
        self.length = 0
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        dtype = self.dtype or key_states.dtype
        self._keys = key_states.new_empty(self._shape(key_states, self.capacity), dtype=dtype)
        self._values = value_states.new_empty(self._shape(value_states, self.capacity),
                                              dtype=dtype)
        self.is_initialized = True

    @staticmethod
    def _shape(states: torch.Tensor, length: int) -> tuple[int, ...]:
        batch, heads, _, dim = states.shape
        return batch, heads, length, dim

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * self.capacity)
        keys = self._keys.new_empty(self._shape(self._keys, capacity))
        values = self._values.new_empty(self._shape(self._values, capacity))
        keys[:, :, :self.length].copy_(self._keys[:, :, :self.length])
        values[:, :, :self.length].copy_(self._values[:, :, :self.length])
        self._keys, self._values, self.capacity = keys, values, capacity

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            self._grow(end)
        self._keys[:, :, self.length:end].copy_(key_states)
        self._values[:, :, self.length:end].copy_(value_states)
        self.length = end
        self.keys = self._keys[:, :, :end]
        self.values = self._values[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    # Not croppable: generate then never defers its stop check by one extra step (it does on
    # MPS for croppable caches), so the step the progress hook sees last is the last forward.
    is_croppable = False

    def reset(self) -> None:
        self.length = 0
        self._keys = self._values = None
        super().reset()


def preallocated_cache(model, capacity: int, *, dtype=None):
    """A cache for one ``MusicgenForConditionalGeneration.generate`` call: in-place self-attention
    layers of ``capacity`` positions (the decoder steps of the call) and transformers' own cache
    for the cross-attention, which is computed once.

    Returns ``None`` when the installed transformers cannot take a cache object this way (its
    default cache is then used): the argument is ``cache`` from transformers 5 on.
    """
    accepts = inspect.signature(model.prepare_inputs_for_generation).parameters
    if "cache" not in accepts:
        return None
    config = model.config.decoder
    layers = [_InPlaceLayer(capacity, dtype) for _ in range(config.num_hidden_layers)]
    return EncoderDecoderCache(Cache(layers=layers), DynamicCache(config=config))


def release_cache(cache) -> None:
    """Free the self-attention buffers once the last decoder step has run (generate still holds
    the cache while it decodes the audio, which needs the memory)."""
    if cache is None:
        return
    for layer in cache.self_attention_cache.layers:
        if isinstance(layer, _InPlaceLayer):
            layer.reset()


def _sdpa_over_cache(module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA attention, for keys and values kept in a lower precision than the
    queries: the (one-row) queries are cast to the cache's dtype and the output back, so the
    cache is read once, in its own precision."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if key.dtype == query.dtype:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.to(key.dtype)
    out, weights = sdpa_attention_forward(module, query.to(key.dtype), key, value,
                                          attention_mask, **kwargs)
    return out.to(query.dtype), weights


def use_low_precision_kv(model) -> bool:
    """Let the decoder attend over a KV cache kept in a lower precision than its activations
    (the cache's dtype is chosen by :func:`preallocated_cache`). Registers an attention function
    with transformers' ``AttentionInterface`` (and SDPA's masks for it) and selects it for the
    decoder only. Returns False, changing nothing, on a transformers without that interface."""
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError:
        return False
    if not hasattr(model.decoder, "set_attn_implementation"):
        return False
    AttentionInterface.register(ATTENTION, _sdpa_over_cache)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    model.decoder.set_attn_implementation(ATTENTION)
    return model.config.decoder._attn_implementation == ATTENTION
