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
from . import Generated, ProgressCallback
from .device import resolve_device, resolve_precision, torch_dtype
from .prepared import PreparedDecoder, prepare_decoder
from .notices import drop_false_musicgen_notices

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
        drop_false_musicgen_notices()
        with _quiet_transformers(quiet):
            try:
                # transformers' own dtype handling: weights are cast as they are read from the
                # memory-mapped checkpoint, so no fp32 copy of a bf16/fp16 model is kept (how
                # transformers 5 always loads; low_cpu_mem_usage asks the same of 4.x); on a GPU
                # they go straight to it (device_map). int8 loads fp32 and quantizes in place.
                model = model_class.from_pretrained(
                    model_id, dtype=torch_dtype(precision), low_cpu_mem_usage=True,
                    device_map=None if device == "cpu" else device,
                    # weights as safetensors only: a pickled checkpoint can run code on load
                    # (and no trust_remote_code: MusicGen is transformers' own code)
                    use_safetensors=True, local_files_only=local_only)
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
        ``input_ids`` and ``attention_mask`` [shape=(stems, tokens)] (``runs.tokenize``).
    sampling : decoding.SamplingSettings
        ``max_new_tokens``: the steps of one window holding the whole song (a long song's
        windows set their own).
    num_samples : int
        Every stem's length in samples at ``loaded.sample_rate``.
    frames : int
        The song's codec frames (the primer's not counted).
    """
    from .decoding import SamplingSettings
    from .runs import tokenize

    num_samples = round(settings.duration_s * loaded.sample_rate)
    frames = math.ceil(num_samples / loaded.sample_rate * loaded.frame_rate)
    # The delay pattern holds back codebook k by k steps, so K - 1 extra steps are needed
    # before the last frame is complete.
    max_new_tokens = frames + loaded.model.decoder.num_codebooks - 1
    inputs = tokenize(loaded, [settings.prompts[s.name] for s in stems])
    sampling = SamplingSettings(
        max_new_tokens=max_new_tokens, guidance_scale=settings.guidance_scale,
        temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p)
    return inputs, sampling, num_samples, frames


def _windows(loaded: LoadedModel, inputs: dict, frames: int, primer_samples: int):
    """The windows that sample the song (``windows.plan_windows``), the whole timeline's
    frames: the primer's, then the song's."""
    from .melody import is_melody
    from .windows import plan_windows, window_frames

    model = loaded.model
    hop = loaded.sample_rate // loaded.frame_rate
    primer_frames = primer_samples // hop
    prefix = 0
    if is_melody(model):  # chroma, then text, before the codes in the decoder's positions
        prefix = int(model.config.chroma_length) + inputs["input_ids"].shape[1]
    return plan_windows(primer_frames + frames, primer_frames, window_frames(model, prefix))


@contextlib.contextmanager
def _seeded(seed: int, device: str):
    """Run the block in inference mode on a fork of torch's RNG, its global stream seeded with
    ``seed``.

    ``fork_rng`` leaves the user's RNG state untouched. musicstems' loop draws from the stems'
    own streams (``sampling.stem_streams``); ``generate`` reseeds this fork per stem.

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


class MusicGenBackend:
    """All stems of a song in batched sampling loops -- each stem from its own random
    stream, window by window past the model's window -- decoded in one batched codec call
    per batch (``batches.py``); several songs' stems in one loop with :meth:`generate_many`."""

    name = "musicgen"
    samples = True  # draws codes at random: a bad take is worth one retake on another seed

    def generate(self, stems, plan, settings, *, callback: ProgressCallback | None = None
                 ) -> Generated:
        """Every stem's raw audio from its prompt, the stems in as few batches as
        ``settings.max_batch`` and the memory budget allow (one, by default).

        Each stem draws from its own stream, seeded with ``stem_seed(settings.seed, stem)``:
        its codes do not depend on the other stems; a song longer than the model's window is
        sampled window by window (``windows.py``). ``generate`` (the fallback) runs stem by
        stem, one window only.

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
            settings, ``max_batch`` and ``memory_budget_gb``, progress.
        callback : callable, optional
            Called with ``{"stage": "generate", "step": n, "total": steps}`` after each
            decoder step.

        Returns
        -------
        Generated
            Each stem float32 [shape=(channels, round(duration_s * sample_rate))], and the
            report: model, precision and recipe, which sampler ran and why
            (:func:`choose_sampler`), the ``groups`` (the stems sampled in one batch, in
            their rows' order) and ``batch_sizes``, ``memory`` (the budget, each batch's
            estimate and any split, ``memory.py``), the ``windows`` (start, context and new
            seconds on the timeline that starts with the primer), which codec decode and
            layer runner ran, and timings.

        Raises
        ------
        MusicStemsError
            A song longer than one window on the fallback sampler; a stem that alone needs
            more memory than the budget.
        """
        from .batches import Request

        return self.generate_many([Request(tuple(stems), plan, settings)],
                                  callback=callback)[0]

    def generate_many(self, requests, *, max_batch: int | None = None,
                      callback: ProgressCallback | None = None) -> list[Generated]:
        """Several songs' stems (``batches.Request``), sampled together where their
        settings allow, at most ``max_batch`` stems per batch
        (:func:`~musicstems.backends.batches.generate_requests`). One :class:`Generated`
        per request, as :meth:`generate` returns it."""
        from .batches import generate_requests

        return generate_requests(list(requests), max_batch=max_batch, callback=callback)
