"""The stem cache on disk: one folder per entry, written atomically, checked when read.

Layout of a cache folder (nothing else in it is ever touched)::

    CACHEDIR.TAG                    marks the folder as a cache for backup tools
    stems-v1/<key>/audio.npy        the raw stem, float32 (channels, samples)
    stems-v1/<key>/entry.json       its key fields, sample rate, shape, report, audio sha256
    stems-v1/<key>/last_used        when the cache last served or stored it (for eviction)
    stems-v1/.tmp-<key>-<random>/   an entry being written
    model-digests-v1.json           file digests of local model folders, by size/mtime/inode

An entry is written into a temporary folder beside the others and renamed into place in one
``os.replace``, so a reader sees all of it or none; when several processes store the same key at
once the first rename wins and the others drop their copy. An entry whose audio does not match
its checksum (a truncated or damaged file) is deleted and reported as a miss, never returned.
Past the size limit the least recently used entries go first; "used" is the time the cache
itself wrote into ``last_used``, not the file system's access time (often off or coarse).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["StemCache", "CachedStem", "DEFAULT_LIMIT_BYTES", "ENTRIES"]

#: The size limit when none is set (``MUSICSTEMS_CACHE_SIZE_GB``): about 800 ten-second stereo
#: stems at 32 kHz.
DEFAULT_LIMIT_BYTES = 2 * 10**9
ENTRIES = "stems-v1"
_MEMO = "model-digests-v1.json"
_TAG = "CACHEDIR.TAG"
_TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
             "# This folder is musicstems' stem cache; `musicstems cache clear` empties it.\n")
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_WORK_RE = re.compile(r"^\.(tmp|trash)-[0-9a-f]{64}-[0-9a-f]{32}$")
_FILES = ("audio.npy", "entry.json", "last_used")


@dataclass(frozen=True)
class CachedStem:
    """One entry as read back: the audio, its rate and the report stored with it."""

    audio: np.ndarray
    sample_rate: int
    report: dict[str, Any]


def _audio_bytes(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(audio, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


class StemCache:
    """A folder of cached stems.

    Parameters
    ----------
    folder : str or Path
        Made (with its parents) on the first store.
    limit_bytes : int > 0
        Total size of the entries past which the least recently used are evicted.
    """

    def __init__(self, folder: str | os.PathLike, *, limit_bytes: int = DEFAULT_LIMIT_BYTES):
        self.folder = Path(folder)
        self.limit_bytes = int(limit_bytes)
        self._entries = self.folder / ENTRIES

    # -- reading --------------------------------------------------------------------------------
    def get(self, key: str) -> CachedStem | None:
        """The entry ``key``, or None when there is none or it is damaged (then deleted)."""
        entry = self._entries / key
        try:
            meta = json.loads((entry / "entry.json").read_text(encoding="utf-8"))
            data = (entry / "audio.npy").read_bytes()
        except FileNotFoundError:  # not stored, or evicted by another process meanwhile
            return None
        except (OSError, ValueError):
            self._discard(key)
            return None
        try:
            if hashlib.sha256(data).hexdigest() != meta["audio_sha256"]:
                raise ValueError("checksum")
            audio = np.load(io.BytesIO(data), allow_pickle=False)
            if audio.dtype != np.float32 or list(audio.shape) != meta["shape"]:
                raise ValueError("shape")
            found = CachedStem(audio, int(meta["sample_rate"]), dict(meta["report"]))
        except (KeyError, TypeError, ValueError):
            self._discard(key)
            return None
        self._touch(entry)
        return found

    # -- writing --------------------------------------------------------------------------------
    def put(self, key: str, audio: np.ndarray, sample_rate: int, report: Mapping[str, Any],
            fields: Mapping[str, Any] | None = None, *, evict: bool = True) -> bool:
        """Store ``audio`` [shape=(channels, samples)] under ``key``, then (``evict``) evict
        past the limit.

        Returns True when this call's copy was stored, False when another writer's was already
        in place (same key: the same audio).
        """
        if not _KEY_RE.match(key):
            raise ValueError(f"key={key!r} is not a sha256 hex digest")
        self._entries.mkdir(parents=True, exist_ok=True)
        self._tag()
        data = _audio_bytes(audio)
        work = self._entries / f".tmp-{key}-{uuid.uuid4().hex}"
        work.mkdir()
        try:
            (work / "audio.npy").write_bytes(data)
            meta = {"key": key, "fields": dict(fields or {}), "sample_rate": int(sample_rate),
                    "shape": list(audio.shape), "dtype": "float32",
                    "audio_sha256": hashlib.sha256(data).hexdigest(), "report": dict(report)}
            (work / "entry.json").write_text(json.dumps(meta, indent=1, default=str),
                                             encoding="utf-8")
            (work / "last_used").write_text(repr(time.time()), encoding="ascii")
            try:
                os.replace(work, self._entries / key)
                stored = True
            except OSError:  # the key's folder exists: another writer got there first
                stored = False
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
        if evict:
            self.evict(keep=(key,))
        return stored

    def evict(self, *, keep: Iterable[str] = ()) -> list[str]:
        """Delete least recently used entries until the total is within the limit; those in
        ``keep`` (the song's own) go last. Returns the keys deleted, oldest first."""
        entries = self._list()
        keep = set(keep)
        total = sum(size for _, size, _ in entries)
        removed = []
        for key, size, _ in sorted(entries, key=lambda e: (e[0] in keep, e[2])):
            if total <= self.limit_bytes:
                break
            self._discard(key)
            total -= size
            removed.append(key)
        return removed

    # -- the folder -----------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """``folder``, ``entries``, ``bytes`` and ``limit_bytes``."""
        entries = self._list()
        return {"folder": str(self.folder), "entries": len(entries),
                "bytes": sum(size for _, size, _ in entries), "limit_bytes": self.limit_bytes}

    def keys_by_use(self) -> list[str]:
        """Every entry's key, least recently used first."""
        return [key for key, _, _ in sorted(self._list(), key=lambda e: e[2])]

    def clear(self) -> int:
        """Delete every entry and the cache's own files; anything else in the folder stays.
        Returns how many entries were deleted."""
        count = 0
        if self._entries.is_dir():
            for path in self._entries.iterdir():
                if _KEY_RE.match(path.name):
                    count += self._discard(path.name)
                elif _WORK_RE.match(path.name):
                    _remove_entry_folder(path)
            with _quiet():
                self._entries.rmdir()  # only if nothing foreign is left in it
        for name in (_MEMO, _TAG):
            with _quiet():
                (self.folder / name).unlink()
        return count

    def model_digests(self) -> dict[str, str]:
        """The file digests :func:`~musicstems.cache.key.model_revision` memoizes here."""
        try:
            memo = json.loads((self.folder / _MEMO).read_text(encoding="utf-8"))
            return {str(k): str(v) for k, v in memo.items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def save_model_digests(self, digests: Mapping[str, str]) -> None:
        """Remember ``digests`` (merged with those stored), written atomically."""
        if not digests or all(self.model_digests().get(k) == v for k, v in digests.items()):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._tag()
        merged = {**self.model_digests(), **digests}
        _write_atomic(self.folder / _MEMO, json.dumps(merged, indent=1))

    # -- helpers --------------------------------------------------------------------------------
    def _list(self) -> list[tuple[str, int, float]]:
        """(key, bytes, last used) of every complete entry."""
        out = []
        try:
            paths = list(self._entries.iterdir())
        except OSError:
            return out
        for path in paths:
            if not _KEY_RE.match(path.name):
                continue
            try:
                size = sum((path / name).stat().st_size for name in _FILES[:2])
                used = float((path / "last_used").read_text(encoding="ascii"))
            except (OSError, ValueError):
                size, used = 0, 0.0  # half gone or damaged: first to go
            out.append((path.name, size, used))
        return out

    def _touch(self, entry: Path) -> None:
        with _quiet():
            _write_atomic(entry / "last_used", repr(time.time()))

    def _discard(self, key: str) -> int:
        """Delete entry ``key``: renamed aside first, so no reader sees half of it."""
        trash = self._entries / f".trash-{key}-{uuid.uuid4().hex}"
        try:
            os.replace(self._entries / key, trash)
        except OSError:  # already gone
            return 0
        _remove_entry_folder(trash)
        return 1

    def _tag(self) -> None:
        tag = self.folder / _TAG
        if not tag.exists():
            with _quiet():
                _write_atomic(tag, _TAG_TEXT)


class _quiet:
    """Ignore OSError: a file another process removed or a race the cache recovers from."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return kind is not None and issubclass(kind, OSError)


def _remove_entry_folder(folder: Path) -> None:
    """Remove the cache's own files from an entry folder, then the folder if that empties it."""
    for name in _FILES:
        with _quiet():
            (folder / name).unlink()
    for leftover in folder.glob(".last_used-*"):
        with _quiet():
            leftover.unlink()
    with _quiet():
        folder.rmdir()


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` beside ``path`` and rename it into place."""
    work = path.with_name(f".{path.name}-{uuid.uuid4().hex}")
    try:
        work.write_text(text, encoding="utf-8")
        os.replace(work, path)
    finally:
        with _quiet():
            work.unlink()
