"""The generate stage with the stem cache: look every stem up, generate the missing ones in one
call to the backend, store them, and return one :class:`~musicstems.backends.Generated`.

The batch a MusicGen stem is sampled in is part of its key (``group``), so the lookup goes in
rounds: every stem with the batch size it would be sampled with (``max_batch`` splits a call),
then those still missing with their own number, until a round finds nothing more. A stem generated alone after an edit is then found
again the next time it would be generated alone, and one of a full batch the next time the
whole song is made.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .key import file_digest, key_fields, model_revision, stem_key
from .store import CachedStem, StemCache

__all__ = ["generate_with_cache", "generate_many_with_cache", "generate_requests", "stem_keys",
           "split_report", "PER_RUN_FIELDS"]

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
    for label, value in report.items():
        if isinstance(value, Mapping) and value and set(value) == wanted:
            for name in names:
                per_stem[name][label] = value[name]
        else:
            song[label] = value
    return song, per_stem


def _group_sizes(report: Mapping[str, Any], names: Sequence[str]) -> dict[str, int]:
    """Each generated stem's batch size: the backend's ``groups`` (lists of the song's stem
    names) with their ``batch_sizes`` (stems per batch, other songs' included) where it
    reports them, else all of ``names`` in one."""
    sizes = dict.fromkeys(names, len(names))
    groups = report.get("groups")
    if isinstance(groups, (list, tuple)):
        counts = report.get("batch_sizes")
        if not isinstance(counts, (list, tuple)) or len(counts) != len(groups):
            counts = [None] * len(groups)
        for group, count in zip(groups, counts):
            members = group.get("stems") if isinstance(group, Mapping) else group
            if isinstance(members, (list, tuple)):
                for name in members:
                    if name in sizes:
                        sizes[name] = int(count) if isinstance(count, int) else len(members)
    return sizes


def _planned_sizes(stems: Sequence, max_batch: int | None) -> dict[str, int]:
    """The batch each of ``stems`` would be sampled in, generated together with
    ``max_batch`` (the backend's own split, ``backends.memory.plan_groups``)."""
    from ..backends.memory import plan_groups

    names = sorted(s.name for s in stems)
    sizes, start = {}, 0
    for size in plan_groups(len(names), max_batch):
        sizes.update(dict.fromkeys(names[start:start + size], size))
        start += size
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


@dataclass
class _Lookup:
    """What the lookup found: the entries, every stem's key and batch, the stems missing."""

    hits: dict[str, CachedStem] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    groups: dict[str, int | None] = field(default_factory=dict)
    missing: list = field(default_factory=list)


def _look_up(store: StemCache, stems: Sequence, plan, spec, revision: str | None) -> _Lookup:
    """Every stem at the batch size it would be sampled with (``max_batch`` splits the
    call), then (MusicGen) the ones still missing at theirs, until a round finds nothing more
    (module docstring)."""
    musicgen = spec.backend == "musicgen"
    found = _Lookup(missing=list(stems))
    # a hub model not downloaded yet has no revision: nothing can be cached under it
    while found.missing and (revision is not None or not musicgen):
        planned = _planned_sizes(found.missing, spec.max_batch) if musicgen else {}
        for stem in found.missing:
            group = planned.get(stem.name)
            key = stem_keys([stem], plan, spec, group_size=group, revision=revision)[stem.name][0]
            found.keys[stem.name], found.groups[stem.name] = key, group
            entry = store.get(key)
            if entry is not None:
                found.hits[stem.name] = entry
        still = [s for s in found.missing if s.name not in found.hits]
        done = len(still) == len(found.missing) or not musicgen
        found.missing = still
        if done:
            break
    return found


def _store(store: StemCache, generated, found: _Lookup, plan, spec, revision: str | None,
           digests: dict) -> tuple[dict, dict[str, dict], list[str]]:
    """Store the generated stems under their keys (made again with the batch the backend
    reports, and for a model downloaded just now its commit); the report's song-wide part, each
    stem's part, and what could not be stored."""
    made = [s.name for s in found.missing]
    song_part, per_stem = split_report(generated.report, made)
    musicgen = spec.backend == "musicgen"
    if musicgen and revision is None:
        revision, more = model_revision(spec.model, digests)
        digests.update(more)
    sizes = _group_sizes(generated.report, made) if musicgen else dict.fromkeys(made)
    errors = []
    for stem in found.missing:
        key, values = stem_keys([stem], plan, spec, group_size=sizes[stem.name],
                                revision=revision)[stem.name]
        found.keys[stem.name], found.groups[stem.name] = key, sizes[stem.name]
        if musicgen and revision is None:
            continue
        try:
            store.put(key, generated.stems[stem.name], generated.sample_rate,
                      {"song": song_part, "stem": per_stem[stem.name]}, values, evict=False)
        except OSError as exc:  # a full disk loses the cache entry, not the song
            errors.append(f"{stem.name}: {exc}")
    return song_part, per_stem, errors


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
        Validated, prompts built; ``spec.cache`` (:func:`~musicstems.cache.cache_enabled`)
        and ``spec.cache_dir`` decide the cache.
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
    from ..backends.batches import Request

    return generate_many_with_cache(backend, [Request(tuple(stems), plan, spec)],
                                    callback=callback)[0]


def generate_requests(backend, requests: Sequence, *, max_batch: int | None = None,
                      callback: Callable[[dict], None] | None = None) -> list:
    """``backend``'s audio for every request (``backends.batches.Request``): in one call of
    its ``generate_many`` where it has one (MusicGen: several songs' stems sampled together),
    else song by song."""
    if hasattr(backend, "generate_many"):
        return backend.generate_many(list(requests), max_batch=max_batch, callback=callback)
    return [backend.generate(r.stems, r.plan, r.settings, callback=callback) for r in requests]


@dataclass
class _Song:
    """One request's way through the cache."""

    stems: tuple
    plan: Any
    spec: Any
    store: StemCache | None = None
    revision: str | None = None
    digests: dict = field(default_factory=dict)
    found: _Lookup = field(default_factory=_Lookup)
    lookup_s: float = 0.0


def _open(request) -> _Song:
    """Look a request's stems up (nothing opened when its cache is off)."""
    from . import cache_enabled, open_cache

    song = _Song(tuple(request.stems), request.plan, request.settings)
    spec = song.spec
    if not cache_enabled(spec.cache):
        song.found.missing = list(song.stems)
        return song
    if song.plan is None:
        from ..plan import make_plan
        song.plan = make_plan(spec)
    start = time.perf_counter()
    song.store = open_cache(spec.cache_dir)
    song.revision, song.digests = (model_revision(spec.model, song.store.model_digests())
                                   if spec.backend == "musicgen" else (None, {}))
    song.found = _look_up(song.store, song.stems, song.plan, spec, song.revision)
    song.lookup_s = time.perf_counter() - start
    return song


def generate_many_with_cache(backend, requests: Sequence, *, max_batch: int | None = None,
                             callback: Callable[[dict], None] | None = None) -> list:
    """:func:`generate_with_cache` for several songs (``backends.batches.Request``): each
    looked up in its cache, the stems missing from all of them generated in one call
    (:func:`generate_requests`, at most ``max_batch`` stems per batch across the songs), each
    song's stored. One ``Generated`` per request, as :func:`generate_with_cache` returns."""
    from ..backends.batches import Request

    songs = [_open(request) for request in requests]
    wanted = [i for i, song in enumerate(songs) if song.found.missing]
    made = generate_requests(
        backend, [Request(tuple(songs[i].found.missing), songs[i].plan, songs[i].spec)
                  for i in wanted], max_batch=max_batch, callback=callback) if wanted else []
    generated = dict(zip(wanted, made))
    return [_finish(song, generated.get(i)) for i, song in enumerate(songs)]


def _finish(song: _Song, generated):
    """A request's stems and report, the generated ones stored."""
    from ..backends import Generated

    names = [s.name for s in song.stems]
    if song.store is None:
        return _disabled(generated, names)
    store, found, spec = song.store, song.found, song.spec
    store_s, errors = 0.0, []
    song_part: dict = {}
    per_stem: dict[str, dict] = {}
    if generated is not None:
        start = time.perf_counter()
        song_part, per_stem, errors = _store(store, generated, found, song.plan, spec,
                                             song.revision, song.digests)
        store_s = time.perf_counter() - start
    for what, tidy in (("eviction", lambda: store.evict(keep=found.keys.values())),
                       ("model digests", lambda: store.save_model_digests(song.digests))):
        try:
            tidy()  # once per song; the song's own entries go last
        except OSError as exc:
            errors.append(f"{what}: {exc}")
    if errors:
        from ..errors import MusicStemsWarning

        warnings.warn(f"the stem cache in {store.folder} could not store "
                      f"{'; '.join(errors)}; the song is complete, those stems will be "
                      "generated again next time.", MusicStemsWarning, stacklevel=4)

    hits = found.hits
    if generated is not None:
        report, sample_rate = dict(song_part), generated.sample_rate
    else:  # the stems' own generation, less what describes a run that did not happen now
        first = hits[names[0]]
        report = {k: v for k, v in first.report.get("song", {}).items()
                  if k not in PER_RUN_FIELDS}
        sample_rate = first.sample_rate
    own = {name: ({k: v for k, v in hits[name].report.get("stem", {}).items()
                   if k not in PER_RUN_FIELDS} if name in hits else per_stem[name])
           for name in names}
    for name_of_field in dict.fromkeys(f for entry in own.values() for f in entry):
        report[name_of_field] = {name: own[name].get(name_of_field) for name in names}
    report["cache"] = {
        "enabled": True, "folder": str(store.folder), "hits": [n for n in names if n in hits],
        "generated": [n for n in names if n not in hits],
        "lookup_s": round(song.lookup_s, 4), "store_s": round(store_s, 4),
        "stems": {name: {"cached": name in hits, "cache_key": found.keys.get(name)}
                  for name in names},
        "groups": {name: found.groups.get(name) for name in names},
        **({"store_errors": errors} if errors else {}),
    }
    audio = {name: hits[name].audio if name in hits else generated.stems[name]
             for name in names}
    return Generated(stems=audio, sample_rate=sample_rate, report=report)
