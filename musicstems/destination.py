"""Where ``compose_many`` puts its songs: a folder on this machine, or an fsspec URL.

A folder is written by ``Composition.save`` (atomic: a temporary folder beside it, then a
rename). An fsspec URL (``s3://bucket/songs``, ``gcs://...``, ``file:///shared/songs``,
``memory://...``; the filesystem's own package, e.g. s3fs, must be installed) cannot be renamed
into atomically, so a song is saved to a local temporary folder and uploaded file by file with
its ``manifest.json`` last: a song folder whose upload was cut short has no manifest, and is
never mistaken for a finished song. Only the files the old manifest lists (and the manifest)
are replaced; nothing else in the folder is touched.

A :class:`Destination` is plain data (the URL and the storage options), so it travels to
workers; the filesystem is opened where it is used.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import MusicStemsError

__all__ = ["Destination", "is_url"]

_MANIFEST = "manifest.json"


def is_url(out_dir: Any) -> bool:
    """Whether ``out_dir`` names an fsspec filesystem (``protocol://...``)."""
    return isinstance(out_dir, str) and "://" in out_dir


def _listed(manifest: Mapping) -> list[str]:
    """The files a manifest lists (mix, stems, MIDI), relative to its folder."""
    files = manifest.get("files") or {}
    listed = [files.get("mix"), *(files.get("stems") or {}).values()]
    midi = files.get("midi")
    listed += list(midi.values()) if isinstance(midi, Mapping) else [midi]
    # only paths inside the folder: a tampered manifest must not point a delete elsewhere
    return [p for p in listed if isinstance(p, str) and p and not p.startswith(("/", "\\"))
            and ".." not in Path(p).parts and "://" not in p]


@dataclass(frozen=True)
class Destination:
    """``out_dir`` as ``compose_many`` writes to it.

    Attributes
    ----------
    location : str
        A local folder (expanded) or an fsspec URL.
    storage_options : dict
        Handed to fsspec for a URL (credentials, endpoint...).
    """

    location: str
    storage_options: dict = field(default_factory=dict)

    @classmethod
    def of(cls, out_dir: Any, storage_options: Mapping | None = None) -> "Destination":
        """Checked before any work: a folder that is not a file, or a URL whose filesystem
        fsspec can open."""
        if storage_options is not None and not isinstance(storage_options, Mapping):
            raise MusicStemsError(f"storage_options={storage_options!r} is not a dict; pass "
                                  "e.g. {'anon': False} for an s3:// out_dir.",
                                  arguments={"storage_options": storage_options})
        if is_url(out_dir):
            made = cls(out_dir.rstrip("/"), dict(storage_options or {}))
            made._filesystem()  # an unknown protocol or a missing package fails here
            return made
        if storage_options:
            raise MusicStemsError("storage_options= is for an fsspec URL out_dir "
                                  "(s3://...); out_dir is a local folder.",
                                  arguments={"storage_options": storage_options})
        if not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir).strip():
            raise MusicStemsError(f"out_dir={out_dir!r} is not a folder; pass a path or an "
                                  "fsspec URL such as 's3://bucket/songs'.",
                                  arguments={"out_dir": out_dir})
        path = Path(out_dir).expanduser()
        if path.exists() and not path.is_dir():
            raise MusicStemsError(f"out_dir={str(out_dir)!r} is a file; pass a folder.",
                                  arguments={"out_dir": out_dir})
        return cls(str(path))

    @property
    def remote(self) -> bool:
        return is_url(self.location)

    def _filesystem(self):
        """(fsspec filesystem, root path on it)."""
        try:
            from fsspec.core import url_to_fs
        except ImportError:
            raise MusicStemsError(
                f"out_dir={self.location!r} is a URL, which needs fsspec; pip install "
                "'musicstems[dask]' (or fsspec and the filesystem's package).",
                arguments={"out_dir": self.location}) from None
        try:
            return url_to_fs(self.location, **self.storage_options)
        except (ImportError, ValueError) as exc:
            raise MusicStemsError(
                f"out_dir={self.location!r} cannot be opened ({exc}); install the "
                "filesystem's package (s3fs for s3://, gcsfs for gcs://) or pass a folder.",
                arguments={"out_dir": self.location}) from None

    def prepare(self) -> None:
        """Make the folder (a URL's filesystem makes folders as files are written)."""
        if self.remote:
            fs, root = self._filesystem()
            fs.makedirs(root, exist_ok=True)
        else:
            Path(self.location).mkdir(parents=True, exist_ok=True)

    def manifest(self, name: str) -> dict | None:
        """Song ``name``'s manifest, or None where there is none that reads as one."""
        if not self.remote:
            from .export import load_manifest

            try:
                return load_manifest(Path(self.location) / name)
            except MusicStemsError:
                return None
        fs, root = self._filesystem()
        try:
            with fs.open(f"{root}/{name}/{_MANIFEST}", "rb") as handle:
                manifest = json.loads(handle.read().decode("utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        return manifest if isinstance(manifest, dict) else None

    def finished(self, name: str, fingerprint: str) -> bool:
        """Whether song ``name`` is there, complete, asked for with ``fingerprint``."""
        manifest = self.manifest(name)
        if manifest is None or (manifest.get("batch") or {}).get("spec_sha256") != fingerprint:
            return False
        files = manifest.get("files") or {}
        listed = [files.get("mix"), *(files.get("stems") or {}).values()]
        if not all(isinstance(p, str) for p in listed):
            return False
        if not self.remote:
            return all((Path(self.location) / name / p).is_file() for p in listed)
        fs, root = self._filesystem()
        return all(fs.isfile(f"{root}/{name}/{p}") for p in listed)

    def save(self, song, name: str, fmt: str) -> None:
        """Write song ``name`` (``Composition``), replacing a previous one."""
        if not self.remote:
            song.save(Path(self.location) / name, format=fmt, overwrite=True)
            return
        fs, root = self._filesystem()
        folder = f"{root}/{name}"
        old = self.manifest(name)
        with tempfile.TemporaryDirectory(prefix="musicstems-upload-") as local:
            song.save(Path(local) / name, format=fmt)
            made = Path(local) / name
            files = sorted(p.relative_to(made).as_posix() for p in made.rglob("*")
                           if p.is_file() and p.name != _MANIFEST)
            # the old song's manifest goes first: until the new one lands, no manifest says
            # the folder holds a finished song
            if old is not None:
                fs.rm(f"{folder}/{_MANIFEST}")
                for stale in set(_listed(old)) - set(files):
                    if fs.exists(f"{folder}/{stale}"):
                        fs.rm(f"{folder}/{stale}")
            for relative in files:
                parent = Path(relative).parent.as_posix()
                fs.makedirs(folder if parent == "." else f"{folder}/{parent}", exist_ok=True)
                fs.put_file(str(made / relative), f"{folder}/{relative}")
            fs.put_file(str(made / _MANIFEST), f"{folder}/{_MANIFEST}")
