"""The pipeline: spec -> backend -> align -> loudness -> mix -> master -> Composition.

Data moves one way: each stage takes arrays and settings and returns arrays and a report, and
every report ends up in the manifest.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import replace
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .analysis import analyze
from .checks import guard_callback
from .fit import measure_fit
from .backends import get_backend
from .composition import Composition
from .export import SaveTarget
from .loudness import master, normalize_loudness
from .mix import mix_stems
from .plan import make_plan
from .spec import DEFAULT_MODEL, SETTINGS, SongSpec, Stem, build_prompts, validate_compose_args
from .stems import stem_seed

__all__ = ["compose", "render", "generate_stems"]

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
    callback : callable, optional
        Called with a dict ``{"stage": ..., "step": ..., "total": ...}`` as work advances.
        If it raises, the song stops with a :class:`~musicstems.errors.CallbackError` that
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


def _notify(callback, stage: str, **extra: Any) -> None:
    if callback is not None:
        callback({"stage": stage, **extra})


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
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = round(now - clock, 4)
        clock = now

    plan = make_plan(spec)
    # Every stem hears the plan's tempo and key, chosen once for the song, even where the
    # user left them open: separately generated stems then aim at the same grid and key.
    spec = replace(spec, prompts=build_prompts(spec, bpm=plan.bpm, key=plan.key))
    lap("plan")
    _notify(callback, "generate", step=0, total=None)
    generated = generate_stems(spec.stems, plan, spec, callback=callback)
    sample_rate = generated.sample_rate
    raw = generated.stems
    lap("generate")

    alignment_report: dict[str, Any] = {"enabled": spec.align}
    if spec.align:
        _notify(callback, "align")
        from .align import align_stems

        aligned = align_stems(raw, sample_rate, bpm=plan.bpm, key=plan.key,
                              reference=plan.reference_stem,
                              chords=[chord.pitch_classes for chord in plan.chords],
                              bar_s=plan.bar_s)
        raw = aligned.stems
        alignment_report.update(bpm=aligned.bpm, key=aligned.key, stems=aligned.report)
    lap("align")

    _notify(callback, "fit")
    # measured on the aligned stems, before levels: how the stems agree with the plan
    fit = {"stems": measure_fit(raw, sample_rate, plan)}
    fit["misfits"] = [name for name, entry in fit["stems"].items() if not entry["fits"]]
    lap("fit")

    _notify(callback, "loudness")
    levelled: dict[str, np.ndarray] = {}
    stem_entries: dict[str, dict] = {}
    for stem in spec.stems:
        levelled[stem.name], loudness = normalize_loudness(
            raw[stem.name], sample_rate, target_lufs=spec.stem_lufs, gain_db=stem.gain_db)
        stem_entries[stem.name] = {
            "prompt": stem.prompt, "prompt_sent": spec.prompts[stem.name],
            "seed": stem_seed(spec.seed, stem), "seed_given": stem.seed is not None,
            "gain_db": stem.gain_db, "pan": stem.pan, "loudness": loudness,
            "alignment": alignment_report.get("stems", {}).get(stem.name),
            # what the model heard besides the text (None: nothing)
            "primer": generated.report.get("primer", {}).get(stem.name),
            "harmony": generated.report.get("harmony", {}).get(stem.name),
        }
    lap("loudness")

    _notify(callback, "mix")
    mixed, mix_report = mix_stems(levelled, sample_rate, pans={s.name: s.pan for s in spec.stems})
    mastered, master_report = master(mixed, sample_rate, target_lufs=spec.target_lufs,
                                     ceiling_dbfs=spec.ceiling_dbfs)
    lap("mix")

    _notify(callback, "analyze")
    for name, audio in levelled.items():
        stem_entries[name]["analysis"] = analyze(audio, sample_rate)
    # master measured its output's loudness and true peak already
    mix_analysis = analyze(mastered, sample_rate, measured={
        "integrated_lufs": master_report["output_lufs"],
        "true_peak_dbtp": master_report["true_peak_dbtp"]})
    lap("analyze")

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
        "mix": {"mix": mix_report, "master": master_report, "analysis": mix_analysis},
        "alignment": alignment_report,
        "fit": fit,
        "plan": plan.to_dict(),
        "versions": {"python": platform.python_version(),
                     **{name: _version(name) for name in _VERSIONED}},
        "timings_s": timings,
    }
    song = Composition(mix=mastered, stems=levelled, sample_rate=sample_rate,
                       prompts=dict(spec.prompts), seed=spec.seed, manifest=manifest, plan=plan)
    if target is not None:
        song.save(target.directory, format=target.format, overwrite=target.overwrite,
                  midi=target.midi)
    return song


def generate_stems(stems: Sequence[Stem], plan, spec: SongSpec, *,
                   callback: Callable[[dict], None] | None = None):
    """The generate stage: raw audio for ``stems`` (all of the song's, or the few an edit
    makes again) from ``spec``'s backend, on the song's ``plan``.

    Returns the backend's :class:`~musicstems.backends.Generated`: each stem float32
    (channels, samples) and the backend's report.
    """
    return get_backend(spec.backend).generate(tuple(stems), plan, spec, callback=callback)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
