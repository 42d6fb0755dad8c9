"""How far each precision drifts from fp32, on the real architecture.

Next-token distributions under teacher forcing: one fixed code sequence (sampled once by the fp32
model) is fed, step by step, through the decoder step ``compose`` samples with (its KV cache
included), to the model in every precision; at every position that predicts a real code we
compare the distribution that would be sampled -- classifier-free guidance applied,
``uncond + g * (cond - uncond)`` -- with fp32's:

- ``kl``: mean KL(p_fp32 || p_precision) in nats per token,
- ``top1``: share of positions whose most likely code is the same,
- ``top250``: mean overlap of the 250 most likely codes (MusicGen samples from these: top_k=250).

For scale, ``kl_temp_5pct`` (and 2, 10) is the KL that sampling at temperature 1.05 instead of
1.00 causes at the same positions.

The EnCodec decode of one fixed code sequence (4 codebooks x ``duration_s``) is compared as a
signal-to-noise ratio in dB against the fp32 codec.

Random weights: speed does not depend on them, drift mostly does not either (it comes from the
rounding of every matmul and of the KV cache), but trained weights have outlier activations that
random ones lack, which makes dynamic int8 activation quantization look better here than it may
be. Run this module with a real model folder (``--fidelity-model``) when one is at hand.
"""

from __future__ import annotations

import math
import time

__all__ = ["measure_fidelity", "sample_codes"]

PROMPTS = ("punchy four on the floor techno drums, dark berlin techno, 128 bpm",
           "deep rolling acid bassline, dark berlin techno, 128 bpm")


def sample_codes(model, processor, prompts, steps: int, *, guidance: float = 3.0,
                 seed: int = 0):
    """Sample ``steps`` decoder steps and return the delayed code sequence the decoder saw,
    ``(len(prompts) * codebooks, steps + 1)`` with the start token first, and the delay-pattern
    mask (-1 where a real code is predicted)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Keep(StoppingCriteria):
        ids = None

        def __call__(self, input_ids, scores, **kwargs):
            Keep.ids = input_ids.clone()
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    inputs = processor(text=list(prompts), padding=True, return_tensors="pt")
    with torch.random.fork_rng(), torch.inference_mode():
        torch.manual_seed(seed)
        model.generate(**inputs, do_sample=True, guidance_scale=guidance, top_k=250,
                       max_new_tokens=steps, stopping_criteria=StoppingCriteriaList([Keep()]))
    ids = Keep.ids
    bos = model.generation_config.decoder_start_token_id
    start = torch.full((ids.shape[0], 1), bos, dtype=torch.long)
    _, pattern = model.decoder.build_delay_pattern_mask(start, bos, max_length=ids.shape[-1])
    return model.decoder.apply_delay_pattern_mask(ids, pattern), pattern


def guided_scores(model, processor, prompts, ids, guidance: float, prepared=None):
    """Feed ``ids`` one step at a time through the decoder step ``compose`` samples with
    (``musicstems.backends.decoding.DecoderStep``, with the loaded model's ``prepared``
    decoder where given); return the guided scores
    ``uncond + guidance * (cond - uncond)``, ``(rows, steps, vocab)`` float32, that predict
    ``ids[:, 1:]``."""
    import torch

    from musicstems.backends.decoding import DecoderStep, encode_text

    inputs = processor(text=list(prompts), padding=True, return_tensors="pt")
    num_codebooks = model.config.decoder.num_codebooks
    batch = len(prompts)
    out = []
    with torch.inference_mode():
        states, mask = encode_text(model, inputs["input_ids"], inputs["attention_mask"],
                                   guided=True)
        step = DecoderStep(model, 2 * batch, ids.shape[-1], prepared)
        step.set_encoder(states, mask)
        for t in range(ids.shape[-1] - 1):
            logits = step(ids[:, t].view(batch, num_codebooks).repeat(2, 1))
            cond, uncond = logits.split(ids.shape[0])
            out.append(uncond + guidance * (cond - uncond))
    return torch.stack(out, dim=1)


def _logprobs(loaded, prompts, ids, guidance):
    import torch

    scores = guided_scores(loaded.model, loaded.processor, prompts, ids, guidance,
                           prepared=getattr(loaded, "prepared", None))
    return torch.log_softmax(scores, dim=-1)


def _compare(ref, other, valid) -> dict:
    import torch

    p = ref.exp()
    kl = (p * (ref - other)).sum(-1)[valid]
    top1 = (ref.argmax(-1) == other.argmax(-1))[valid].float()
    k = min(250, ref.shape[-1])
    a = torch.zeros_like(ref, dtype=torch.bool).scatter_(-1, ref.topk(k, dim=-1).indices, True)
    b = torch.zeros_like(ref, dtype=torch.bool).scatter_(-1, other.topk(k, dim=-1).indices, True)
    overlap = (a & b).sum(-1).float()[valid] / k
    return {"kl": float(kl.mean()), "kl_p99": float(kl.quantile(0.99)),
            "top1": float(top1.mean()), "top250": float(overlap.mean())}


def _codec_snr(reference_model, model, frames: int, seed: int = 0) -> float:
    import torch

    from musicstems.backends.decoding import decode_audio

    codebooks = reference_model.decoder.num_codebooks
    size = reference_model.config.audio_encoder.codebook_size
    codes = torch.randint(0, size, (1, 2, codebooks, frames),
                          generator=torch.Generator().manual_seed(seed))
    # The reference is transformers' own fp32 decode; the other side decodes as compose does.
    with torch.inference_mode():
        ref = reference_model.audio_encoder.decode(codes, [None] * 2).audio_values.float()
        out = decode_audio(model, codes)[0].float()
    noise = float(((ref - out) ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(float((ref ** 2).sum()) / noise)


def _load(model_dir: str, precision: str):
    """The model as musicstems runs it in ``precision`` on this CPU; fp16, which musicstems runs
    on GPUs only, is loaded the same way (transformers' dtype) to measure its numerics here."""
    from musicstems.backends.musicgen import load_model

    if precision != "fp16":
        return load_model(model_dir, device="cpu", precision=precision, quiet=True)
    import types

    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float16)
    return types.SimpleNamespace(model=model.eval(),
                                 processor=AutoProcessor.from_pretrained(model_dir))


def measure_fidelity(model_dir: str, precisions=("bf16", "int8"), *, duration_s: float = 3.0,
                     guidance: float = 3.0, seed: int = 0, log=print) -> list[dict]:
    """One row per precision: drift from fp32 on ``model_dir`` (CPU).

    Returns dicts with ``precision``, ``kl``, ``kl_p99``, ``top1``, ``top250``, ``codec_snr_db``,
    ``positions`` and, in the fp32 row, ``entropy`` (mean nats of the guided distribution) and
    ``kl_temp_2pct``, ``kl_temp_5pct``, ``kl_temp_10pct``.
    """
    import torch

    from musicstems.backends.musicgen import load_model, release_models

    release_models()
    ref = load_model(model_dir, device="cpu", precision="fp32", quiet=True)
    steps = round(duration_s * ref.frame_rate) + ref.model.decoder.num_codebooks - 1
    ids, pattern = sample_codes(ref.model, ref.processor, PROMPTS, steps, guidance=guidance,
                                seed=seed)
    valid = pattern[:, 1:ids.shape[-1]] == -1
    start = time.perf_counter()
    ref_lp = _logprobs(ref, PROMPTS, ids, guidance)
    temperature = {f"kl_temp_{round(100 * (t - 1))}pct":
                   _compare(ref_lp, torch.log_softmax(ref_lp / t, dim=-1), valid)["kl"]
                   for t in (1.02, 1.05, 1.10)}
    entropy = float(-(ref_lp.exp() * ref_lp).sum(-1)[valid].mean())
    frames = round(duration_s * ref.frame_rate)
    rows = [{"precision": "fp32", "kl": 0.0, "kl_p99": 0.0, "top1": 1.0, "top250": 1.0,
             "codec_snr_db": math.inf, "positions": int(valid.sum()), "entropy": entropy,
             **temperature, "seconds": time.perf_counter() - start}]
    log(f"  fidelity fp32: entropy {entropy:.2f} nat; KL of a temperature change of 2/5/10 %: "
        + " / ".join(f"{v:.4f}" for v in temperature.values()))
    for precision in precisions:
        start = time.perf_counter()
        other = _load(model_dir, precision)
        lp = _logprobs(other, PROMPTS, ids, guidance)
        row = {"precision": precision, **_compare(ref_lp, lp, valid),
               "codec_snr_db": _codec_snr(ref.model, other.model, frames, seed),
               "positions": int(valid.sum()), "seconds": time.perf_counter() - start}
        rows.append(row)
        log(f"  fidelity {precision}: KL {row['kl']:.4f} (p99 {row['kl_p99']:.4f}), top-1 "
            f"{row['top1']:.3f}, top-250 {row['top250']:.3f}, codec {row['codec_snr_db']:.1f} dB")
        del other
        release_models()
        ref = load_model(model_dir, device="cpu", precision="fp32", quiet=True)
    release_models()
    return rows
