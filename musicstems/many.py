"""Many songs: ``compose_many`` on this machine, any ``concurrent.futures`` executor, or Dask.

The songs go out in chunks (:func:`chunk_songs`): MusicGen songs that can share a sampling loop,
up to ``max_batch_stems`` stems in all, are composed together -- their stems sampled in one
batched loop, which reads the weights once for every row (``backends.batches``) -- and every
other stage song by song; other songs one by one. A chunk is a task for a worker. Each song is
saved on its own (``out_dir/<name>/``, atomically as ``Composition.save`` does), so a song
folder with a manifest is a finished song. The manifest's ``batch.spec_sha256`` fingerprints
what the song was asked to be; a re-run skips every song whose folder holds a complete song
with the same fingerprint, and composes the rest. A failing song is recorded with its error
and the others go on (a chunk that fails is composed again song by song). The chunks depend on
the songs and their order only, so a song's audio does not depend on the worker that made it.

Workers are processes that keep their loaded model between songs (``load_model``'s cache is
per process) and get a numba cache folder of their own: librosa's numba kernels crash when
several processes compile them into one cache folder at once (librosa #1998, numba #10128).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import zlib
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import MusicStemsError

__all__ = ["compose_many", "BatchSummary", "spec_fingerprint", "chunk_songs", "DEFAULT_MAX_BATCH_STEMS"]

#: Stems per chunk of songs sampled together (``compose_many``'s ``max_batch_stems``): 4
#: two-stem songs, or 2 four-stem songs, per loop; past it a batch's step grows about as fast
#: as its rows on a CPU (benchmarks/RESULTS.md, ``bench_many``).
DEFAULT_MAX_BATCH_STEMS = 8

_SONG_NAME_FIX = "use 1-64 letters, digits, '-' or '_', e.g. 'song_001'"


@dataclass
class BatchSummary:
    """What ``compose_many`` did: songs ``done`` (composed now), ``skipped`` (already there,
    same spec) and ``failed`` (name -> the error, one line)."""

    out_dir: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def __repr__(self) -> str:
        lines = [f"compose_many -> {self.out_dir}: {len(self.done)} done, "
                 f"{len(self.skipped)} skipped, {len(self.failed)} failed"]
        lines += [f"  failed {name}: {reason}" for name, reason in self.failed.items()]
        return "\n".join(lines)


def spec_fingerprint(spec) -> str:
    """SHA-256 of what a song was asked to be: every setting the manifest records and each
    stem's name, prompt, gain, pan, seed and melody file. Progress and cache settings are not
    part of it; they do not change the song."""
    from .stems import stem_seed

    stems = [{"name": s.name, "prompt": s.prompt, "gain_db": s.gain_db, "pan": s.pan,
              "seed": stem_seed(spec.seed, s),
              "melody": None if s.melody is None else str(s.melody)} for s in spec.stems]
    data = {"settings": spec.settings(), "stems": stems}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _song_request(song: Any, index: int) -> tuple[Any, Any, dict[str, Any]]:
    """(name, stems, settings) of one song: a dict with ``name`` and ``stems``, or a TOML song
    file (named after the file)."""
    if isinstance(song, (str, os.PathLike)):
        from .songfile import read_song_file

        stems, song_settings = read_song_file(song)
        return Path(song).stem, stems, dict(song_settings)
    if not isinstance(song, Mapping) or "name" not in song or "stems" not in song:
        raise MusicStemsError(
            f"songs[{index}]={song!r} is not a song; pass a dict with 'name' and 'stems' "
            "(and any compose setting), e.g. {'name': 'song_001', 'stems': {'drums': "
            "'techno drums'}}, or the path of a TOML song file.", arguments={"songs": song})
    rest = {k: v for k, v in song.items() if k not in ("name", "stems")}
    return song["name"], song["stems"], rest


def _song_seed(name: str) -> int:
    # a song without a seed gets one from its name, so a re-run asks for the same song
    return zlib.crc32(f"musicstems-song/{name}".encode())


def _requests(songs: Iterable[Any], settings: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Every song validated at the door, before any work: (name, SongSpec)."""
    from .spec import validate_compose_args
    from .stems import _SAFE_NAME_RE

    if isinstance(songs, (str, bytes, Mapping)) or not isinstance(songs, Iterable):
        raise MusicStemsError(
            f"songs={songs!r} is not a list of songs; pass e.g. [{{'name': 'song_001', "
            "'stems': {'drums': 'techno drums'}}, ...] or a list of TOML song files.",
            arguments={"songs": songs})
    requests, seen = [], {}
    for index, song in enumerate(songs):
        name, stems, song_settings = _song_request(song, index)
        if not isinstance(name, str) or not _SAFE_NAME_RE.match(name):
            raise MusicStemsError(f"songs[{index}] has name={name!r}; {_SONG_NAME_FIX}.",
                                  arguments={"songs": song})
        if name.lower() in seen:
            raise MusicStemsError(
                f"songs[{index}] and songs[{seen[name.lower()]}] are both named {name!r}; "
                "every song needs its own name (its folder in out_dir).",
                arguments={"songs": song})
        seen[name.lower()] = index
        merged = {**settings, **song_settings}
        if merged.get("seed") is None:
            merged["seed"] = _song_seed(name)
        try:
            spec = validate_compose_args(stems, **merged)
        except MusicStemsError as error:
            raise MusicStemsError(f"song {name!r}: {error}", arguments=error.arguments) from None
        requests.append((name, spec))
    if not requests:
        raise MusicStemsError("songs is empty; give at least one song.",
                              arguments={"songs": songs})
    return requests


def _own_numba_cache() -> None:
    """A numba cache folder for this process, set before librosa first imports numba."""
    if "numba" in sys.modules:
        return
    base = os.environ.get("MUSICSTEMS_NUMBA_BASE") or os.path.join(
        tempfile.gettempdir(), "musicstems-numba")
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(base, f"worker-{os.getpid()}")


def _compose_one(name: str, spec, out_dir, fmt: str, fingerprint: str) -> str:
    """Compose and save one song (runs in a worker). Returns the name."""
    _own_numba_cache()
    from dataclasses import replace

    from .pipeline import render

    _save(render(replace(spec, progress=False)), name, out_dir, fmt, fingerprint)
    return name


def _save(song, name: str, out_dir, fmt: str, fingerprint: str) -> None:
    """Save ``song`` as ``out_dir``'s (a ``destination.Destination``) song ``name``."""
    song.manifest["batch"] = {"name": name, "spec_sha256": fingerprint}
    out_dir.save(song, name, fmt)


def _render_together(specs: list, max_batch: int) -> list:
    """Several songs, their stems generated in shared sampling loops of at most ``max_batch``
    stems (``backends.batches``), every other stage song by song as ``render`` runs it."""
    from dataclasses import replace

    from .backends.batches import Request
    from .pipeline import finish_stages, generate_many_stems, plan_stage
    from .progress import STAGES, Laps, SongProgress

    stages = tuple(s for s in STAGES if s != "save")
    laps = [Laps(SongProgress(show=False, callback=None, stages=stages)) for _ in specs]
    planned = [plan_stage(replace(spec, progress=False), lap) for spec, lap in zip(specs, laps)]
    for lap in laps:
        lap.begin("generate")
    made = generate_many_stems([Request(spec.stems, plan, spec) for spec, plan in planned],
                               max_batch=max_batch)
    for lap in laps:
        lap.lap("generate")
    songs = [finish_stages(spec, plan, generated, lap)
             for (spec, plan), generated, lap in zip(planned, made, laps)]
    for lap in laps:
        lap.close()
    return songs


def _compose_chunk(chunk: list, out_dir, fmt: str, max_batch: int) -> list:
    """Compose and save a chunk of songs (runs in a worker): their stems sampled together
    when there are several, each song alone if that fails, so one bad song fails alone.
    Songs a first try of the chunk finished are not made again. Returns (name, None) per
    song done and (name, reason) per song that failed."""
    _own_numba_cache()
    todo = [(n, spec, f) for n, spec, f in chunk if not out_dir.finished(n, f)]
    if len(todo) > 1:
        try:
            songs = _render_together([spec for _, spec, _ in todo], max_batch)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:  # noqa: BLE001 - each song alone below, its own error recorded
            songs = None
        if songs is not None:
            done = {name: None for name, _, _ in chunk}
            for (name, _, fingerprint), song in zip(todo, songs):
                try:  # a song that cannot be saved (a full disk) fails alone
                    _save(song, name, out_dir, fmt, fingerprint)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as error:
                    done[name] = _one_line(error)
            return list(done.items())
    done = {name: None for name, _, _ in chunk}
    for name, spec, fingerprint in todo:
        try:
            _compose_one(name, spec, out_dir, fmt, fingerprint)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # recorded; the other songs go on
            done[name] = _one_line(error)
    return list(done.items())


def chunk_songs(todo: list, max_batch_stems: int) -> list[list]:
    """The songs to compose, in chunks whose stems are sampled together: MusicGen songs that
    can share a sampling loop (``backends.batches.loop_signature``), each song in the first
    chunk of its loop with room for it, at most ``max_batch_stems`` stems in all (a larger
    song is a chunk of its own); every other song alone. The same songs give the same chunks wherever they run, so the same batches."""
    from .backends.batches import loop_signature

    chunks: list[list] = []
    by_loop: dict[tuple, list[list]] = {}
    for item in todo:
        spec = item[1]
        if spec.backend != "musicgen":
            chunks.append([item])
            continue
        stems = len(spec.stems)
        same_loop = by_loop.setdefault(loop_signature(spec), [])
        # the first chunk of its loop with room for it, else a new one
        room = next((c for c in same_loop
                     if sum(len(i[1].stems) for i in c) + stems <= max_batch_stems), None)
        if room is not None:
            room.append(item)
            continue
        chunks.append([item])
        same_loop.append(chunks[-1])
    return chunks


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".strip()


def compose_many(songs: Iterable[Any], out_dir: str | os.PathLike, *, client: Any = None,
                 executor: Executor | None = None, format: str = "wav",
                 progress: bool = True, retries: int = 1,
                 max_batch_stems: int = DEFAULT_MAX_BATCH_STEMS,
                 storage_options: Mapping[str, Any] | None = None,
                 **settings: Any) -> BatchSummary:
    """Compose and save many songs: here, on an executor's workers, or on a Dask cluster.

    Parameters
    ----------
    songs : iterable of dict or path
        Each a song: ``{"name": "song_001", "stems": {"drums": "...", ...}, "bpm": 128, ...}``
        (any :func:`~musicstems.compose` setting) or a TOML song file (docs/guide.md). Every
        song is validated before any is composed.
    out_dir : path or str
        Each song is saved to ``out_dir/<name>/``: a folder (a shared one when workers run on
        other machines) or an fsspec URL such as ``"s3://bucket/songs"``, uploaded with its
        manifest last (``destination.py``; the filesystem's package, e.g. s3fs, installed).
    client : dask.distributed.Client, optional
        Spread the songs over its workers (``musicstems[dask]``). A song whose worker dies is
        given to another worker, up to ``retries`` times.
    executor : concurrent.futures.Executor, optional
        Any executor instead (a ``ProcessPoolExecutor``, Ray's executor, ...). With neither,
        songs are composed one after the other in this process.
    format : {"wav", "flac", "mp3"}
    progress : bool
        A bar over the songs.
    retries : int >= 0
        Dask only: how many times a song whose worker died is tried again.
    max_batch_stems : int >= 1
        MusicGen songs with the same model and sampling settings (``chunk_songs``) are
        composed in chunks of at most this many stems, their stems sampled in one loop: a
        batch reads the weights once for all its rows. The chunks depend only on the songs
        and their order, so the audio is the same here and on any cluster. 1: every song on
        its own, as ``compose`` makes it.
    storage_options : dict, optional
        fsspec's options for a URL ``out_dir`` (credentials, endpoint).
    **settings
        Defaults for every song (a song's own keys win), e.g. ``backend="sketch"``.

    Returns
    -------
    BatchSummary
        ``done``, ``skipped`` (already in ``out_dir`` with the same spec), ``failed``.
    """
    from .checks import check_whole
    from .export import _check_format

    fmt = _check_format(format)
    retries = check_whole(retries, "retries", low=0, high=100)
    max_batch_stems = check_whole(max_batch_stems, "max_batch_stems", low=1, high=4096)
    if client is not None and executor is not None:
        raise MusicStemsError("pass client= or executor=, not both.",
                              arguments={"client": client})
    if executor is not None and not isinstance(executor, Executor):
        raise MusicStemsError(f"executor={executor!r} is not a concurrent.futures.Executor; "
                              "pass e.g. ProcessPoolExecutor(2), or client= for Dask.",
                              arguments={"executor": executor})
    if client is not None:
        _check_dask_client(client)
    from .destination import Destination

    out = Destination.of(out_dir, storage_options)
    requests = _requests(songs, settings)
    summary = BatchSummary(out_dir=out.location)
    todo = []
    for name, spec in requests:
        fingerprint = spec_fingerprint(spec)
        if out.finished(name, fingerprint):
            summary.skipped.append(name)
        else:
            todo.append((name, spec, fingerprint))
    out.prepare()
    bar = _bar(len(todo), progress)
    try:
        for results in _run(chunk_songs(todo, max_batch_stems), out, fmt, client,
                            executor, retries, max_batch_stems):
            for name, error in results:
                if error is None:
                    summary.done.append(name)
                else:
                    summary.failed[name] = error
            if bar is not None:
                bar.update(len(results))
    finally:
        if bar is not None:
            bar.close()
    return summary


def _bar(total: int, show: bool):
    if not show or not total:
        return None
    from .progress import progress_bar_class

    return progress_bar_class()(total=total, desc="musicstems: songs", unit="song")


def _run(chunks, out, fmt: str, client, executor, retries: int, max_batch: int):
    """Yield each chunk's results, [(name, None or reason), ...], as chunks finish."""
    if client is None and executor is None:
        for chunk in chunks:
            yield _compose_chunk(chunk, out, fmt, max_batch)
        return
    if client is not None:
        from distributed import as_completed

        futures = {client.submit(_compose_chunk, chunk, out, fmt, max_batch,
                                 key=f"musicstems-{chunk[0][0]}-{chunk[0][2][:12]}",
                                 retries=retries, pure=False): chunk
                   for chunk in chunks}
    else:
        from concurrent.futures import as_completed

        futures = {executor.submit(_compose_chunk, chunk, out, fmt, max_batch): chunk
                   for chunk in chunks}
    for future in as_completed(futures):
        chunk = futures[future]
        try:
            yield future.result()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # the worker died, retries used up: the chunk failed
            yield [(name, _one_line(error)) for name, _, _ in chunk]


def _check_dask_client(client: Any) -> None:
    try:
        from distributed import Client
    except ImportError:
        raise MusicStemsError(
            "client= needs Dask distributed, which is not installed; pip install "
            "'musicstems[dask]'.", arguments={"client": client}) from None
    if not isinstance(client, Client):
        raise MusicStemsError(f"client={client!r} is not a dask.distributed.Client; pass "
                              "Client('tcp://scheduler:8786'), or executor= for another pool.",
                              arguments={"client": client})
