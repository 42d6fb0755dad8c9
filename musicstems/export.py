"""Writing and reading songs: audio files, the manifest, atomic folder writes.

``save_song`` writes every file into a temporary folder beside the target and only then moves
them into place, so a failure half-way leaves no half-written song. It refuses a non-empty target
unless ``overwrite=True``, and even then it only replaces the files it writes: nothing else in the
folder is touched or deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import ExportError, MusicStemsError

__all__ = ["FORMATS", "write_audio", "read_audio", "save_song", "load_manifest",
           "MANIFEST_NAME"]

MANIFEST_NAME = "manifest.json"
# format -> (soundfile format, subtype). WAV keeps our float32 samples exactly; FLAC is 24-bit
# integer (FLAC has no float); MP3 is encoded by libsndfile's LAME, which ships inside soundfile.
FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24"), "mp3": ("MP3", "MPEG_LAYER_III")}


def _check_format(fmt: Any) -> str:
    import soundfile

    if fmt not in FORMATS:
        raise MusicStemsError(f"format={fmt!r} is not supported; use 'wav', 'flac' or 'mp3'.")
    major, subtype = FORMATS[fmt]
    if major not in soundfile.available_formats() or \
            subtype not in soundfile.available_subtypes(major):
        raise MusicStemsError(
            f"format={fmt!r} cannot be written here: this machine's libsndfile "
            f"({soundfile.__libsndfile_version__}) has no {major} encoder. Use format='wav', or "
            "install a soundfile wheel built with libsndfile >= 1.1 (pip install -U soundfile).")
    return fmt


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, fmt: str = "wav") -> None:
    """Write float32 ``(channels, samples)`` audio to ``path`` (soundfile wants (samples, ch))."""
    import soundfile

    major, subtype = FORMATS[_check_format(fmt)]
    data = np.atleast_2d(audio).T
    if fmt != "wav":  # integer and lossy formats clip outside [-1, 1]
        data = np.clip(data, -1.0, 1.0)
    soundfile.write(str(path), data, int(sample_rate), format=major, subtype=subtype)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a file as float32 ``(channels, samples)`` and its sample rate."""
    import soundfile

    try:
        data, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise ExportError(f"could not read audio file {str(path)!r}: {exc}") from exc
    return np.ascontiguousarray(data.T), int(sample_rate)


def _json_default(value: Any):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def save_song(directory: str | Path, files: dict[str, Callable[[Path], None]],
              manifest: dict, *, overwrite: bool = False) -> Path:
    """Write a song folder atomically.

    Parameters
    ----------
    directory : path
        The target folder. Created if missing; if it exists and holds anything, ``overwrite``
        must be True.
    files : dict of relative path -> writer
        Each writer is called with the full path to write in the temporary folder.
    manifest : dict
        Written last, as ``manifest.json``.
    overwrite : bool
        Replace this song's files in a non-empty folder. Files that are not part of the song
        stay where they are.
    """
    target = Path(directory).expanduser()
    if target.exists() and not target.is_dir():
        raise MusicStemsError(f"directory={str(target)!r} is a file, not a folder; pass a folder "
                              "path to save the song into.")
    non_empty = target.is_dir() and any(target.iterdir())
    if non_empty and not overwrite:
        raise MusicStemsError(
            f"directory={str(target)!r} is not empty; pass overwrite=True to replace the song's "
            "files there (other files are kept), or choose an empty or new folder.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial",
                                    dir=target.parent))
    try:
        for relative, writer in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            writer(path)
        with open(staging / MANIFEST_NAME, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2, default=_json_default, allow_nan=False)
            handle.write("\n")
        if not target.exists() or not non_empty:
            if target.exists():
                target.rmdir()  # empty: nothing of the user's is lost
            os.replace(staging, target)
        else:
            # Replace our files one by one (each rename is atomic); the manifest goes last so
            # the folder never names files that are not there yet.
            names = [*files, MANIFEST_NAME]
            for relative in names:
                destination = target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / relative, destination)
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def load_manifest(directory: str | Path) -> dict:
    path = Path(directory).expanduser() / MANIFEST_NAME
    if not path.is_file():
        raise ExportError(f"{str(path)!r} does not exist; pass a folder written by "
                          "Composition.save().")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExportError(f"{str(path)!r} is not valid JSON: {exc}") from exc
