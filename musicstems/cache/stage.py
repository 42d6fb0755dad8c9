"""The generate stage with the stem cache: look every stem up, generate the missing ones in one
call to the backend, store them, and return one :class:`~musicstems.backends.Generated`.

The batch a MusicGen stem is sampled in is part of its key (``group``), so the lookup goes in
rounds: every stem with the whole call's batch size, then those still missing with their own
number, until a round finds nothing more. A stem generated alone after an edit is then found
again the next time it would be generated alone, and one of a full batch the next time the
whole song is made.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .key import file_digest, key_fields, model_revision, stem_key

__all__ = ["generate_with_cache", "stem_keys", "split_report", "PER_RUN_FIELDS"]

# Backend report fields that describe one run of the model, not the stems it made: left out of
# a report whose stems all came from the cache (nothing was loaded or run then), and None for a
# cached stem where they are per stem (the sketch's render_s).
PER_RUN_FIELDS = ("load_s", "generate_s", "ms_per_step", "encode_s", "decode_s",
                  "conditioning_render_s", "batch_size", "render_s")


def split_report(report: Mapping[str, Any], names: Sequence[str]
                 ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A backend report as its song-wide fields and each stem's own: a field whose value is a
    dict keyed by exactly the stems generated (``primer``, ``harmony``, ``roles``...) is
    per stem."""
    wanted = set(names)
    song: dict[str, Any] = {}
    per_stem: dict[str, dict[str, Any]] = {name: {} for name in names}
    for field, value in report.items():
        if isinstance(value, Mapping) and value and set(value) == wanted:
            for name in names:
                per_stem[name][field] = value[name]
        else:
            song[field] = value
    return song, per_stem


def _group_sizes(report: Mapping[str, Any], names: Sequence[str]) -> dict[str, int]:
    """Each generated stem's batch: the backend's ``groups`` (lists of stem names) where it
    reports them, else all of ``names`` in one."""
    sizes = dict.fromkeys(names, len(names))
    groups = report.get("groups")
    if isinstance(groups, (list, tuple)):
        for group in groups:
            members = group.get("stems") if isinstance(group, Mapping) else group
            if isinstance(members, (list, tuple)):
                for name in members:
                    if name in sizes:
                        sizes[name] = len(members)
    return sizes


def stem_keys(stems: Sequence, plan, spec, *, group_size: int | None, revision: str | None
              ) -> dict[str, tuple[str, dict]]:
    """Each stem's key and key fields (:func:`~musicstems.cache.key.key_fields`), with its
    melody file's digest where it has one."""
    out = {}
    for stem in stems:
        melody = None if stem.melody is None else file_digest(Path(stem.melody).expanduser())
        fields = key_fields(stem, spec, plan, group_size=group_size, revision=revision,
                            melody_digest=melody)
        out[stem.name] = (stem_key(fields), fields)
    return out


def _disabled(generated, names: Sequence[str]):
    generated.report["cache"] = {"enabled": False, "stems": {
        name: {"cached": False, "cache_key": None} for name in names}}
    return generated


def generate_with_cache(backend, stems: Sequence, plan, spec, *,
                        callback: Callable[[dict], None] | None = None):
    """Raw audio for ``stems``: from the cache where it holds them, else from ``backend``.

    Parameters
    ----------
    backend : Backend
    stems : sequence of Stem
    plan : Plan or None
        The song's plan (made from ``spec`` when None, as the backends do).
    spec : SongSpec
        Validated, prompts built; ``spec.cache`` (:func:`~musicstems.cache.cache_enabled`) and ``spec.cache_dir``
        decide the cache.
    callback : callable, optional
        Handed to the backend: its events are those of the stems generated.

    Returns
    -------
    Generated
        Every stem float32 [shape=(channels, samples)] in ``stems``' order, and the backend
        report: the generation's fields (or, when nothing was generated, the cached stems'
        generation's, without :data:`PER_RUN_FIELDS`), the per-stem fields of every stem, and
        ``cache``: ``enabled``, ``folder``, ``hits``, ``generated``, ``lookup_s``, ``store_s``,
        per stem ``stems`` (``cached``, ``cache_key``: the manifest's stem entries take them)
        and ``groups`` (the batch size in each stem's key; None for the sketch).
    """
    from ..backends import Generated
    from . import cache_enabled, open_cache

    stems = tuple(stems)
    names = [s.name for s in stems]
    if not cache_enabled(spec.cache):
        return _disabled(backend.generate(stems, plan, spec, callback=callback), names)
    if plan is None:
        from ..plan import make_plan
        plan = make_plan(spec)
    start = time.perf_counter()
    store = open_cache(spec.cache_dir)
    musicgen = spec.backend == "musicgen"
    revision, digests = (model_revision(spec.model, store.model_digests()) if musicgen
                         else (None, {}))

    hits: dict[str, Any] = {}
    keys: dict[str, str] = {}
    groups: dict[str, int | None] = {}
    missing = list(stems)
    # a hub model not downloaded yet has no revision: nothing can be cached under it
    while missing and (revision is not None or not musicgen):
        group = len(missing) if musicgen else None
        for stem in missing:
            keys[stem.name] = stem_keys([stem], plan, spec, group_size=group,
                                        revision=revision)[stem.name][0]
            groups[stem.name] = group
            found = store.get(keys[stem.name])
            if found is not None:
                hits[stem.name] = found
        still = [s for s in missing if s.name not in hits]
        if len(still) == len(missing) or not musicgen:
            missing = still
            break
        missing = still
    lookup_s = time.perf_counter() - start

    generated = None
    store_s, store_errors = 0.0, []
    if missing:
        generated = backend.generate(tuple(missing), plan, spec, callback=callback)
        start = time.perf_counter()
        made = [s.name for s in missing]
        song_part, per_stem = split_report(generated.report, made)
        if musicgen and revision is None:  # downloaded by now
            revision, more = model_revision(spec.model, digests)
            digests.update(more)
        sizes = _group_sizes(generated.report, made) if musicgen else dict.fromkeys(made)
        for stem in missing:
            keys[stem.name], field_values = stem_keys(
                [stem], plan, spec, group_size=sizes[stem.name], revision=revision)[stem.name]
            groups[stem.name] = sizes[stem.name]
            if revision is None and musicgen:
                continue
            try:
                store.put(keys[stem.name], generated.stems[stem.name], generated.sample_rate,
                          {"song": song_part, "stem": per_stem[stem.name]}, field_values,
                          evict=False)
            except OSError as exc:  # a full disk loses the cache entry, not the song
                store_errors.append(f"{stem.name}: {exc}")
        store_s = time.perf_counter() - start
    try:
        store.evict(keep=keys.values())  # once per song, past the limit; this song's last
        store.save_model_digests(digests)
    except OSError as exc:
        store_errors.append(f"model digests: {exc}")
    if store_errors:
        from ..errors import MusicStemsWarning

        warnings.warn(f"the stem cache in {store.folder} could not store "
                      f"{'; '.join(store_errors)}; the song is complete, those stems will be "
                      "generated again next time.", MusicStemsWarning, stacklevel=3)

    if generated is not None:
        report = dict(song_part)
        sample_rate = generated.sample_rate
    else:
        first = hits[names[0]]
        report = {k: v for k, v in first.report.get("song", {}).items()
                  if k not in PER_RUN_FIELDS}
        sample_rate = first.sample_rate
    own = {name: ({k: v for k, v in hits[name].report.get("stem", {}).items()
                   if k not in PER_RUN_FIELDS} if name in hits else per_stem[name])
           for name in names}
    for field in dict.fromkeys(f for entry in own.values() for f in entry):
        report[field] = {name: own[name].get(field) for name in names}
    report["cache"] = {
        "enabled": True, "folder": str(store.folder), "hits": [n for n in names if n in hits],
        "generated": [n for n in names if n not in hits],
        "lookup_s": round(lookup_s, 4), "store_s": round(store_s, 4),
        "stems": {name: {"cached": name in hits, "cache_key": keys.get(name)}
                  for name in names},
        "groups": {name: groups.get(name) for name in names},
        **({"store_errors": store_errors} if store_errors else {}),
    }
    audio = {name: hits[name].audio if name in hits else generated.stems[name]
             for name in names}
    return Generated(stems=audio, sample_rate=sample_rate, report=report)
