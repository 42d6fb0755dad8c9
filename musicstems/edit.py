"""The edit loop: regenerate one stem, remix levels, pans and mutes, and the record of both.

Both take a finished :class:`~musicstems.composition.Composition` (fresh, or loaded with
``Composition.load``) and return a new one; the song they are given is not changed. What they
read of it is its stems, its plan and its manifest only, so a loaded song edits exactly as the
fresh one did.

* :func:`regenerate` generates one stem again (``pipeline.generate_stems``), on the song's
  plan; aligns it to the song's grid stem, tempo and key; levels it with the song's
  ``stem_lufs``; and mixes and masters the song again. The other stems are not touched.
* :func:`remix` changes ``gain_db``, ``pan`` and which stems are muted, and mixes and masters
  again: no generation, no alignment. A muted stem stays a stem of the song (its audio, its
  file, its entry in the manifest, ``muted: true``); it is silent in the mix only.

Every edit is appended to the manifest's ``edits`` with its arguments (a drawn seed as the
number drawn) and the per-stem settings after it; the first edit also records ``composed``,
the stems as the song was composed. :func:`musicstems.rerun.compose_from` replays them.
"""

from __future__ import annotations

import copy
import difflib
import os
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .checks import GAIN_DB_RANGE, check_finite, guard_callback
from .errors import MusicStemsError

__all__ = ["regenerate", "remix", "stem_states"]

# What an edit record keeps of every stem: enough to rebuild it.
_STATE_KEYS = ("prompt", "seed", "seed_given", "gain_db", "pan", "muted")


def stem_states(manifest: Mapping[str, Any]) -> dict[str, dict]:
    """Each stem's prompt, seed, gain, pan and mute, as a manifest records them."""
    return {name: {key: entry.get(key, False if key in ("muted", "seed_given") else None)
                   for key in _STATE_KEYS}
            for name, entry in manifest.get("stems", {}).items()}


def _unknown_stem(song, argument: str, name: Any) -> MusicStemsError:
    names = list(song.stems)
    close = difflib.get_close_matches(str(name), names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return MusicStemsError(f"{argument} names {name!r}, which is not a stem of this song; "
                           f"{hint}its stems are {names}.", arguments={argument: name})


def _check_stem(song, name: Any, argument: str = "stem") -> str:
    if not isinstance(name, str) or name not in song.stems:
        raise _unknown_stem(song, argument, name)
    return name


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or \
            not 0 <= int(seed) < 2**32:
        raise MusicStemsError(f"seed={seed!r} is not allowed; pass a whole number from 0 to "
                              "2**32 - 1, or None to draw a new one (it is recorded).",
                              arguments={"seed": seed})
    return int(seed)


def _check_prompt(prompt: Any) -> str | None:
    if prompt is None:
        return None
    if not isinstance(prompt, str) or not prompt.strip():
        raise MusicStemsError(f"prompt={prompt!r} is not a prompt; pass a non-empty text, e.g. "
                              "'deep rolling acid bassline', or None to keep the stem's own.",
                              arguments={"prompt": prompt})
    return " ".join(prompt.split())


def _editable(song) -> None:
    if song.plan is None or not isinstance(song.manifest.get("settings"), dict):
        raise MusicStemsError(
            "this song has no plan or no settings in its manifest (it was saved by an older "
            "musicstems, or its manifest was edited), so it cannot be edited; compose it again.",
            arguments={"song": repr(song)})


def _draw_seed(old: int) -> int:
    while True:  # a new seed: the same one would give the same stem back
        seed = int.from_bytes(os.urandom(4), "little")
        if seed != old:
            return seed


def _record(manifest: dict, before: Mapping[str, Any], edit: dict) -> None:
    """Append ``edit`` (with the stems after it) to the manifest's ``edits``; the first edit
    also keeps ``composed``, the stems as composed, from which re-runs start."""
    if not manifest.get("edits"):
        manifest["composed"] = {"stems": stem_states(before)}
        manifest["edits"] = []
    manifest["edits"].append({**edit, "stems": stem_states(manifest)})


def regenerate(song, stem: str, *, prompt: str | None = None, seed: int | None = None,
               progress: bool = True, callback: Callable[[dict], None] | None = None):
    """``song`` with stem ``stem`` generated again; see ``Composition.regenerate``."""
    from .pipeline import generate_stems
    from .stages import align_stage, analyze_mix, level_stage, misfits, mix_stage, stem_entry
    from .progress import Laps
    from .composition import Composition
    from .fit import measure_fit
    from .analysis import analyze
    from .plan.song import redraw_part
    from .rerun import song_spec
    from .spec import build_prompts

    _editable(song)
    name = _check_stem(song, stem)
    prompt, seed = _check_prompt(prompt), _check_seed(seed)
    progress = bool(progress)
    spec = song_spec(song.manifest, progress=progress)  # settings and model, before any work
    callback = guard_callback(callback)
    laps = Laps()
    old = next(s for s in spec.stems if s.name == name)
    old_seed = int(song.manifest["stems"][name]["seed"])
    drawn = seed is None
    seed = _draw_seed(old_seed) if drawn else seed
    new = replace(old, prompt=prompt or old.prompt, seed=seed)
    spec = replace(spec, stems=tuple(new if s.name == name else s for s in spec.stems))
    plan = song.plan
    spec = replace(spec, prompts=build_prompts(spec, bpm=plan.bpm, key=plan.key))
    if seed != old_seed or new.prompt != old.prompt:  # else its part is the one it had
        plan = redraw_part(plan, spec, name)
    laps.lap("plan")

    # `new` carries its seed (Stem.seed), so it draws from its own stream whatever the song's
    generated = generate_stems((new,), plan, spec, callback=callback)
    sample_rate = generated.sample_rate
    if sample_rate != song.sample_rate:
        raise MusicStemsError(f"the backend made {name!r} at {sample_rate} Hz but the song is at "
                              f"{song.sample_rate} Hz; regenerate with the model the song was "
                              "made with.", arguments={"stem": name})
    laps.lap("generate")
    grid_name = song.manifest.get("alignment", {}).get("reference", plan.reference_stem)
    aligned, alignment = align_stage(generated.stems, sample_rate, plan, spec,
                                     grid=song.stems.get(grid_name) if grid_name else None)
    laps.lap("align")
    fit = measure_fit(aligned, sample_rate, plan)
    levelled, loudness = level_stage(aligned, sample_rate, (new,), spec)
    stems = {key: levelled[key] if key == name else audio for key, audio in song.stems.items()}
    laps.lap("loudness")
    mastered, mix_section = mix_stage(stems, sample_rate, pans=_pans(song), muted=song.muted,
                                      target_lufs=spec.target_lufs,
                                      ceiling_dbfs=spec.ceiling_dbfs)
    mix_section["analysis"] = analyze_mix(mastered, sample_rate, mix_section["master"])
    laps.lap("mix")

    manifest = copy.deepcopy(song.manifest)
    entry = stem_entry(new, spec, loudness[name], alignment, generated.report)
    entry.update(muted=name in song.muted, analysis=analyze(stems[name], sample_rate),
                 role=plan.parts[name].role)
    manifest["stems"][name] = entry
    if spec.align:
        manifest.setdefault("alignment", {}).setdefault("stems", {})[name] = \
            alignment["stems"][name]
    manifest.setdefault("fit", {}).setdefault("stems", {})[name] = fit[name]
    manifest["fit"]["misfits"] = misfits(manifest["fit"]["stems"])
    manifest["mix"] = mix_section
    manifest["plan"] = plan.to_dict()
    _record(manifest, song.manifest, {
        "edit": "regenerate", "stem": name, "prompt": prompt, "seed": seed,
        "seed_drawn": drawn, "backend": generated.report, "timings_s": laps.seconds})
    return Composition(mix=mastered, stems=stems, sample_rate=sample_rate,
                       prompts={**song.prompts, name: spec.prompts[name]}, seed=song.seed,
                       manifest=manifest, plan=plan)


def _pans(song) -> dict[str, float]:
    return {name: float(entry.get("pan", 0.0))
            for name, entry in song.manifest["stems"].items()}


def _check_levels(song, values: Any, argument: str, low: float, high: float, fix: str
                  ) -> dict[str, float]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise MusicStemsError(f"{argument}={values!r} is not a dict; pass stem name -> value, "
                              f"e.g. {argument}={{'drums': -3}}.", arguments={argument: values})
    out = {}
    for name, value in values.items():
        _check_stem(song, name, argument)
        out[name] = check_finite(value, f"{argument}[{name!r}]", low=low, high=high, fix=fix)
    return out


def _check_mute(song, mute: Any) -> list[str] | None:
    if mute is None:
        return None
    if isinstance(mute, str) or not isinstance(mute, (list, tuple, set, frozenset)):
        raise MusicStemsError(f"mute={mute!r} is not a list of stem names; pass e.g. "
                              "mute=['lead'], or mute=[] to unmute every stem.",
                              arguments={"mute": mute})
    names = [_check_stem(song, name, "mute") for name in mute]
    if set(names) == set(song.stems):
        raise MusicStemsError(f"mute={sorted(names)!r} mutes every stem, which leaves nothing "
                              "to mix; keep at least one stem unmuted.", arguments={"mute": mute})
    return [name for name in song.stems if name in names]  # in the song's order


# The analysis entries that are levels: a gain moves each by exactly its dB (spectral shares,
# centroid and dominant frequency do not move).
_LEVELS = ("integrated_lufs", "sample_peak_dbfs", "true_peak_dbtp", "rms_dbfs")


def _scaled_analysis(analysis: Any, change_db: float) -> dict | None:
    """A stem's analysis after a gain of ``change_db``, from its analysis before (None when
    there is none to move)."""
    if not isinstance(analysis, dict) or not all(key in analysis for key in _LEVELS):
        return None
    return {**analysis, **{key: None if analysis[key] is None else
                           round(analysis[key] + change_db, 3) for key in _LEVELS}}


def remix(song, *, gain_db: Mapping[str, float] | None = None,
          pan: Mapping[str, float] | None = None, mute: Sequence[str] | None = None):
    """``song`` mixed and mastered again with new levels, pans and mutes; see
    ``Composition.remix``."""
    from .analysis import analyze
    from .composition import Composition
    from .loudness import _check_lufs, db_to_gain
    from .stages import analyze_mix, mix_stage
    from .progress import Laps

    _editable(song)
    gains = _check_levels(song, gain_db, "gain_db", *GAIN_DB_RANGE,
                          fix="It is a level in dB relative to the stem's matched loudness.")
    pans = _check_levels(song, pan, "pan", -1.0, 1.0,
                         fix="-1 is hard left, 0 centre, 1 hard right.")
    muted = _check_mute(song, mute)
    settings = song.manifest["settings"]
    target_lufs = _check_lufs(settings.get("target_lufs"), "target_lufs", "target_lufs")
    ceiling_dbfs = _check_lufs(settings.get("ceiling_dbfs"), "ceiling_dbfs", "ceiling_dbfs")
    laps = Laps()

    manifest = copy.deepcopy(song.manifest)
    stems = dict(song.stems)
    for name, new_db in gains.items():
        entry = manifest["stems"][name]
        change_db = new_db - float(entry.get("gain_db", 0.0))
        if change_db == 0.0:
            continue
        # from the stem as it is: a gain is linear, so the level is the new one exactly
        # (to float32 rounding); the raw stem is not kept
        stems[name] = (stems[name].astype(np.float64) * db_to_gain(change_db)).astype(np.float32)
        entry["gain_db"] = new_db
        if isinstance(entry.get("loudness"), dict) and \
                entry["loudness"].get("skipped_reason") is None:
            entry["loudness"]["applied_gain_db"] = round(
                entry["loudness"]["applied_gain_db"] + change_db, 3)
        entry["analysis"] = _scaled_analysis(entry.get("analysis"), change_db) or \
            analyze(stems[name], song.sample_rate)
    for name, value in pans.items():
        manifest["stems"][name]["pan"] = value
    muted = song.muted if muted is None else muted
    for name, entry in manifest["stems"].items():
        entry["muted"] = name in muted
    all_pans = {name: float(entry.get("pan", 0.0)) for name, entry in manifest["stems"].items()}
    mastered, mix_section = mix_stage(stems, song.sample_rate, pans=all_pans, muted=muted,
                                      target_lufs=target_lufs, ceiling_dbfs=ceiling_dbfs)
    mix_section["analysis"] = analyze_mix(mastered, song.sample_rate, mix_section["master"])
    laps.lap("mix")
    manifest["mix"] = mix_section
    _record(manifest, song.manifest, {
        "edit": "remix", "gain_db": gains or None, "pan": pans or None,
        "mute": None if mute is None else list(muted), "timings_s": laps.seconds})
    return Composition(mix=mastered, stems=stems, sample_rate=song.sample_rate,
                       prompts=dict(song.prompts), seed=song.seed, manifest=manifest,
                       plan=song.plan)
