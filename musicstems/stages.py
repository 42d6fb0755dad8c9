"""The stages after generation, one function each: align, level (loudness), the manifest's stem
entry, mix and master, the mix's analysis. ``pipeline.finish_stages`` runs them on a new song;
``edit.py`` on the stems an edit made again. Each takes arrays and settings and returns arrays
and a report.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .analysis import analyze
from .loudness import master, normalize_loudness
from .mix import mix_stems
from .spec import SongSpec, Stem
from .stems import stem_seed

__all__ = ["align_stage", "misfits", "level_stage", "stem_entry", "mix_stage", "analyze_mix"]


# The name the song's grid stem goes by when an edit aligns new stems against it (it cannot
# be a stem's own name: those start with a letter or digit).
_GRID = "_grid"


def align_stage(raw: Mapping[str, np.ndarray], sample_rate: int, plan, spec: SongSpec, *,
                grid: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The align stage: ``raw`` stems on the plan's tempo, beat grid and key.

    Parameters
    ----------
    raw : dict of str -> np.ndarray [shape=(channels, samples)], float32
        All of the song's stems, or the few an edit made again.
    sample_rate : int, Hz
    plan : Plan
    spec : SongSpec
        ``spec.align`` False returns ``raw`` as it is.
    grid : np.ndarray [shape=(channels, samples)], optional
        The song's grid stem as it is in the song (already aligned): ``raw`` is then placed on
        its beat grid, as in the full song, and it is not returned.

    Returns
    -------
    stems : dict of str -> np.ndarray [shape=(channels, samples)], float32
    report : dict
        ``enabled``, ``bpm``, ``key``, per-stem ``stems`` and ``reference`` (the grid stem).
    """
    report: dict[str, Any] = {"enabled": spec.align}
    if not spec.align:
        return dict(raw), report
    from .align import align_stems

    from .align.inputs import silent

    # a stem that is silent (a sketch part that rests throughout) has nothing to align: it
    # goes through as it is
    quiet = [name for name, audio in raw.items() if silent(audio)]
    stems = {name: audio for name, audio in raw.items() if name not in quiet}
    if not stems:
        return dict(raw), {**report, "stems": dict.fromkeys(raw, {"skipped": "silent"})}
    reference = plan.reference_stem if plan.reference_stem in stems else None
    if grid is not None:
        stems, reference = {_GRID: grid, **stems}, _GRID
    aligned = align_stems(stems, sample_rate, bpm=plan.bpm, key=plan.key, reference=reference,
                          chords=[chord.pitch_classes for chord in plan.chords],
                          bar_s=plan.bar_s)
    report.update(bpm=aligned.bpm, key=aligned.key,
                  stems={name: {"skipped": "silent"} if name in quiet else aligned.report[name]
                         for name in raw},
                  reference=None if aligned.reference == _GRID else aligned.reference)
    return {name: raw[name] if name in quiet else aligned.stems[name] for name in raw}, report


def misfits(fit_stems: Mapping[str, dict]) -> list[str]:
    """The stems whose fit to the plan failed, in order."""
    return [name for name, entry in fit_stems.items() if not entry["fits"]]


def level_stage(aligned: Mapping[str, np.ndarray], sample_rate: int, stems: Sequence[Stem],
                spec: SongSpec) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """The loudness stage: each of ``stems`` matched to ``spec.stem_lufs``, then its
    ``gain_db``. Returns the levelled stems and each one's loudness report."""
    levelled, reports = {}, {}
    for stem in stems:
        levelled[stem.name], reports[stem.name] = normalize_loudness(
            aligned[stem.name], sample_rate, target_lufs=spec.stem_lufs, gain_db=stem.gain_db)
    return levelled, reports


def stem_entry(stem: Stem, spec: SongSpec, loudness: dict, alignment: Mapping[str, Any],
               backend_report: Mapping[str, Any]) -> dict[str, Any]:
    """A stem's entry in the manifest (its analysis and role are added once measured)."""
    return {
        "prompt": stem.prompt, "prompt_sent": spec.prompts[stem.name],
        "seed": stem_seed(spec.seed, stem), "seed_given": stem.seed is not None,
        "gain_db": stem.gain_db, "pan": stem.pan, "muted": False, "loudness": loudness,
        "alignment": alignment.get("stems", {}).get(stem.name),
        # what the model heard besides the text (None: nothing)
        "primer": backend_report.get("primer", {}).get(stem.name),
        "harmony": backend_report.get("harmony", {}).get(stem.name),
        # None, or what was wrong with its first take and the seed of the one kept
        "retry": backend_report.get("retry", {}).get(stem.name),
        # cached, cache_key: whether the stem came from the stem cache, and its entry
        **backend_report.get("cache", {}).get("stems", {}).get(stem.name, {}),
    }


def mix_stage(levelled: Mapping[str, np.ndarray], sample_rate: int, *,
              pans: Mapping[str, float], muted: Sequence[str], target_lufs: float,
              ceiling_dbfs: float) -> tuple[np.ndarray, dict]:
    """The mix stage: the stems not ``muted``, panned and overlaid, then mastered to
    ``target_lufs`` (LUFS) with its true peak under ``ceiling_dbfs`` (dBFS).

    Returns the mastered mix [shape=(2, samples)], float32, and the manifest's ``mix``
    section: ``mix`` and ``master`` reports and ``muted``.
    """
    heard = {name: audio for name, audio in levelled.items() if name not in muted}
    mixed, mix_report = mix_stems(heard, sample_rate,
                                  pans={name: pans[name] for name in heard})
    mastered, master_report = master(mixed, sample_rate, target_lufs=target_lufs,
                                     ceiling_dbfs=ceiling_dbfs)
    return mastered, {"mix": mix_report, "master": master_report, "muted": list(muted)}


def analyze_mix(mastered: np.ndarray, sample_rate: int, master_report: Mapping) -> dict:
    """The mix's analysis; master measured its loudness and true peak already."""
    return analyze(mastered, sample_rate, measured={
        "integrated_lufs": master_report["output_lufs"],
        "true_peak_dbtp": master_report["true_peak_dbtp"]})
