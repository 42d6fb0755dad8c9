"""How many stems go in one batch: ``max_batch``, the memory a batch needs, and the budget.

A batch of n stems keeps, while it samples, a KV cache of every decoder layer for each of its
rows (2 n under classifier-free guidance) over a window's positions: for musicgen-small at a
30 s window that is about 0.6 GB per stem in fp32, for musicgen-large about 2.4 GB -- the
part of generation's memory that grows with the batch. :func:`estimate_batch_bytes` adds it up
from the model's config, with the text's cross-attention keys and values, the largest prefill's
activations, the logits' working set and the decoded audio, before anything is allocated;
:func:`plan_groups` splits a song's stems into batches of at most ``max_batch``, and a batch
whose estimate is above the budget (:func:`memory_budget_bytes`: ``memory_budget_gb``, else
most of the memory available now) is halved until it fits. A batch that runs out of memory
anyway (``torch.cuda.OutOfMemoryError``, or the CPU allocator's failure:
:func:`is_out_of_memory`) is halved and run again. Each split is recorded in the manifest.

No torch import at module level: the planning is arithmetic, and the cache's lookup uses it.
"""

from __future__ import annotations

import math
import os
from typing import Any

__all__ = ["plan_groups", "estimate_batch_bytes", "memory_budget_bytes", "available_bytes",
           "is_out_of_memory", "BUDGET_SHARE"]

#: Share of the memory available when generation starts that a batch may plan to use, when
#: no ``memory_budget_gb`` is given: the rest is headroom for what the estimate leaves out
#: (allocator slack, the caller's own arrays).
BUDGET_SHARE = 0.8

#: The codec decode's window working set, independent of the batch (``codec.py`` shrinks its
#: windows as the batch grows): an upper bound of its activations' bytes.
_CODEC_WINDOW_BYTES = 64 << 20


def plan_groups(count: int, max_batch: int | None) -> list[int]:
    """The sizes of the batches ``count`` stems are sampled in: as few as ``max_batch``
    allows (None: one), their sizes as equal as can be, larger ones first.

    >>> plan_groups(5, 4)
    [3, 2]
    >>> plan_groups(4, None)
    [4]
    """
    if count <= 0:
        return []
    limit = count if max_batch is None else max(1, min(int(max_batch), count))
    batches = math.ceil(count / limit)
    base, extra = divmod(count, batches)
    return [base + 1] * extra + [base] * (batches - extra)


def estimate_batch_bytes(config: Any, *, stems: int, guided: bool, positions: int,
                         prefill_positions: int, text_tokens: int, samples: int,
                         kv_bytes: int, activation_bytes: int) -> dict[str, int]:
    """The bytes one batch of ``stems`` needs while it samples and decodes, by part.

    Parameters
    ----------
    config : MusicgenConfig
        The model's config (``model.config``): decoder layers, width, heads, codebooks, vocab;
        the codec's channels.
    stems : int
    guided : bool
        Classifier-free guidance: two rows per stem.
    positions : int
        The KV cache's positions (a window with its start token, context and delay steps).
    prefill_positions : int
        Positions of the largest prefill (window 0's primer, a later window's context).
    text_tokens : int
        The prompts' padded length.
    samples : int
        Samples of each stem's decoded audio (primer included), per channel.
    kv_bytes, activation_bytes : int
        Bytes per element of the KV cache and of the decoder's activations.

    Returns
    -------
    dict of str -> int
        ``kv_cache`` (exactly what ``decoding.DecoderStep`` allocates), ``cross_attention``,
        ``prefill``, ``logits``, ``audio``, ``codec`` and their ``total``.
    """
    decoder = config.decoder
    layers, width = int(decoder.num_hidden_layers), int(decoder.hidden_size)
    heads, codebooks = int(decoder.num_attention_heads), int(decoder.num_codebooks)
    ffn, vocab = int(decoder.ffn_dim), int(decoder.vocab_size)
    channels = int(getattr(decoder, "audio_channels", 1))
    rows = stems * (2 if guided else 1)
    head_dim = width // heads
    parts = {
        # keys and values of every layer, one buffer each, allocated once per window
        "kv_cache": 2 * layers * rows * heads * positions * head_dim * kv_bytes,
        # the text's keys and values per layer, and the encoder's states
        "cross_attention": (2 * layers + 1) * rows * text_tokens * width * activation_bytes,
        # one layer at a time over every prefilled position: the hidden states and their
        # residual, the feed-forward's inner width, and the attention scores (fp32)
        "prefill": rows * prefill_positions * (3 * width + ffn) * activation_bytes
        + rows * heads * prefill_positions * prefill_positions * 4,
        # a step's logits through guidance, top-k/top-p and softmax: a few fp32 copies and
        # a sort's int64 indices
        "logits": rows * codebooks * vocab * 4 * 6,
        # the decoded stems: the codec's output, its float32 copy and the numpy array
        "audio": 3 * stems * channels * samples * 4,
        # EnCodec's LSTM and first layers over every frame, plus the windowed stack
        "codec": stems * channels * math.ceil(samples / _hop(config)) * _codec_width(config) * 4
        * 4 + _CODEC_WINDOW_BYTES,
    }
    parts["total"] = sum(parts.values())
    return parts


def _hop(config: Any) -> int:
    return int(math.prod(config.audio_encoder.upsampling_ratios))


def _codec_width(config: Any) -> int:
    codec = config.audio_encoder
    return int(codec.num_filters) * 2 ** len(codec.upsampling_ratios)


def available_bytes() -> int | None:
    """Memory the system can give this process now without swapping (Linux ``MemAvailable``,
    else the free physical pages), or None where neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def memory_budget_bytes(memory_budget_gb: float | None) -> tuple[int | None, str]:
    """The bytes a batch may plan to use, and where the figure came from.

    ``memory_budget_gb`` when given (GB = 10**9 bytes); else :data:`BUDGET_SHARE` of
    :func:`available_bytes`; None (no limit) where that cannot be read.
    """
    if memory_budget_gb is not None:
        return int(memory_budget_gb * 1e9), f"memory_budget_gb={memory_budget_gb:g}"
    available = available_bytes()
    if available is None:
        return None, "no limit: the available memory could not be read"
    return int(available * BUDGET_SHARE), (
        f"{BUDGET_SHARE:.0%} of the {available / 1e9:.1f} GB available when generation began")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation that failed: CUDA's or MPS's out-of-memory error,
    or the CPU allocator's ("DefaultCPUAllocator: can't allocate memory")."""
    import sys

    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom is not None and isinstance(error, oom):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower())
