"""The pipeline: spec -> backend -> align -> loudness -> mix -> master -> Composition.

Data moves one way: each stage takes arrays and settings and returns arrays and a report, and
every report ends up in the manifest.
"""

from __future__ import annotations

import os
import platform
from dataclasses import replace
from datetime import datetime, timezone
from importlib import metadata
from typing import Callable, Mapping, Sequence

from .analysis import analyze
from .checks import guard_callback
from .fit import measure_fit
from .backends import get_backend
from .composition import Composition
from .errors import MusicStemsError
from .export import SaveTarget
from .plan import make_plan
from .progress import STAGES, Laps, SongProgress
from .spec import DEFAULT_MODEL, SETTINGS, SongSpec, Stem, build_prompts, validate_compose_args
from .stages import align_stage, analyze_mix, level_stage, misfits, mix_stage, stem_entry

__all__ = ["compose", "render", "generate_stems", "generate_many_stems", "plan_stage",
           "finish_stages"]

_VERSIONED = ("numpy", "scipy", "librosa", "pyloudnorm", "pydub", "soundfile", "torch",
              "transformers", "accelerate")


def compose(
    stems: Mapping[str, str] | Sequence[Stem],
    *,
    style: str | None = None,
    bpm: float | None = None,
    key: str | None = None,
    duration_s: float = 10.0,
    seed: int | None = None,
    backend: str = "musicgen",
    model: str = DEFAULT_MODEL,
    device: str = "auto",
    precision: str = "auto",
    guidance_scale: float = 3.0,
    temperature: float = 1.0,
    top_k: int = 250,
    top_p: float = 0.0,
    stem_lufs: float = -20.0,
    target_lufs: float = -14.0,
    ceiling_dbfs: float = -1.0,
    align: bool = True,
    progress: bool = True,
    primer: str | None = "plan",
    harmony: str | None = "auto",
    max_batch: int | None = None,
    memory_budget_gb: float | None = None,
    cache: bool | None = None,
    cache_dir: str | None = None,
    callback: Callable[[dict], None] | None = None,
    save: str | os.PathLike | SaveTarget | None = None,
) -> Composition:
    """Generate every stem, align them, match their loudness, mix and master the song.

    Parameters
    ----------
    stems : dict of str -> str, or list of Stem
        One prompt per instrument, ``{"drums": "punchy techno drums", ...}``, or
        ``[Stem("drums", "punchy techno drums", gain_db=-2, pan=0.0), ...]`` for mix settings.
        Names become file names: letters, digits, ``-`` and ``_``.
    style : str, optional
        Shared style added to every stem's prompt, e.g. ``"dark berlin techno"``.
    bpm : float in [20, 300], optional
        Shared tempo, written into every prompt and used as the alignment target.
    key : str, optional
        Shared key such as ``"A minor"`` or ``"F#m"``.
    duration_s : float > 0
        Length of the song in seconds; every stem and the mix are exactly
        ``round(duration_s * sample_rate)`` samples. MusicGen generates at most 300 s,
        past its 30 s window window by window (docs/backends.md, "Long songs").
    seed : int in [0, 2**32), optional
        Same inputs and seed give bit-identical audio on the same machine with the same torch
        thread count (``backend.threads`` in the manifest). When omitted one is
        drawn and recorded in the manifest.
    backend : {"musicgen", "sketch"}
        ``"musicgen"`` generates with the model; ``"sketch"`` renders a song offline from a
        musical plan in seconds, with no model download.
    model : str
        Hub id or local folder of a MusicGen model (musicgen backend).
    device : {"auto", "cpu", "cuda", "mps"}
        ``"auto"`` picks CUDA, then MPS, then the CPU.
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}
        Numeric precision of generation; ``"auto"`` picks the fastest that keeps fidelity.
    guidance_scale : float >= 1
        Classifier-free guidance (MusicGen's default 3.0; 1 turns it off).
    temperature, top_k, top_p :
        Sampling settings (defaults 1.0, 250, 0 = off, as MusicGen's).
    stem_lufs : float, LUFS
        Integrated loudness every stem is matched to before its ``gain_db``.
    target_lufs : float, LUFS
        Integrated loudness of the mastered mix (ITU-R BS.1770-4).
    ceiling_dbfs : float, dBFS
        True-peak ceiling of the mastered mix.
    align : bool
        Align tempo, beat grid and key of the stems before mixing.
    progress : bool
        Show a progress bar (terminal or Jupyter). ``False`` prints nothing.
    primer : {"plan", None}
        ``"plan"`` (musicgen backend): each stem continues a count-in of at most 1 s rendered
        from the plan at its tempo and key (the stem's planned first bar), cut off again
        afterwards; ``None``: the text alone. The sketch backend renders the plan itself and
        takes no primer. docs/backends.md.
    harmony : {"auto", "plan", None}
        With a melody model (``model="facebook/musicgen-melody"``), ``"plan"``: each tonal
        stem follows the chroma of its planned part (or of its ``Stem(melody=...)`` file);
        drums never. ``None``: off. ``"auto"``: ``"plan"`` with a melody model, off without
        one; ``"plan"`` without one is an error.
    max_batch : int >= 1, optional
        At most this many stems are sampled in one batch (musicgen backend); None: all of
        them, as far as the memory budget allows. A batch reads the weights once for all its
        stems, so fewer batches are faster; each stem draws from its own random stream
        whatever its batch, and the manifest records the batches (``backend.groups``).
    memory_budget_gb : float > 0, optional
        Memory, in GB, a batch may plan to use (musicgen backend). Before sampling, each
        batch's need is estimated from the model's config (its KV cache is most of it) and a
        batch above the budget is split in halves until it fits; a batch that runs out of
        memory anyway is split and run again (``backend.memory.splits``). None: 80 % of the
        memory available when generation starts, on a CPU; on a GPU only the out-of-memory
        error splits.
    cache : bool, optional
        ``True``: take stems already generated with the very same inputs from the stem cache,
        and store the ones generated, so a song made again with one stem changed generates
        only that stem (docs/guide.md, "Stem cache"). ``False`` neither reads nor writes it.
        ``None``: on, unless the environment variable ``MUSICSTEMS_CACHE`` is ``0``. Each
        stem's manifest entry says whether it came from the cache (``cached``, ``cache_key``).
    cache_dir : str or Path, optional
        The cache's folder (made if missing); default ``$MUSICSTEMS_CACHE_DIR``, else the
        user cache folder (``~/.cache/musicstems`` on Linux). Checked before any work.
    callback : callable, optional
        Called with ``{"stage": "generate", "step": 120, "total": 503, "fraction": 0.23}`` as
        work advances, for every stage (plan, generate, align, fit, loudness, mix, analyze,
        save): a stage starts at ``step`` 0 and ends with ``step == total``; decoder steps
        count inside generate; ``fraction`` is the share of the song done, never decreasing
        (:mod:`musicstems.progress`). If it raises, the song stops with a :class:`~musicstems.errors.CallbackError` that
        names it (its exception chained) and nothing is saved.
    save : path or SaveTarget, optional
        Save the song there once it is made (``Composition.save``; a
        :class:`~musicstems.export.SaveTarget` for the format, ``overwrite`` and ``midi``).
        The folder, format and free disk space are checked before any generation, so a
        folder that would refuse the song costs nothing.

    Returns
    -------
    Composition

    Raises
    ------
    MusicStemsError
        For any bad argument or save target, before any model is loaded.

    Examples
    --------
    >>> from musicstems import compose
    >>> song = compose({"drums": "punchy techno drums", "bass": "deep acid bassline"},
    ...                bpm=128, key="A minor", duration_s=8, seed=7,
    ...                backend="sketch", progress=False)
    >>> song.mix.shape[-1] == 8 * song.sample_rate
    True
    """
    arguments = locals()  # taken first, so it holds the parameters and nothing else
    spec = validate_compose_args(stems, **{s.name: arguments[s.name] for s in SETTINGS})
    return render(spec, callback=callback, save=save)


def render(spec: SongSpec, *, callback: Callable[[dict], None] | None = None,
           save: str | os.PathLike | SaveTarget | None = None) -> Composition:
    """Run the pipeline on a validated :class:`SongSpec` (``compose`` validates, then calls
    this), and save the song when ``save`` is given (checked first, before any work).

    The stems' prompts are built here, once the plan has fixed the song's tempo and key; any
    ``spec.prompts`` given in are replaced by them.
    """
    callback = guard_callback(callback)
    target = SaveTarget.of(save)
    if target is not None:
        target.check(spec.names, duration_s=spec.duration_s)
    stages = STAGES if target is not None else tuple(s for s in STAGES if s != "save")
    timings = Laps(SongProgress(show=spec.progress, callback=callback, stages=stages))
    try:
        song = _render_stages(spec, timings)
        if target is not None:
            timings.begin("save")
            song.save(target.directory, format=target.format, overwrite=target.overwrite,
                      midi=target.midi)
            timings.lap("save")
    finally:
        timings.close()
    return song


def _render_stages(spec: SongSpec, timings: Laps) -> Composition:
    """Every stage of :func:`render` but the save, each reported to ``timings``."""
    spec, plan = plan_stage(spec, timings)
    timings.begin("generate")
    generated = generate_stems(spec.stems, plan, spec, callback=timings.step)
    timings.lap("generate")
    return finish_stages(spec, plan, generated, timings)


def plan_stage(spec: SongSpec, timings: Laps):
    """The plan stage: the song's plan, and ``spec`` with the prompts built from it."""
    timings.begin("plan")
    plan = make_plan(spec)
    # Every stem hears the plan's tempo and key, chosen once for the song, even where the
    # user left them open: separately generated stems then aim at the same grid and key.
    spec = replace(spec, prompts=build_prompts(spec, bpm=plan.bpm, key=plan.key))
    timings.lap("plan")
    return spec, plan


def finish_stages(spec: SongSpec, plan, generated, timings: Laps) -> Composition:
    """Every stage after generation (align, fit, loudness, mix, analyze) on ``generated``,
    each reported to ``timings``: the song as a :class:`Composition`."""
    sample_rate = generated.sample_rate
    timings.begin("align")
    raw, alignment_report = align_stage(generated.stems, sample_rate, plan, spec)
    timings.lap("align")

    timings.begin("fit")
    # measured on the aligned stems, before levels: how the stems agree with the plan
    fit = {"stems": measure_fit(raw, sample_rate, plan)}
    fit["misfits"] = misfits(fit["stems"])
    timings.lap("fit")

    timings.begin("loudness")
    levelled, loudness = level_stage(raw, sample_rate, spec.stems, spec)
    stem_entries = {stem.name: stem_entry(stem, spec, loudness[stem.name], alignment_report,
                                          generated.report) for stem in spec.stems}
    timings.lap("loudness")

    timings.begin("mix")
    mastered, mix_section = mix_stage(levelled, sample_rate,
                                      pans={s.name: s.pan for s in spec.stems}, muted=(),
                                      target_lufs=spec.target_lufs,
                                      ceiling_dbfs=spec.ceiling_dbfs)
    timings.lap("mix")

    timings.begin("analyze")
    for name, audio in levelled.items():
        stem_entries[name]["analysis"] = analyze(audio, sample_rate)
    mix_section["analysis"] = analyze_mix(mastered, sample_rate, mix_section["master"])
    timings.lap("analyze")

    for name, role in plan.roles.items():
        if name in stem_entries:
            stem_entries[name]["role"] = role
    manifest = {
        "musicstems_version": _version("musicstems"),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": spec.seed,
        "settings": spec.settings(),
        "backend": generated.report,
        "sample_rate": sample_rate,
        "num_samples": int(mastered.shape[-1]),
        "duration_s": spec.duration_s,
        "stems": stem_entries,
        "mix": mix_section,
        "alignment": alignment_report,
        "fit": fit,
        "plan": plan.to_dict(),
        "versions": versions(),
        "timings_s": dict(timings.seconds),
    }
    return Composition(mix=mastered, stems=levelled, sample_rate=sample_rate,
                       prompts=dict(spec.prompts), seed=spec.seed, manifest=manifest, plan=plan)


def versions() -> dict[str, str | None]:
    """Python's and the libraries' versions, as the manifest records them."""
    return {"python": platform.python_version(), **{name: _version(name) for name in _VERSIONED}}


def generate_stems(stems: Sequence[Stem], plan, spec: SongSpec, *,
                   callback: Callable[[dict], None] | None = None):
    """The generate stage: raw audio for ``stems`` (all of the song's, or the few an edit
    makes again) from ``spec``'s backend, on the song's ``plan``.

    Returns the backend's :class:`~musicstems.backends.Generated`: each stem float32
    (channels, samples) and the backend's report. A stem that comes out NaN/inf, silent or
    clipped is generated once more on a derived seed (:class:`~musicstems.quality.CheckedBackend`;
    the report's ``retry``). With ``spec.cache`` the stems already in
    the stem cache come from there and only the others are generated, in one call to the
    backend (:func:`musicstems.cache.stage.generate_with_cache`; its report says which).
    """
    from .cache.stage import generate_with_cache
    from .quality import CheckedBackend

    # checked inside the cache: a NaN, silent or clipped stem is retried before it is stored
    return generate_with_cache(CheckedBackend(get_backend(spec.backend)), tuple(stems), plan,
                               spec, callback=callback)


def generate_many_stems(requests, *, max_batch: int | None = None) -> list:
    """The generate stage for several songs (``backends.batches.Request``, prompts built):
    their stems through the cache and the checks as :func:`generate_stems`, the ones to
    generate sampled together, at most ``max_batch`` stems per batch across the songs."""
    from .cache.stage import generate_many_with_cache
    from .quality import CheckedBackend

    backends = {r.settings.backend for r in requests}
    if len(backends) > 1:  # compose_many groups its songs by backend first
        raise MusicStemsError(f"songs of backends {sorted(backends)} cannot be generated in "
                              "one call; generate each backend's songs on their own.")
    return generate_many_with_cache(CheckedBackend(get_backend(backends.pop())), requests,
                                    max_batch=max_batch)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
