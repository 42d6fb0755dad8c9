"""Device and precision: which ones to run in, and turning a loaded model into them.

torch is imported inside the functions, never at module import. The figures quoted below come
from ``python -m benchmarks`` on the musicgen-small architecture; docs/performance.md has the
tables, the machine and how the thresholds were chosen.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import sys
import warnings

from ..errors import MusicStemsError
from ..spec import PRECISIONS, check_precision_device

__all__ = ["resolve_device", "resolve_precision", "torch_dtype", "int8_available",
           "cpu_features", "quantize_decoder_int8", "prepare_bf16_cpu", "pack_linears_onednn",
           "fused_query_key_value", "release_checkpoint_pages", "fast_bf16_attention"]

def resolve_device(device: str) -> str:
    """The device to run on.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "mps"}
        ``"auto"`` picks CUDA, then Apple MPS, then the CPU.

    Returns
    -------
    str
        ``"cpu"``, ``"cuda"`` or ``"mps"``.

    Raises
    ------
    MusicStemsError
        When a GPU is named that torch cannot see.
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise MusicStemsError("device='cuda' but torch sees no CUDA GPU here; use "
                              "device='auto' or 'cpu'.")
    if device == "mps" and not torch.backends.mps.is_available():
        raise MusicStemsError("device='mps' but Apple MPS is not available here; use "
                              "device='auto' or 'cpu'.")
    return device


@functools.lru_cache(maxsize=1)
def int8_available() -> bool:
    """Whether dynamic int8 quantization of Linear layers runs, fast, on this CPU: torch's
    ``quantize_dynamic`` is present (torch has announced its move to torchao), works on a test
    layer, and an x86 int8 kernel library (fbgemm/oneDNN) is built in. Other CPUs (ARM's
    qnnpack) were not measured, so ``"auto"`` does not pick int8 there."""
    import torch

    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    if not set(torch.backends.quantized.supported_engines) & {"x86", "fbgemm", "onednn"}:
        return False
    try:
        from torch.ao.quantization import quantize_dynamic

        with _quiet_ao_deprecation():
            layer = quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(8, 8)),
                                     {torch.nn.Linear}, dtype=torch.qint8)
            return bool(torch.isfinite(layer(torch.ones(2, 8))).all())
    except Exception:  # removed or broken in this torch build
        return False


def resolve_precision(precision: str, device: str, *, bf16_supported: bool | None = None,
                      int8_supported: bool | None = None) -> str:
    """The precision to run in on ``device`` (already resolved, not ``"auto"``).

    ``"auto"`` takes the fastest precision whose drift from fp32 stays under the thresholds of
    docs/performance.md: mean next-token KL <= 0.01 nat under classifier-free guidance (less
    than sampling at temperature 1.07 instead of 1.00), its 99th percentile <= 0.03 nat, top-250
    overlap >= 0.95, EnCodec decode >= 30 dB SNR. Measured on musicgen-small, 4 stems x 10 s,
    on 2-core machines -- ``python -m benchmarks``:

    - CPU with AVX512-VNNI: ``"int8"`` (quantize_decoder_int8's recipe): the fastest. On a Xeon
      with AMX 25.8 s against 34.1 s in bf16 and 88.0 s in fp32 (decoder step 44.6 / 61.5 /
      166.2 ms); KL 0.0056, p99 0.013, top-250 0.977, codec 39.8 dB (musicgen-medium: KL
      0.0076, p99 0.019). On an AMD EPYC (Zen 4, no AMX) 28.2 s against 43.4 s and 109.2 s
      (46.4 / 77.9 / 204.0 ms); KL 0.0050, p99 0.011, top-250 0.978; musicgen-medium
      there 126.6 s against 149.5 s and 504.7 s, KL 0.0075 (bf16 0.0057).
      torch's stock dynamic int8 (7-bit activations, int8 output heads) drifts 0.020 -- as much
      as temperature 1.10 -- and is not used; without VNNI int8 needs those 7 bits, so such
      CPUs get:
    - CPU with native bf16 (AVX512-BF16/AMX-BF16) but no VNNI: ``"bf16"`` (KL 0.0033, p99
      0.0077, top-250 0.982, codec 39.8 dB).
    - Other CPUs: ``"fp32"``.
    - CUDA: ``"bf16"`` where the GPU supports it (Ampere and later), else ``"fp16"`` (KL
      0.0001, codec 57.6 dB; fp16's numerics measured on the CPU).
    - MPS: ``"fp16"``.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}
    device : {"cpu", "cuda", "mps"}
    bf16_supported : bool, optional
        Whether the device computes bf16 natively (asked from torch when omitted).
    int8_supported : bool, optional
        Whether the CPU runs int8 with full 8-bit activations (:func:`int8_available` and
        VNNI; asked from torch when omitted).

    Returns
    -------
    str
        One of ``"fp32"``, ``"bf16"``, ``"fp16"``, ``"int8"``.

    Raises
    ------
    MusicStemsError
        For a precision the device cannot run.
    """
    if precision not in PRECISIONS:
        raise MusicStemsError(f"precision={precision!r} is not known; use one of "
                              f"{', '.join(repr(p) for p in PRECISIONS)}.")
    check_precision_device(precision, device)
    if precision == "int8":
        if not int8_available():
            raise MusicStemsError("precision='int8' needs torch's dynamic quantization with "
                                  "x86 int8 kernels, which this torch/CPU does not have; use "
                                  "'auto', 'fp32' or 'bf16'.")
        return precision
    if precision != "auto":
        return precision
    if device == "cuda":
        if bf16_supported is None:
            import torch
            bf16_supported = torch.cuda.is_bf16_supported()
        return "bf16" if bf16_supported else "fp16"
    if device == "mps":
        return "fp16"
    if int8_supported is None:
        int8_supported = int8_available() and cpu_features()["vnni"]
    if int8_supported:
        return "int8"
    if bf16_supported is None:
        bf16_supported = cpu_features()["bf16"]
    return "bf16" if bf16_supported else "fp32"


def torch_dtype(precision: str):
    """The floating-point dtype the model is loaded in (int8 quantizes an fp32 model)."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
            "int8": torch.float32}[precision]


@contextlib.contextmanager
def _quiet_ao_deprecation():
    """torch 2.10+ warns that ``torch.ao.quantization`` and its quantized tensors will move to
    torchao. They still run, and on a CPU they are faster than torchao's eager and compiled
    int8 (docs/performance.md), so the notices are hidden; ``int8_available`` turns ``"auto"``
    to fp32 on a torch that no longer has them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions",
                                category=UserWarning)
        yield


@functools.lru_cache(maxsize=1)
def cpu_features() -> dict:
    """What the CPU computes natively: ``bf16`` (AVX512-BF16 or AMX-BF16), ``vnni``
    (AVX512-VNNI: int8 dot products accumulated in int32), ``amx_bf16`` and ``amx_int8`` (bf16
    and int8 matrix tiles). False where torch cannot tell."""
    import torch

    get = getattr(getattr(torch, "cpu", None), "get_capabilities", None)
    try:
        caps = get() if callable(get) else {}
    except Exception:  # pragma: no cover - exotic builds
        caps = {}
    return {"bf16": bool(caps.get("avx512_bf16") or caps.get("amx_bf16")),
            "vnni": bool(caps.get("avx512_vnni")), "amx_bf16": bool(caps.get("amx_bf16")),
            "amx_int8": bool(caps.get("amx_int8"))}


def fast_bf16_attention(features: dict) -> bool:
    """Whether torch's CPU attention (SDPA) reads a bf16 KV cache faster than an fp32 one.

    Only on CPUs with AMX-BF16 tiles, where SDPA's flash kernel multiplies bf16 blocks on them:
    on a Xeon with AMX it read a bf16 cache at 14 GB/s against 18 GB/s for fp32, so half the
    bytes win. Without AMX -- AVX512-BF16 alone, as on AMD EPYC (Zen 4) -- SDPA takes a bf16
    path about 3x slower than over an fp32 cache of twice the bytes: musicgen-small's 24 layers
    of 8 rows at 250 cached steps took 61.4 ms in bf16 against 25.7 ms in fp32 there, and the
    whole int8 decoder step 83.6 against 47.8 ms (``python -m benchmarks.experiments
    attention`` and ``step``; docs/performance.md). There the cache is kept in fp32, whatever
    the weights' precision. Read from the CPU, never its load: a seed gives the same song on a
    machine every time."""
    return bool(features.get("amx_bf16"))


#: oneDNN's second int8 copy of the decoder must stay under this share of the machine's memory:
#: musicgen-small's 0.40 GB on machines of 4 GB and more, musicgen-medium's 1.81 GB from 18 GB.
_ONEDNN_MAX_MEMORY_SHARE = 0.1


def physical_memory_bytes() -> int | None:
    """The machine's physical memory (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows, exotic platforms
        return None


def int8_engine(features: dict, int8_bytes: int = 0) -> str:
    """The engine int8 weights of ``int8_bytes`` are packed for: oneDNN on CPUs with AMX-INT8
    tiles where a second copy of them is small against the machine's memory, torch's default
    (fbgemm) elsewhere.

    On AMX, oneDNN's int8 products are faster at a decoder step's 8 rows (musicgen-small: 48.9
    against 51.3 ms per step at 250 cached steps) with the same drift from fp32 (KL 0.0056
    against 0.0055), but its packed weights keep the original int8 tensor beside the blocked
    one: the loaded model holds that many bytes more (docs/performance.md). The choice depends
    only on the machine, never on its load, so a seed gives the same song on it every time."""
    import torch

    engines = torch.backends.quantized.supported_engines
    memory = physical_memory_bytes()
    if (features.get("amx_int8") and "onednn" in engines and memory is not None
            and int8_bytes <= _ONEDNN_MAX_MEMORY_SHARE * memory):
        return "onednn"
    return "fbgemm" if "fbgemm" in engines else torch.backends.quantized.engine


@contextlib.contextmanager
def _packing_engine(name: str):
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
def _full_range_linear():
    """torch's dynamic int8 Linear, with activations quantized to all 8 bits.

    torch quantizes activations to 7 bits (``reduce_range=True``) because CPUs without VNNI
    multiply int8 pairs into int16 and could saturate. With AVX512-VNNI the products accumulate
    in int32 and the 8th bit is free: it cut the drift from fp32 by 3x (mean next-token KL
    0.020 -> 0.0064 on musicgen-small) at the same speed."""
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    class FullRangeDynamicLinear(DynamicLinear):
        def forward(self, x):
            return torch.ops.quantized.linear_dynamic(
                x, self._packed_params._packed_params, reduce_range=False).to(x.dtype)

    return FullRangeDynamicLinear


# Rows a song's decoder step multiplies at once (4 stems x guidance): the shape oneDNN packs
# weights for. Any other row count gives the same results, only through a less tuned kernel.
_PACKING_ROWS = 8


@functools.lru_cache(maxsize=None)
def _onednn_packing_works(dtype) -> bool:
    """Whether this torch can pack a Linear's weight for oneDNN in ``dtype`` and multiply
    with it (torch's private ``mkldnn`` ops, which torch.compile's CPU backend uses; absent or
    broken on some builds) -- and, for bf16, whether the CPU computes bf16 natively."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    if dtype == torch.bfloat16 and not cpu_features()["bf16"]:
        return False
    try:
        weight = torch.linspace(-1, 1, 64 * 32).reshape(64, 32).to(dtype)
        x = torch.linspace(1, -1, 3 * 32).reshape(3, 32).to(dtype)
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, _PACKING_ROWS)
        out = torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
        ref = torch.nn.functional.linear(x, weight)
        return bool(torch.allclose(out.float(), ref.float(), rtol=1e-2, atol=1e-2))
    except Exception:  # ops missing in this build
        return False


@functools.lru_cache(maxsize=1)
def _onednn_linear():
    """A Linear whose weight is packed once in oneDNN's blocked layout.

    ``torch.nn.functional.linear`` on a CPU re-lays the weight out for oneDNN's kernel on every
    call: for a decoder step's few rows that copy costs about a third of the product. One
    decoder step's Linear layers of musicgen-small at 8 rows: 45.6 ms in bf16 through
    ``F.linear``, 34.6 ms packed; fp32 110.4 against 73.6 ms
    (``python -m benchmarks.experiments linear``). In bf16 the kernel is the one
    ``F.linear`` calls, so a bias-free layer's (all of MusicGen's decoder) results are
    bit-identical; in fp32 ``F.linear`` takes MKL's kernel instead and the packed product
    differs in the last bits."""
    import torch

    class OneDNNLinear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear, rows: int):
            super().__init__()
            self.in_features = linear.in_features
            self.out_features = linear.out_features
            # a plain attribute, not a buffer: an opaque oneDNN tensor has no storage to move
            # or save, and this module lives on the CPU only
            self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), rows)
            self.bias = None if linear.bias is None else linear.bias.detach().clone()

        def forward(self, x):
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [],
                                                      "")

        def extra_repr(self) -> str:
            return (f"in_features={self.in_features}, out_features={self.out_features}, "
                    f"bias={self.bias is not None}, packed for oneDNN")

        def _save_to_state_dict(self, destination, prefix, keep_vars):
            # the packed weight has no storage to save: a checkpoint without it would load
            # as random weights, so refuse loudly instead
            raise MusicStemsError(
                f"{prefix.rstrip('.') or 'this layer'} holds a weight packed for oneDNN by "
                "musicstems' bf16/int8 CPU recipe, which cannot be saved; load the model with "
                "precision='fp32' to save it.")

    return OneDNNLinear


def pack_linears_onednn(module) -> int:
    """Replace, in place, every ``torch.nn.Linear`` inside ``module`` (a CPU model part in fp32
    or bf16) by one whose weight is packed for oneDNN (:func:`_onednn_linear`), one layer at a
    time, handing each source weight's checkpoint pages back. A no-op where this torch cannot
    pack (then returns 0).

    Returns
    -------
    int
        How many layers were packed.
    """
    import torch

    places = [(parent, name) for parent in module.modules()
              for name, child in parent.named_children() if type(child) is torch.nn.Linear]
    if not places:
        return 0
    weight = getattr(*places[0]).weight
    if weight.dtype not in (torch.float32, torch.bfloat16) or weight.device.type != "cpu":
        return 0
    if not _onednn_packing_works(weight.dtype):
        return 0
    del weight
    packed_class = _onednn_linear()
    with torch.no_grad():
        for parent, name in places:
            # one layer at a time: its old weight is gone before the next is packed
            child = getattr(parent, name)
            setattr(parent, name, packed_class(child, _PACKING_ROWS))
            release_checkpoint_pages([child.weight])
            del child
    return len(places)


def prepare_bf16_cpu(model) -> dict:
    """The ``"bf16"`` recipe on a CPU, in place, on a model loaded in bf16: the decoder's Linear
    layers and output heads packed for oneDNN (:func:`pack_linears_onednn`; bit-identical
    results; musicgen-small's 4-stem decoder step at 250 cached steps: 69.0 -> 56.5 ms,
    ``python -m benchmarks.experiments step``), and the KV cache in fp32 where torch's bf16
    attention is slow (:func:`fast_bf16_attention`). Returns what was done, for the manifest, in
    :func:`quantize_decoder_int8`'s layout."""
    import torch

    packed = pack_linears_onednn(model.decoder)
    # Attention over an fp32 cache where torch's bf16 attention is slow (no AMX): the keys and
    # values are the bf16 projections, widened exactly; the queries are cast to fp32.
    fast = fast_bf16_attention(cpu_features())
    return {"kv_dtype": None if fast else torch.float32,
            "recipe": {"all": "bf16",
                       "decoder_linear": "packed for oneDNN" if packed else "torch default",
                       "kv_cache": "bf16" if fast else "fp32"}}


def fuse_int8_linears(linears):
    """One packed int8 weight whose product is the concatenation of ``linears``' products
    (torch's dynamic int8 Linear modules, bias-free or not), packed for the current engine.

    A decoder layer's query, key and value projections multiply the same activation: one
    product of 3 x 1024 rows instead of three of 1024 saves two calls' fixed cost (about 20 us
    each through oneDNN) and reads the weights at the bandwidth of a larger product --
    musicgen-small, 24 layers at 8 rows: 4.5 -> 2.8 ms per step. The weights are quantized per
    output channel and the activation once per call either way, so the numbers are the three
    products' exactly (tested)."""
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
def _fused_slice_linear():
    """One of a layer's query, key and value projections, once their int8 weights are packed as
    one product (:func:`_fuse_query_key_value`): its columns of that product."""
    import torch

    class FusedInt8Slice(torch.nn.Module):
        def __init__(self, packed, start: int, out_features: int, in_features: int):
            super().__init__()
            self.packed = packed  # a plain attribute: the product shared with its siblings
            self.start = start
            self.out_features = out_features
            self.in_features = in_features

        def forward(self, x):
            # Only transformers' generate calls q_proj, k_proj and v_proj one by one, and so
            # computes the product three times; musicstems' loop computes it once.
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


# Where _fuse_query_key_value keeps an attention module's fused product
_FUSED_QKV_ATTRIBUTE = "musicstems_qkv_int8"


def fused_query_key_value(attn):
    """``attn``'s query|key|value product packed by the int8 recipe
    (:func:`_fuse_query_key_value`), or None where its projections are separate."""
    return getattr(attn, _FUSED_QKV_ATTRIBUTE, None)


def _fuse_query_key_value(attn) -> None:
    """Pack ``attn``'s int8 query, key and value weights as one product
    (:func:`fuse_int8_linears`), kept on ``attn`` for :func:`fused_query_key_value`, and make
    the three projections its column slices: the same numbers, and no second copy of the
    weights."""
    projections = [attn.q_proj, attn.k_proj, attn.v_proj]
    fused = fuse_int8_linears(projections)
    setattr(attn, _FUSED_QKV_ATTRIBUTE, fused)
    slice_class = _fused_slice_linear()
    start = 0
    for name, linear in zip(("q_proj", "k_proj", "v_proj"), projections):
        setattr(attn, name, slice_class(fused, start, linear.out_features, linear.in_features))
        start += linear.out_features


def quantize_decoder_int8(model, *, full_range: bool | None = None) -> dict:
    """The ``"int8"`` recipe, in place, on a model loaded in fp32 on the CPU.

    - The decoder's Linear layers become int8, one decoder layer at a time: weights per output
      channel, activations quantized per call (``torch.ao.quantization.quantize_dynamic``) --
      to all 8 bits on CPUs with VNNI (``full_range``), else to torch's 7; packed for
      :func:`int8_engine`'s kernels (oneDNN on CPUs with AMX-INT8 and memory to spare, else
      fbgemm). The decoder is read on every step, so it is where a CPU spends its memory
      bandwidth. Each layer's fp32 weights are dropped as soon as its int8 copy exists and their
      checkpoint pages are handed back to the kernel: no fp32 copy of the decoder stays
      resident.
    - With 8-bit activations, each layer's query, key and value weights are packed as one
      product (:func:`fuse_int8_linears`, the same numbers), which
      :class:`~musicstems.backends.decoding.DecoderStep` computes once per layer; the three
      projection modules become its column slices (for transformers' ``generate``).
    - The four output heads stay fp32: their error is amplified 3x by classifier-free guidance
      (they cost 2 % of a step's bytes; drift 0.0064 -> 0.0052). They are packed for oneDNN
      (:func:`pack_linears_onednn`): 2 ms of a 53 ms step.
    - The T5 text encoder (run once per song) stays fp32.
    - On CPUs that compute bf16 natively the EnCodec decoder runs in bf16: twice as fast
      (39.8 dB SNR). The KV cache -- the other half of a step's memory traffic at 10 s and
      more -- is bf16 where torch's attention over bf16 is fast (:func:`fast_bf16_attention`,
      AMX; KL 0.0052 -> 0.0053), else fp32.

    Returns
    -------
    dict
        ``kv_dtype`` (``torch.bfloat16`` or ``None`` for the activations' dtype), and what was
        done, for the manifest.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    features = cpu_features()
    full_range = features["vnni"] if full_range is None else full_range
    mapping = {torch.nn.Linear: _full_range_linear()} if full_range else None
    released = 0
    linears = [m for m in model.decoder.model.decoder.modules() if type(m) is torch.nn.Linear]
    engine = int8_engine(features, sum(m.weight.numel() for m in linears))
    del linears
    with _quiet_ao_deprecation(), _packing_engine(engine):
        for block in model.decoder.model.decoder.layers:
            old = [m.weight for m in block.modules() if type(m) is torch.nn.Linear]
            quantize_dynamic(block, {torch.nn.Linear: per_channel_dynamic_qconfig},
                             dtype=torch.qint8, mapping=mapping, inplace=True)
            released += release_checkpoint_pages(old)
            del old
            if full_range:
                _fuse_query_key_value(block.self_attn)
    heads_packed = pack_linears_onednn(model.decoder.lm_heads)
    # The KV cache in bf16 where torch's attention over it is fast, AMX-BF16 (DecoderStep casts
    # the queries to it); elsewhere fp32 is faster, for all its bytes.
    kv_dtype = torch.bfloat16 if fast_bf16_attention(features) else None
    if features["bf16"]:
        # .data: the fp32 storages themselves (``to`` swaps them out of the same Parameters)
        old = [t.data for t in (*model.audio_encoder.parameters(),
                                *model.audio_encoder.buffers())]
        model.audio_encoder.to(torch.bfloat16)
        released += release_checkpoint_pages(old)
        del old
    return {"kv_dtype": kv_dtype,
            "recipe": {"decoder_linear": "int8 per-channel, dynamic activations "
                                         + ("8-bit, q|k|v as one product" if full_range
                                            else "7-bit")
                                         + f", {engine}",
                       "output_heads": "fp32" + (", packed for oneDNN" if heads_packed
                                                 else ""),
                       "text_encoder": "fp32",
                       "kv_cache": "bf16" if kv_dtype is not None else "fp32",
                       "codec": "bf16" if features["bf16"] else "fp32",
                       "released_checkpoint_mb": round(released / 2 ** 20)}}


def _checkpoint_mappings() -> list[tuple[int, int]]:
    """Address ranges of this process's memory-mapped ``.safetensors`` files (Linux)."""
    ranges = []
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and fields[-1].endswith(".safetensors"):
                low, high = (int(x, 16) for x in fields[0].split("-"))
                ranges.append((low, high))
    return ranges


def release_checkpoint_pages(tensors) -> int:
    """Give back to the kernel the pages of a memory-mapped checkpoint that only ``tensors``
    used, once they are no longer needed.

    transformers reads ``.safetensors`` through ``mmap``: a weight that is converted (quantized,
    cast) leaves its source pages resident -- and counted in the process's RSS -- until every
    tensor of the file is gone. ``madvise(MADV_DONTNEED)`` drops them now. Only whole pages
    inside a tensor and inside a file mapping are touched: dropping a clean file page is always
    safe (it would be read back from the file if anything touched it again). A no-op off Linux
    or when the tensors do not live in a mapped checkpoint.

    Returns
    -------
    int
        Bytes released.
    """
    if not sys.platform.startswith("linux"):
        return 0
    import ctypes

    tensors = [t for t in tensors if t is not None and t.device.type == "cpu"]
    if not tensors:
        return 0
    try:
        mappings = _checkpoint_mappings()
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return 0
    if not mappings:
        return 0
    page = os.sysconf("SC_PAGE_SIZE")
    madv_dontneed = 4
    released = 0
    for tensor in tensors:
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        low, high = -(-start // page) * page, end // page * page
        if high <= low or not any(a <= low and high <= b for a, b in mappings):
            continue
        if libc.madvise(ctypes.c_void_p(low), ctypes.c_size_t(high - low), madv_dontneed) == 0:
            released += high - low
    return released
