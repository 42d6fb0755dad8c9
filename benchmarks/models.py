"""The benchmark models: MusicGen's published architectures with random weights, saved to a folder
so that the benchmark loads them through ``from_pretrained`` exactly as a hub model is loaded.

Random output heads give an almost uniform next-token distribution (6.9 of at most 7.6 nats),
which no trained model has and which would hide any precision drift: every code is about as
likely as every other whatever the rounding. The heads are therefore scaled, once, so that the
guided fp32 distribution has a mean entropy of ``TARGET_ENTROPY`` nats (perplexity ~33: a few
dozen plausible codes per step, a peaked distribution like a trained audio-token model's). The
scale does not change the speed of anything.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["build_model", "TARGET_ENTROPY"]

TARGET_ENTROPY = 3.5


def _entropy(scores, scale: float, valid) -> float:
    import torch

    logp = torch.log_softmax(scores * scale, dim=-1)
    return float(-(logp.exp() * logp).sum(-1)[valid].mean())


def calibrate_heads(model, processor, target: float = TARGET_ENTROPY, *, steps: int = 40
                    ) -> dict:
    """Scale the decoder's output heads so the guided next-token entropy is ``target`` nats.

    The guided scores are linear in the heads' weights, so one teacher-forced pass gives the
    entropy at any scale; the scale is found by bisection on that pass."""
    import torch

    from .fidelity import PROMPTS, guided_scores, sample_codes

    ids, pattern = sample_codes(model, processor, PROMPTS, steps)
    scores = guided_scores(model, processor, PROMPTS, ids, 3.0)
    valid = pattern[:, 1:ids.shape[-1]] == -1
    before = _entropy(scores, 1.0, valid)
    low, high = 0.0, 10.0
    for _ in range(30):
        if _entropy(scores, math.exp(high), valid) > target:
            high += 2
            continue
        mid = (low + high) / 2
        low, high = (mid, high) if _entropy(scores, math.exp(mid), valid) > target else (low, mid)
    scale = math.exp((low + high) / 2)
    with torch.no_grad():
        for head in model.decoder.lm_heads:
            head.weight.mul_(scale)
    return {"head_scale": scale, "entropy_before": before,
            "entropy_after": _entropy(scores, scale, valid)}


def build_model(size: str, folder: str | Path, *, seed: int = 0, log=print) -> Path:
    """Build the ``size`` (``"small"`` or ``"medium"``) architecture with random weights and
    calibrated heads, and save it with its processor to ``folder``. Reuses a folder that a
    previous run completed."""
    import time

    from musicstems.testing import build_random_musicgen

    folder = Path(folder)
    done = folder / "benchmark.json"
    if done.is_file():
        return folder
    start = time.perf_counter()
    model, processor = build_random_musicgen(size=size, seed=seed)
    calibration = calibrate_heads(model, processor)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    params = sum(p.numel() for p in model.parameters())
    info = {"size": size, "seed": seed, "parameters": params, **calibration}
    done.write_text(json.dumps(info, indent=1))
    log(f"  built musicgen-{size} ({params / 1e6:.0f} M parameters, random weights, heads x"
        f"{calibration['head_scale']:.1f} -> entropy {calibration['entropy_after']:.2f} nat) "
        f"in {time.perf_counter() - start:.0f} s")
    return folder
