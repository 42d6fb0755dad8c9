"""Which device and precision a model runs in: the policy, read from the machine.

The rule of which precision may run on which device is ``spec.check_precision_device`` (checked
at the door, and again here once ``"auto"`` has resolved). torch is imported inside the
functions, never at module import.
"""

from __future__ import annotations

from ..errors import MusicStemsError
from ..spec import PRECISIONS, check_precision_device
from . import cpu

__all__ = ["resolve_device", "resolve_precision", "torch_dtype"]


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


def resolve_precision(precision: str, device: str, *, bf16_supported: bool | None = None,
                      int8_supported: bool | None = None) -> str:
    """The precision to run in on ``device`` (already resolved, not ``"auto"``).

    ``"auto"`` takes the fastest precision whose drift from fp32 stays under the thresholds of
    docs/performance.md ("Fidelity"): mean next-token KL <= 0.01 nat under classifier-free
    guidance (less than sampling at temperature 1.07 instead of 1.00), its 99th percentile
    <= 0.03 nat, top-250 overlap >= 0.95, EnCodec decode >= 30 dB SNR. The speed and drift of
    every choice below, per machine, are in docs/performance.md ("Results", "What each
    precision runs"):

    - CPU with AVX512-VNNI: ``"int8"`` (``int8.quantize_decoder_int8``'s recipe), the
      fastest within the thresholds. torch's stock dynamic int8 (7-bit activations, int8
      output heads) drifts past them and is not used; without VNNI int8 would need those 7
      bits, so such CPUs get:
    - CPU with native bf16 (AVX512-BF16/AMX-BF16) but no VNNI: ``"bf16"``.
    - Other CPUs: ``"fp32"``.
    - CUDA: ``"bf16"`` where the GPU supports it (Ampere and later), else ``"fp16"``.
    - MPS: ``"fp16"``.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}
    device : {"cpu", "cuda", "mps"}
    bf16_supported : bool, optional
        Whether the device computes bf16 natively (asked from torch when omitted).
    int8_supported : bool, optional
        Whether the CPU runs int8 with full 8-bit activations (:func:`cpu.int8_available` and
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
        if not cpu.int8_available():
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
        int8_supported = cpu.int8_available() and cpu.cpu_features()["vnni"]
    if int8_supported:
        return "int8"
    if bf16_supported is None:
        bf16_supported = cpu.cpu_features()["bf16"]
    return "bf16" if bf16_supported else "fp32"


def torch_dtype(precision: str):
    """The floating-point dtype the model is loaded in (int8 quantizes an fp32 model)."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
            "int8": torch.float32}[precision]
