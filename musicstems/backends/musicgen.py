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
from .heard import Heard, prepare_heard
from .prepared import PreparedDecoder, prepare_decoder
from .progress import StepProgress

__all__ = ["MusicGenBackend", "load_model", "release_models", "choose_sampler", "LoadedModel"]


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
    from .hub import check_download, weights_cached

    # Cached weights load without asking the hub, so an offline machine does not wait through
    # the hub client's retries; others are checked before torch loads, and fail in seconds.
    local_only = weights_cached(model_id)
    if not local_only:
        check_download(model_id, announce=not quiet)

    import torch  # noqa: F401  (fail here, clearly, if torch is missing)

    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    key = (model_id, device, precision)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        start = time.perf_counter()
        from transformers import AutoProcessor, AutoTokenizer, MusicgenForConditionalGeneration

        from ..conditioning import is_melody_model

        melody = is_melody_model(model_id)
        if melody:
            from transformers import MusicgenMelodyForConditionalGeneration as model_class
        else:
            model_class = MusicgenForConditionalGeneration
        with _quiet_transformers(quiet):
            try:
                # transformers' own dtype handling: weights are cast as they are read from the
                # memory-mapped checkpoint, so no fp32 copy of a bf16/fp16 model is kept (how
                # transformers 5 always loads; low_cpu_mem_usage asks the same of 4.x); on a GPU
                # they go straight to it (device_map). int8 loads fp32 and quantizes in place.
                model = model_class.from_pretrained(
                    model_id, dtype=torch_dtype(precision), low_cpu_mem_usage=True,
                    device_map=None if device == "cpu" else device,
                    local_files_only=local_only)
                # a melody model's processor needs torchaudio for its chroma; musicstems makes
                # the chroma itself (conditioning.chroma) and needs only the tokenizer
                processor = (AutoTokenizer if melody else AutoProcessor).from_pretrained(
                    model_id, local_files_only=local_only)
            except OSError as exc:  # not cached and no network, or no such repo/folder
                reason = str(exc).strip().rstrip(".")
                raise ModelLoadError(
                    f"model={model_id!r} could not be loaded: {reason}. Download it once with "
                    "network access (it is then cached), pass a local folder, or use "
                    "backend='sketch', which needs no model.",
                    arguments={"model": model_id, "backend": "sketch"},
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


def choose_sampler(model) -> tuple[str, str]:
    """Which sampler runs ``model``, and why, for the manifest.

    musicstems' own loop (``decoding.sample_codes``, for a melody model
    ``melody.sample_melody_codes``: ``generate``'s codes for the seed, without its per-step
    bookkeeping) where the installed torch and transformers are releases it was tested against
    (``versions.TESTED_VERSIONS``) and it can run the model; transformers' ``generate``
    otherwise.

    Returns
    -------
    sampler : {"musicstems", "transformers generate"}
    reason : str
    """
    from . import decoding, melody, versions

    torch_version, transformers_version = versions.installed_versions()
    loop = melody if melody.is_melody(model) else decoding
    reason = (versions.untested_reason(torch_version, transformers_version)
              or loop.unsupported_reason(model))
    if reason is not None:
        return "transformers generate", reason
    return "musicstems", (f"tested with torch {torch_version} and transformers "
                          f"{transformers_version}")


def _model_inputs(loaded: LoadedModel, stems, settings):
    """The prompts' tokens on the model's device, the sampling settings and the stems' length.

    Returns
    -------
    inputs : dict
        The processor's ``input_ids`` and ``attention_mask``, [shape=(stems, tokens)].
    sampling : decoding.SamplingSettings
    num_samples : int
        Every stem's length in samples at ``loaded.sample_rate``.
    """
    from .decoding import SamplingSettings

    prompts = [settings.prompts[s.name] for s in stems]
    num_samples = round(settings.duration_s * loaded.sample_rate)
    # The delay pattern holds back codebook k by k steps, so K - 1 extra steps are needed
    # before the last frame is complete.
    frames = math.ceil(num_samples / loaded.sample_rate * loaded.frame_rate)
    max_new_tokens = frames + loaded.model.decoder.num_codebooks - 1
    inputs = loaded.processor(text=prompts, padding=True, return_tensors="pt")
    inputs = {k: v.to(loaded.device) for k, v in inputs.items()}
    sampling = SamplingSettings(
        max_new_tokens=max_new_tokens, guidance_scale=settings.guidance_scale,
        temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p)
    return inputs, sampling, num_samples


@contextlib.contextmanager
def _seeded(seed: int, device: str):
    """Run the block on torch's global RNG seeded with ``seed``, in inference mode.

    ``fork_rng`` makes the seed this call's alone and leaves the user's RNG state untouched.
    The one place the sampling's random state is set.

    Parameters
    ----------
    seed : int
    device : {"cpu", "cuda", "mps"}
        The model's device: a CUDA device's RNG is forked too.
    """
    import torch

    devices = [torch.cuda.current_device()] if device == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.inference_mode():
        torch.manual_seed(seed)
        yield


def _run_musicstems(loaded: LoadedModel, inputs: dict, sampling, progress: StepProgress,
                    heard: Heard):
    """musicstems' sampling loop, then the codec decode :func:`~.decoding.decode_audio` picks.

    Parameters
    ----------
    loaded : LoadedModel
    inputs : dict
        ``input_ids`` and ``attention_mask`` [shape=(stems, tokens)] (:func:`_model_inputs`).
    sampling : decoding.SamplingSettings
    progress : StepProgress
        Called after each decoder step.
    heard : Heard
        The primers and chromas (:func:`~.heard.prepare_heard`).

    Returns
    -------
    audio : torch.Tensor [shape=(stems, channels, samples)]
        In the codec's dtype.
    ran : dict
        ``codec_decoder`` and ``decoder_layers``, as the decode and the loop report them.
    """
    from .decoding import decode_audio, sample_codes
    from .melody import is_melody, sample_melody_codes
    from .primer import encode_primers

    model = loaded.model
    prefix = None if heard.values is None else encode_primers(model, heard.values)
    if is_melody(model):  # its own loop: a decoder without cross-attention
        codes, step_report = sample_melody_codes(
            model, inputs["input_ids"], inputs.get("attention_mask"), heard.features,
            sampling, prepared=loaded.prepared, on_step=progress, prefix_codes=prefix)
    else:
        codes, step_report = sample_codes(model, inputs["input_ids"],
                                          inputs.get("attention_mask"), sampling,
                                          prepared=loaded.prepared, on_step=progress,
                                          prefix_codes=prefix)
    audio, codec_decoder = decode_audio(loaded.model, codes)
    return audio, {"codec_decoder": codec_decoder, **step_report}


def _run_generate(loaded: LoadedModel, inputs: dict, sampling, progress: StepProgress,
                  heard: Heard):
    """transformers' ``generate``: the fallback where :func:`choose_sampler` says so.

    Parameters
    ----------
    loaded, inputs, sampling, progress, heard
        As for :func:`_run_musicstems`.

    Returns
    -------
    audio : torch.Tensor [shape=(stems, channels, samples)]
    ran : dict
        ``codec_decoder`` and ``decoder_layers``: transformers' own, inside ``generate``.
    """
    from transformers import StoppingCriteriaList

    audio = loaded.model.generate(
        **inputs, **heard.generate_kwargs(loaded.model), do_sample=True,
        guidance_scale=sampling.guidance_scale,
        temperature=sampling.temperature, top_k=sampling.top_k,
        top_p=sampling.top_p if sampling.top_p > 0 else None,
        max_new_tokens=sampling.max_new_tokens,
        stopping_criteria=StoppingCriteriaList([progress.as_stopping_criterion()]))
    return audio, {"codec_decoder": "transformers (inside generate)",
                   "decoder_layers": "transformers"}


def _timing_report(load_start: float, start: float, end: float, progress: StepProgress
                   ) -> dict:
    """Seconds of the load, the whole generation and its parts, from the step clock.

    Parameters
    ----------
    load_start, start, end : float
        ``time.perf_counter()`` before the load, before sampling and after the decode.
    progress : StepProgress
        Its clock of the first and the last decoder step.

    Returns
    -------
    dict
        ``load_s``, ``generate_s``, ``ms_per_step``, ``encode_s``, ``decode_s``.
    """
    steps = progress.total
    return {
        # load_s is ~0 when the model came from the cache
        "load_s": round(start - load_start, 3), "generate_s": round(end - start, 3),
        # the decoder loop alone: between the first and the last step
        "ms_per_step": round(1000 * (progress.last_s - progress.first_s)
                             / max(steps - 1, 1), 2),
        # text encoder + first step, and the batched EnCodec decode of all stems
        "encode_s": round(progress.first_s - start, 3),
        "decode_s": round(end - progress.last_s, 3),
    }


class MusicGenBackend:
    """All stems of a song in one batched sampling loop, decoded in one batched codec call."""

    name = "musicgen"

    def generate(self, stems, plan, settings, *, callback: ProgressCallback | None = None
                 ) -> Generated:
        """Every stem's raw audio from its prompt, all stems in one batch.

        Parameters
        ----------
        stems : tuple of Stem
            The song's stems, in order; ``settings.prompts[stem.name]`` is each one's prompt
            as sent.
        plan : Plan or None
            The song's shared plan: the prompts say its tempo and key, the primers and chromas
            are rendered from it (made from ``settings`` when None).
        settings : SongSpec
            The validated song: model, device, precision, duration_s, seed, the sampling
            settings, progress.
        callback : callable, optional
            Called with ``{"stage": "generate", "step": n, "total": steps}`` after each
            decoder step.

        Returns
        -------
        Generated
            Each stem float32 [shape=(channels, round(duration_s * sample_rate))], and the
            report: model, precision and recipe, which sampler ran and why
            (:func:`choose_sampler`), which codec decode and layer runner ran, and timings.
        """
        load_start = time.perf_counter()
        loaded = load_model(settings.model, device=settings.device,
                            precision=settings.precision, quiet=not settings.progress)
        import torch  # loaded by now; after load_model, which refuses an unreachable model first

        inputs, sampling, num_samples = _model_inputs(loaded, stems, settings)
        heard = prepare_heard(stems, plan, settings, loaded.model, loaded.sample_rate,
                              num_samples)
        sampler, sampler_reason = choose_sampler(loaded.model)
        run = _run_musicstems if sampler == "musicstems" else _run_generate
        progress = StepProgress(sampling.max_new_tokens, show=settings.progress,
                                 callback=callback)
        start = time.perf_counter()
        try:
            with _seeded(settings.seed, loaded.device):
                audio, ran = run(loaded, inputs, sampling, progress, heard)
        finally:
            progress.close()
        end = time.perf_counter()
        # (batch, channels, samples), the primer's frames cut off: the song starts after it
        audio = audio[..., heard.primer_samples:].float().cpu().numpy()
        out = {s.name: fit_length(audio[i], num_samples) for i, s in enumerate(stems)}
        report = {
            "model": loaded.model_id, "revision": loaded.revision, "device": loaded.device,
            "precision": loaded.precision, "sample_rate": loaded.sample_rate,
            "decoder_steps": sampling.max_new_tokens, "batch_size": len(stems),
            "sampler": sampler, "sampler_reason": sampler_reason, **ran,
            **_timing_report(load_start, start, end, progress),
            "threads": torch.get_num_threads(), "recipe": dict(loaded.prepared.recipe),
            **heard.report(),
        }
        return Generated(stems=out, sample_rate=loaded.sample_rate, report=report)
