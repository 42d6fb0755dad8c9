"""MusicGen's stems in batches: one song's, or several songs' sampled in one loop.

A request is one song's stems to generate (``stems``, its ``plan``, its validated
``settings``). Its rows -- the stems in the order of their names, each with its own seed and
prompt -- are laid end to end with the other requests' rows, the requests in the order given;
the rows are cut into batches (``memory.plan_groups``: at most ``max_batch``, sizes as equal as
can be), a batch whose memory estimate is above the budget is halved until it fits, and each
batch runs the sampling loop once (``runs.run_musicstems``; the fallback ``generate`` runs a
batch stem by stem). A batch that runs out of memory is halved and run again. Every stem draws
from its own random stream, so its codes do not depend on the batch it is in; its float
rounding may (docs/backends.md), and each song's report records its ``groups`` (its stems in
each batch) and ``batch_sizes`` (every batch's stems, other songs' included).

Requests are sampled together only where everything that shapes the loop is the same: model,
device, precision, duration, guidance and sampling settings, primer and harmony, the batch
settings, and the primer's length; others go in batches of their own. A stem that alone needs
more memory than the budget is refused before any batch runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import MusicStemsError
from .memory import estimate_batch_bytes, is_out_of_memory, memory_budget_bytes, plan_groups

__all__ = ["Request", "Row", "loop_signature", "make_batches", "run_batches", "budget_for",
           "generate_requests"]


@dataclass(frozen=True)
class Request:
    """One song's stems to generate: the stems, the song's plan, its validated settings."""

    stems: tuple
    plan: Any
    settings: Any


@dataclass(frozen=True)
class Row:
    """One stem in the batches: its request, the stem, its seed and its place in its
    request's conditioning (``Heard``)."""

    request: int
    stem: Any
    seed: int
    place: int


def loop_signature(settings) -> tuple:
    """What must be equal for two songs' stems to share one sampling loop (the batch
    settings too: the loop is planned with one of them)."""
    return (settings.model, settings.device, settings.precision, settings.duration_s,
            settings.guidance_scale, settings.temperature, settings.top_k, settings.top_p,
            settings.primer, settings.harmony, settings.max_batch, settings.memory_budget_gb)


def make_batches(rows: list[Row], max_batch: int | None) -> list[list[Row]]:
    """``rows`` cut into batches of the sizes :func:`~musicstems.backends.memory.plan_groups`
    gives, in order."""
    batches, start = [], 0
    for size in plan_groups(len(rows), max_batch):
        batches.append(rows[start:start + size])
        start += size
    return batches


def _halves(batch: list[Row]) -> tuple[list[Row], list[Row]]:
    middle = (len(batch) + 1) // 2
    return batch[:middle], batch[middle:]


def run_batches(batches: list[list[Row]], run, estimate, budget: tuple[int | None, str], *,
                on_split=None):
    """Run every batch (``run(batch)`` -> one audio array per row, in order), halving one
    whose ``estimate(batch)`` (bytes) is above ``budget`` or that runs out of memory;
    ``on_split()`` is called for each halving (one batch more to run).

    Returns
    -------
    audio : dict of (request, name) -> array
    ran : list of list of Row
        The batches as they ran.
    splits : list of dict
        Each halving: ``stems`` before, ``into`` the two sizes, and the ``reason``.
    estimates : list of int
        Each batch's estimated bytes, as it ran.
    """
    limit, limit_from = budget
    if limit is not None:  # a stem that can never fit is refused before any batch runs
        for batch in batches:
            alone = estimate(batch[:1])
            if alone > limit:
                raise _too_big(batch[0], alone, limit, limit_from)
    todo, audio, ran, splits, estimates = list(batches), {}, [], [], []
    while todo:
        batch = todo.pop(0)
        needed = estimate(batch)
        if limit is not None and needed > limit:
            if len(batch) == 1:
                raise _too_big(batch[0], needed, limit, limit_from)
            splits.append({"stems": len(batch), "into": [len(h) for h in _halves(batch)],
                           "reason": f"estimated {needed / 1e9:.2f} GB, above the budget of "
                                     f"{limit / 1e9:.2f} GB ({limit_from})"})
            todo[:0] = _halves(batch)
            if on_split is not None:
                on_split()
            continue
        try:
            out = run(batch)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            _release_device_memory()
            said = (str(error).splitlines() or [type(error).__name__])[0]
            if len(batch) == 1:
                raise MusicStemsError(
                    f"generating stem {batch[0].stem.name!r} alone ran out of memory "
                    f"({said}). Pass a shorter duration_s, "
                    "precision='int8' on a CPU or 'fp16' on a GPU, or a smaller model.",
                    arguments={"stems": batch[0].stem.name}) from error
            splits.append({"stems": len(batch), "into": [len(h) for h in _halves(batch)],
                           "reason": f"out of memory: {said[:200]}"})
            todo[:0] = _halves(batch)
            if on_split is not None:
                on_split()
            continue
        for row, row_audio in zip(batch, out):
            audio[(row.request, row.stem.name)] = row_audio
        ran.append(batch)
        estimates.append(needed)
    return audio, ran, splits, estimates


def _too_big(row: Row, needed: int, limit: int, limit_from: str) -> MusicStemsError:
    return MusicStemsError(
        f"one stem ({row.stem.name!r}) needs about {needed / 1e9:.2f} GB to generate, above "
        f"the memory budget of {limit / 1e9:.2f} GB ({limit_from}). Pass a shorter "
        "duration_s (a window's KV cache is most of it), precision='int8' or 'bf16', a "
        "larger memory_budget_gb if the machine has the memory, or close what else uses it.",
        arguments={"memory_budget_gb": round(limit / 1e9, 3)})


def _release_device_memory() -> None:
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def budget_for(device: str, memory_budget_gb: float | None) -> tuple[int | None, str]:
    """The budget batches are planned against: on a CPU, ``memory_budget_gb`` or most of the
    available memory; on a GPU ``memory_budget_gb`` only (else a batch that does not fit is
    found by the device's out-of-memory error)."""
    if device == "cpu" or memory_budget_gb is not None:
        return memory_budget_bytes(memory_budget_gb)
    return None, f"no estimate on {device}: a batch that does not fit is halved when it fails"


def generate_requests(requests: list[Request], *, max_batch: int | None = None,
                      callback=None) -> list:
    """Every request's raw stems, the requests that can share a sampling loop
    (:func:`loop_signature`) sampled together.

    Parameters
    ----------
    requests : list of Request
    max_batch : int, optional
        Stems per batch across the requests; None: the first request's
        ``settings.max_batch`` (None there too: no limit but the memory budget).
    callback : callable, optional
        Called after each decoder step (``StepProgress``).

    Returns
    -------
    list of Generated
        One per request, in order (``MusicGenBackend.generate`` describes the report).
    """
    out: list = [None] * len(requests)
    classes: dict[tuple, list[int]] = {}
    for index, request in enumerate(requests):
        classes.setdefault(loop_signature(request.settings), []).append(index)
    for indices in classes.values():
        made = _generate_together([requests[i] for i in indices], max_batch, callback)
        for index, generated in zip(indices, made):
            out[index] = generated
    return out


def _rows(requests, groups, heards) -> tuple[list[list[Row]], dict]:
    """The rows of every request, one list per sampling loop (requests whose primers have
    one length), and each loop's joined conditioning by its first request."""
    from ..stems import stem_seed
    from .heard import join_heard

    loops: dict[int, list[int]] = {}
    for index, heard in enumerate(heards):
        loops.setdefault(heard.primer_samples, []).append(index)
    out, joined = [], {}
    for members in loops.values():
        rows, offset = [], 0
        for index in members:
            rows += [Row(index, stem, stem_seed(requests[index].settings.seed, stem), offset + at)
                     for at, stem in enumerate(groups[index])]
            offset += len(groups[index])
        heard = join_heard([heards[i] for i in members])
        joined.update({index: heard for index in members})
        out.append(rows)
    return out, joined


def _generate_together(requests: list[Request], max_batch: int | None, callback) -> list:
    """:func:`generate_requests` for requests of one loop signature."""
    import time

    from .musicgen import load_model

    first = requests[0].settings
    load_start = time.perf_counter()
    loaded = load_model(first.model, device=first.device, precision=first.precision,
                        quiet=not first.progress)
    # torch is loaded by now; after load_model, which refuses an unreachable model first
    import torch

    from .heard import prepare_heard
    from .melody import is_melody
    from .musicgen import _model_inputs, _seeded, _windows, choose_sampler
    from .progress import StepProgress
    from .runs import run_generate, run_musicstems, timing_report, tokenize
    from .sampling import stem_streams
    from .windows import decoder_steps

    model = loaded.model
    # A request's rows in the order of its stems' names, whatever order they came in: a
    # matrix product's rounding can depend on a row's place in the batch.
    groups = [tuple(sorted(r.stems, key=lambda s: s.name)) for r in requests]
    _, sampling, num_samples, frames = _model_inputs(loaded, groups[0][:1], first)
    heards = [prepare_heard(group, r.plan, r.settings, model, loaded.sample_rate, num_samples)
              for group, r in zip(groups, requests)]
    sampler, sampler_reason = choose_sampler(model)
    # generate draws every row from one global RNG: there, one stem per call
    limit = (max_batch if max_batch is not None else first.max_batch) \
        if sampler == "musicstems" else 1
    loops, joined = _rows(requests, groups, heards)
    batches = [batch for rows in loops for batch in make_batches(rows, limit)]

    def prompts(batch):
        return [requests[r.request].settings.prompts[r.stem.name] for r in batch]

    def laid_out(batch):
        """A batch's tokens, conditioning and windows."""
        inputs = tokenize(loaded, prompts(batch))
        heard = joined[batch[0].request].take([r.place for r in batch])
        return inputs, heard, _windows(loaded, inputs, frames, heard.primer_samples)

    windows = laid_out(batches[0])[2]
    if sampler != "musicstems" and len(windows) > 1:
        raise MusicStemsError(
            f"duration_s={first.duration_s:g} needs {len(windows)} windows of this "
            f"model, and the fallback sampler (transformers generate, used because "
            f"{sampler_reason}) cannot continue a song past one window. Install a torch "
            "and transformers release musicstems was tested with, or pass a duration_s "
            "that fits one window.", arguments={"duration_s": first.duration_s})
    num_codebooks = model.decoder.num_codebooks
    steps = decoder_steps(windows, num_codebooks)
    layer_norm = model.decoder.model.decoder.layer_norm.weight
    kv_bytes = (loaded.prepared.kv_dtype or layer_norm.dtype).itemsize

    def estimate(batch) -> int:
        inputs, heard, batch_windows = laid_out(batch)
        tokens = inputs["input_ids"].shape[1]
        # a melody model's chroma and text sit before the codes in the decoder's positions
        prefix = int(model.config.chroma_length) + tokens if is_melody(model) else 0
        return estimate_batch_bytes(
            model.config, stems=len(batch), guided=sampling.guided,
            positions=prefix + max(w.context + w.new + num_codebooks for w in batch_windows),
            prefill_positions=prefix + max(1 + w.context for w in batch_windows),
            text_tokens=tokens, samples=num_samples + heard.primer_samples,
            kv_bytes=kv_bytes, activation_bytes=layer_norm.dtype.itemsize)["total"]

    progress = StepProgress(len(batches) * steps, show=first.progress and callback is None,
                            callback=callback)
    ran_reports = []

    def run(batch):
        inputs, heard, batch_windows = laid_out(batch)
        seeds = [r.seed for r in batch]
        if sampler == "musicstems":
            audio, ran = run_musicstems(loaded, inputs, sampling, progress, heard,
                                        batch_windows, stem_streams(seeds, loaded.device))
        else:
            audio, ran = run_generate(loaded, prompts(batch), sampling, progress, heard, seeds)
        ran_reports.append(ran)
        # (batch, channels, samples), the primer's frames cut off: the song starts after it
        return list(audio[..., heard.primer_samples:].float().cpu().numpy())

    budget = budget_for(loaded.device, first.memory_budget_gb)
    start = time.perf_counter()
    try:
        with _seeded(first.seed, loaded.device):
            audio, ran, splits, estimates = run_batches(
                batches, run, estimate, budget, on_split=lambda: progress.extend(steps))
    finally:
        progress.close()
    end = time.perf_counter()
    shared = {
        "model": loaded.model_id, "revision": loaded.revision, "device": loaded.device,
        "precision": loaded.precision, "sample_rate": loaded.sample_rate,
        "decoder_steps": steps, "sampler": sampler, "sampler_reason": sampler_reason,
        "random_streams": ("one per stem, seeded with its seed" if sampler == "musicstems"
                           else "generate's global RNG seeded with each stem's seed, one "
                           "stem per call"),
        "windows": [{"start_s": round(w.start / loaded.frame_rate, 6),
                     "context_s": round(w.context / loaded.frame_rate, 6),
                     "new_s": round(w.new / loaded.frame_rate, 6)} for w in windows],
        **ran_reports[-1], **timing_report(load_start, start, end, progress),
        "threads": torch.get_num_threads(), "recipe": dict(loaded.prepared.recipe),
    }
    memory = {"max_batch": limit, "budget_bytes": budget[0], "budget": budget[1],
              "splits": splits}
    return [_song_generated(index, request, heards[index], ran, estimates, memory, shared,
                            audio, num_samples, loaded.sample_rate)
            for index, request in enumerate(requests)]


def _song_generated(index, request, heard, ran, estimates, memory, shared, audio,
                    num_samples: int, sample_rate: int):
    """Request ``index``'s stems and report out of the batches as they ran."""
    from . import Generated, fit_length

    groups, sizes, own_estimates = [], [], []
    for batch, needed in zip(ran, estimates):
        own = [r.stem.name for r in batch if r.request == index]
        if own:
            groups.append(own)
            sizes.append(len(batch))
            own_estimates.append(needed)
    stems = {s.name: fit_length(audio[(index, s.name)], num_samples) for s in request.stems}
    report = {
        **shared, "batch_size": max(sizes),
        # which stems were sampled in one batch, in their rows' order, and how many stems
        # each batch held (another song's included): a stem's codes come from its own
        # stream, its float rounding from its batch (docs/backends.md)
        "groups": groups, "batch_sizes": sizes,
        "memory": {**memory, "estimated_bytes": own_estimates},
        **heard.report(),
    }
    return Generated(stems=stems, sample_rate=sample_rate, report=report)
