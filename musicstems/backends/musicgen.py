"""MusicGen through Hugging Face transformers: loading, the model cache, batched generation.

torch and transformers are imported here, on first use, never by ``import musicstems``.
Generation settings are arguments of each call; the cached model is never mutated per call, so
two callers sharing it cannot change each other's results.
"""

from __future__ import annotations

import contextlib
import gc
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelLoadError
from . import Generated, ProgressCallback, fit_length
from .device import resolve_device, resolve_precision, torch_dtype
from .prepared import PreparedDecoder, prepare_decoder

__all__ = ["MusicGenBackend", "load_model", "release_models", "LoadedModel"]


@dataclass
class LoadedModel:
    """A model in its precision's recipe, its processor, and what the recipe prepared."""

    model: Any
    processor: Any
    model_id: str
    device: str
    precision: str
    sample_rate: int
    frame_rate: int
    revision: str | None
    load_s: float
    # what the precision recipe handed over for musicstems' decoder step, and its report
    prepared: PreparedDecoder = field(default_factory=PreparedDecoder)


_CACHE: dict[tuple[str, str, str], LoadedModel] = {}
_CACHE_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_transformers(enabled: bool):
    """Silence transformers' load-time bars and notices when the user asked for no output."""
    if not enabled:
        yield
        return
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_model(model_id: str, *, device: str = "auto", precision: str = "auto",
               quiet: bool = False) -> LoadedModel:
    """Load (or take from the cache) a MusicGen model and its processor.

    Parameters
    ----------
    model_id : str
        A Hugging Face hub id (``"facebook/musicgen-small"``) or a local folder written by
        ``save_pretrained``.
    device : {"auto", "cpu", "cuda", "mps"}
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}
        ``"auto"``: see :func:`~musicstems.backends.device.resolve_precision`; ``"int8"``
        is :func:`~musicstems.backends.int8.quantize_decoder_int8`'s recipe.
    quiet : bool
        Hide transformers' loading bars and notices.

    Returns
    -------
    LoadedModel
        Kept per (model, device, precision) for the life of the process; ``release_models()``
        gives the memory back.
    """
    import torch  # noqa: F401  (fail here, clearly, if torch is missing)

    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    key = (model_id, device, precision)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        start = time.perf_counter()
        from transformers import AutoProcessor, MusicgenForConditionalGeneration

        from .hub import weights_cached

        # Cached weights load without asking the hub, so an offline machine does not wait
        # through the hub client's retries.
        local_only = weights_cached(model_id)
        with _quiet_transformers(quiet):
            try:
                # transformers' own dtype handling: weights are cast as they are read from the
                # memory-mapped checkpoint, so no fp32 copy of a bf16/fp16 model is kept (how
                # transformers 5 always loads; low_cpu_mem_usage asks the same of 4.x); on a GPU
                # they go straight to it (device_map). int8 loads fp32 and quantizes in place.
                model = MusicgenForConditionalGeneration.from_pretrained(
                    model_id, dtype=torch_dtype(precision), low_cpu_mem_usage=True,
                    device_map=None if device == "cpu" else device,
                    local_files_only=local_only)
                processor = AutoProcessor.from_pretrained(model_id, local_files_only=local_only)
            except OSError as exc:  # not cached and no network, or no such repo/folder
                reason = str(exc).strip().rstrip(".")
                raise ModelLoadError(
                    f"model={model_id!r} could not be loaded: {reason}. Download it once with "
                    "network access (it is then cached), pass a local folder, or use "
                    "backend='sketch', which needs no model."
                ) from exc
        model.eval()
        prepared = prepare_decoder(model, precision, device)
        codec = model.config.audio_encoder
        loaded = LoadedModel(
            model=model, processor=processor, model_id=model_id, device=device,
            precision=precision, sample_rate=int(codec.sampling_rate),
            frame_rate=int(codec.frame_rate),
            revision=getattr(model.config, "_commit_hash", None),
            load_s=time.perf_counter() - start, prepared=prepared,
        )
        _CACHE[key] = loaded
        return loaded


def release_models() -> int:
    """Drop every cached model and give its memory back. Returns how many were dropped."""
    with _CACHE_LOCK:
        count = len(_CACHE)
        _CACHE.clear()
    gc.collect()
    try:
        import sys
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover - best effort on exotic builds
        pass
    return count


class _StepProgress:
    """Counts decoder steps: advances a tqdm bar and the user's callback, and remembers when the
    first and the last step ended (the loop's speed, for the report)."""

    def __init__(self, total: int, *, show: bool, callback: ProgressCallback | None):
        self.total = total
        self.callback = callback
        self.step = 0
        self.first_s = self.last_s = 0.0  # perf_counter after the first and the last step
        self.bar = None
        if show:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc="musicstems: generating", unit="step",
                            leave=False)

    def __call__(self, step: int | None = None) -> None:
        self.step += 1
        now = time.perf_counter()
        self.first_s = self.first_s or now
        self.last_s = now
        if self.bar is not None:
            self.bar.update(1)
        if self.callback is not None:
            self.callback({"stage": "generate", "step": self.step, "total": self.total})

    def as_stopping_criterion(self):
        """The same counter as a stopping criterion that never stops, for ``generate``: the
        one per-step hook of every transformers release (MusicGen's ``generate`` does not
        forward its ``streamer`` to the sampling loop in transformers 5)."""
        import torch
        from transformers import StoppingCriteria

        progress = self

        class Count(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                progress()
                return torch.zeros(input_ids.shape[0], dtype=torch.bool,
                                   device=input_ids.device)

        return Count()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class MusicGenBackend:
    """All stems of a song in one batched sampling loop, decoded in one batched codec call."""

    name = "musicgen"

    def generate(self, stems, plan, settings, *, callback: ProgressCallback | None = None
                 ) -> Generated:
        import torch

        from .decoding import SamplingSettings, decode_audio, sample_codes, unsupported_reason

        load_start = time.perf_counter()
        loaded = load_model(settings.model, device=settings.device,
                            precision=settings.precision, quiet=not settings.progress)
        model = loaded.model
        prompts = [settings.prompts[s.name] for s in stems]
        num_samples = round(settings.duration_s * loaded.sample_rate)
        num_codebooks = model.decoder.num_codebooks
        # The delay pattern holds back codebook k by k steps, so K - 1 extra steps are needed
        # before the last frame is complete.
        frames = math.ceil(num_samples / loaded.sample_rate * loaded.frame_rate)
        max_new_tokens = frames + num_codebooks - 1
        inputs = loaded.processor(text=prompts, padding=True, return_tensors="pt")
        inputs = {k: v.to(loaded.device) for k, v in inputs.items()}
        sampling = SamplingSettings(
            max_new_tokens=max_new_tokens, guidance_scale=settings.guidance_scale,
            temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p)
        # musicstems' own loop: generate's arithmetic without its per-step bookkeeping (same
        # codes for the same seed, decoding.py); generate itself for a model it cannot run.
        fallback = unsupported_reason(model)
        progress = _StepProgress(max_new_tokens, show=settings.progress, callback=callback)
        start = time.perf_counter()
        devices = [torch.cuda.current_device()] if loaded.device == "cuda" else []
        try:
            # fork_rng: the seed is this call's alone; the user's global RNG state is untouched.
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed(settings.seed)
                if fallback is None:
                    codes, ran = sample_codes(model, inputs["input_ids"],
                                              inputs.get("attention_mask"), sampling,
                                              prepared=loaded.prepared, on_step=progress)
                    audio, codec_decoder = decode_audio(model, codes)
                    ran = {"codec_decoder": codec_decoder, **ran}
                else:
                    from transformers import StoppingCriteriaList

                    audio = model.generate(
                        **inputs, do_sample=True, guidance_scale=sampling.guidance_scale,
                        temperature=sampling.temperature, top_k=sampling.top_k,
                        top_p=sampling.top_p if sampling.top_p > 0 else None,
                        max_new_tokens=max_new_tokens,
                        stopping_criteria=StoppingCriteriaList(
                            [progress.as_stopping_criterion()]))
                    ran = {"codec_decoder": "transformers (inside generate)",
                           "decoder_layers": "transformers"}
        finally:
            progress.close()
        end = time.perf_counter()
        generate_s = end - start
        audio = audio.float().cpu().numpy()  # (batch, channels, samples)
        out = {s.name: fit_length(audio[i], num_samples) for i, s in enumerate(stems)}
        report = {
            "model": loaded.model_id, "revision": loaded.revision, "device": loaded.device,
            "precision": loaded.precision, "sample_rate": loaded.sample_rate,
            "decoder_steps": max_new_tokens, "batch_size": len(stems),
            "sampler": "musicstems" if fallback is None else f"transformers generate ({fallback})",
            **ran,  # which codec decode and layer runner ran, as the code that ran them says
            # load_s is ~0 when the model came from the cache
            "load_s": round(start - load_start, 3), "generate_s": round(generate_s, 3),
            # the decoder loop alone: between the first and the last step
            "ms_per_step": round(1000 * (progress.last_s - progress.first_s)
                                 / max(max_new_tokens - 1, 1), 2),
            # text encoder + first step, and the batched EnCodec decode of all stems
            "encode_s": round(progress.first_s - start, 3),
            "decode_s": round(end - progress.last_s, 3),
            "threads": torch.get_num_threads(), "recipe": dict(loaded.prepared.recipe),
        }
        return Generated(stems=out, sample_rate=loaded.sample_rate, report=report)
