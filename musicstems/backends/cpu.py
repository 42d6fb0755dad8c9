"""What this CPU and this torch build compute natively: the facts the precision policy reads.

Every answer depends on the machine only, never on its load, so a seed gives the same song on a
machine every time. torch is imported inside the functions, never at module import.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import warnings

__all__ = ["cpu_features", "int8_available", "fast_bf16_attention", "physical_memory_bytes",
           "quiet_ao_deprecation"]


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


@contextlib.contextmanager
def quiet_ao_deprecation():
    """Hide torch's notices that ``torch.ao.quantization`` and its quantized tensors will move
    to torchao (torch 2.10+). They still run, and on a CPU they are faster than torchao's eager
    and compiled int8 (docs/performance.md); :func:`int8_available` turns ``"auto"`` to fp32 on
    a torch that no longer has them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions",
                                category=UserWarning)
        yield


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

        with quiet_ao_deprecation():
            layer = quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(8, 8)),
                                     {torch.nn.Linear}, dtype=torch.qint8)
            return bool(torch.isfinite(layer(torch.ones(2, 8))).all())
    except Exception:  # removed or broken in this torch build
        return False


def fast_bf16_attention(features: dict) -> bool:
    """Whether torch's CPU attention (SDPA) reads a bf16 KV cache faster than an fp32 one.

    Only on CPUs with AMX-BF16 tiles, where SDPA's flash kernel multiplies bf16 blocks on them,
    so half the bytes win. Without AMX -- AVX512-BF16 alone, as on AMD EPYC (Zen 4) -- SDPA
    takes a bf16 path that is slower than its fp32 path over twice the bytes, so the cache is
    kept in fp32 there, whatever the weights' precision (docs/performance.md, "What makes it
    fast", has the measurements; ``python -m benchmarks.experiments attention`` repeats them).
    Read from the CPU, never its load."""
    return bool(features.get("amx_bf16"))


def physical_memory_bytes() -> int | None:
    """The machine's physical memory (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows, exotic platforms
        return None
