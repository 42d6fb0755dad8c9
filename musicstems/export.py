"""Writing and reading songs: audio files, the manifest, the save target's checks, atomic writes.

A save is checked whole before anything is generated or written (:meth:`SaveTarget.check`,
called by ``compose`` when it is given ``save=``, and again by ``Composition.save``): the format
and its encoder, the folder (a file? non-empty without ``overwrite``? writable?), the files
already there, and an estimate of the disk space the song needs.

:func:`save_song` writes every file into a temporary folder beside the target and only then
moves them into place, so a failure half-way leaves the earlier song (or no folder), never a mix.
``overwrite=True`` replaces the earlier song completely, every file its manifest lists, and
nothing else: a file musicstems did not write is never touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .checks import check_flag
from .errors import ExportError, MusicStemsError

__all__ = ["FORMATS", "write_audio", "read_audio", "save_song", "load_manifest",
           "MANIFEST_NAME", "SaveTarget", "song_files", "estimate_song_bytes"]

MANIFEST_NAME = "manifest.json"
MIDI_NAME = "song.mid"
# format -> (soundfile format, subtype). WAV keeps our float32 samples exactly; FLAC is 24-bit
# integer (FLAC has no float); MP3 is encoded by libsndfile's LAME, which ships inside soundfile
# (so no ffmpeg is needed: the encoder check below is the whole of it).
FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24"), "mp3": ("MP3", "MPEG_LAYER_III")}
# Upper bounds of the bytes one second of one channel takes: float32 WAV, 24-bit FLAC (FLAC
# stores a frame verbatim when it cannot compress it), and MP3's highest bit rate (320 kbit/s,
# for the whole file whatever its channels).
_BYTES_PER_SECOND = {"wav": 4.0, "flac": 3.0}
_MP3_BYTES_PER_SECOND = 40_000.0
_HEADER_BYTES = 4096
_SMALL_FILE_BYTES = 256 * 1024  # the manifest (with the plan) and song.mid, generously
# Both backends render at 32 kHz today; the estimate before generation assumes it, in stereo.
ESTIMATE_SAMPLE_RATE = 32000
# The only paths a song's files can have: an old manifest naming anything else is not obeyed.
_OUR_FILE_RE = re.compile(r"^(mix\.(wav|flac|mp3)|stems/[A-Za-z0-9][A-Za-z0-9_\-]{0,63}"
                          r"\.(wav|flac|mp3)|song\.mid|manifest\.json)$")


def _check_format(fmt: Any) -> str:
    import soundfile

    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise MusicStemsError(f"format={fmt!r} is not supported; use 'wav', 'flac' or 'mp3'.",
                              arguments={"format": fmt})
    major, subtype = FORMATS[fmt]
    if major not in soundfile.available_formats() or \
            subtype not in soundfile.available_subtypes(major):
        raise MusicStemsError(
            f"format={fmt!r} cannot be written here: this machine's libsndfile "
            f"({soundfile.__libsndfile_version__}) has no {major} encoder. Use format='wav', or "
            "install a soundfile wheel built with libsndfile >= 1.1 (pip install -U soundfile).",
            arguments={"format": fmt})
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
    """Read a file as float32 ``(channels, samples)`` and its sample rate; NaN or infinite
    samples (a float WAV can hold them) are refused."""
    import soundfile

    try:
        data, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, OSError) as exc:
        raise ExportError(f"could not read audio file {str(path)!r}: {exc}") from exc
    if not np.isfinite(data).all():
        raise ExportError(f"audio file {str(path)!r} holds NaN or infinite samples; it was not "
                          "written by Composition.save(). Save the song again.")
    return np.ascontiguousarray(data.T), int(sample_rate)


def _json_default(value: Any):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def song_files(fmt: str, stem_names: Iterable[str], *, midi: bool) -> list[str]:
    """The relative paths a song writes, the manifest last."""
    return [f"mix.{fmt}", *(f"stems/{name}.{fmt}" for name in stem_names),
            *([MIDI_NAME] if midi else []), MANIFEST_NAME]


def estimate_song_bytes(fmt: str, channels: Sequence[int], num_samples: int,
                        sample_rate: int) -> int:
    """An upper bound of the bytes a song takes on disk: one audio file per entry of
    ``channels`` (the mix and each stem), plus the manifest and song.mid."""
    seconds = num_samples / sample_rate
    audio = sum(_MP3_BYTES_PER_SECOND * seconds if fmt == "mp3"
                else _BYTES_PER_SECOND[fmt] * n * num_samples for n in channels)
    return int(audio + _HEADER_BYTES * len(channels) + 2 * _SMALL_FILE_BYTES)


@dataclass(frozen=True)
class SaveTarget:
    """Where and how ``compose(..., save=...)`` writes the song: what ``Composition.save``
    takes, checked before generation so a bad folder costs nothing.

    Parameters
    ----------
    directory : path
        The song's folder; new or empty unless ``overwrite``.
    format : {"wav", "flac", "mp3"}
    overwrite : bool
        Replace the song already in a non-empty folder: every file its manifest lists goes,
        files musicstems did not write stay.
    midi : bool
        Also write ``song.mid``.
    """

    directory: Any
    format: str = "wav"
    overwrite: bool = False
    midi: bool = False

    @classmethod
    def of(cls, save: Any) -> "SaveTarget | None":
        """``save=`` as ``compose`` takes it: None, a folder path, or a SaveTarget."""
        if save is None or isinstance(save, SaveTarget):
            return save
        if isinstance(save, (str, os.PathLike)):
            return cls(save)
        raise MusicStemsError(
            f"save={save!r} is not a folder; pass a path such as 'out/song', or "
            "SaveTarget('out/song', format='flac', overwrite=True), or None to keep the song "
            "in memory only.", arguments={"save": save})

    def check(self, stem_names: Sequence[str], *, num_samples: int | None = None,
              duration_s: float | None = None, channels: Sequence[int] | None = None,
              sample_rate: int = ESTIMATE_SAMPLE_RATE) -> "_Prepared":
        """Check everything about this save that can fail, before any work: the format and
        its encoder, ``overwrite`` and ``midi``, and the folder (:func:`_prepare`). The size is
        estimated from ``num_samples`` and ``channels`` when known, else from ``duration_s``
        in stereo at :data:`ESTIMATE_SAMPLE_RATE`."""
        fmt = _check_format(self.format)
        overwrite = check_flag(self.overwrite, "overwrite")
        midi = check_flag(self.midi, "midi")
        if num_samples is None:
            num_samples = round((duration_s or 0.0) * sample_rate)
        channels = channels or [2] * (len(stem_names) + 1)
        return _prepare(self.directory, song_files(fmt, stem_names, midi=midi),
                        overwrite=overwrite,
                        needed_bytes=estimate_song_bytes(fmt, channels, num_samples, sample_rate))


@dataclass(frozen=True)
class _Prepared:
    """A checked target: the folder, whether it holds anything, and the earlier song's files."""

    path: Path
    non_empty: bool
    old_files: tuple[str, ...]


def _refuse(message: str, directory: Any, **more: Any) -> MusicStemsError:
    return MusicStemsError(message, arguments={"directory": directory, **more})


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def _probe_writable(folder: Path, directory: Any) -> None:
    # A real file, made and removed at once: os.access says yes to root on a read-only disk.
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise _refuse(f"directory={str(directory)!r} cannot be written: {folder} refuses new "
                      f"files ({exc.strerror or exc}). Choose a folder you can write to.",
                      directory) from None


def _old_song_files(path: Path, directory: Any) -> tuple[str, ...]:
    """The files the manifest in ``path`` lists as its song's (only paths a song can have)."""
    if not (path / MANIFEST_NAME).exists():
        return ()
    try:
        files = load_manifest(path)["files"]
        listed = [files["mix"], *files["stems"].values(), files.get("midi")]
    except (MusicStemsError, KeyError, TypeError, AttributeError) as exc:
        raise _refuse(
            f"directory={str(directory)!r} holds a manifest.json musicstems cannot read ({exc}), "
            "so it cannot tell the earlier song's files from yours; move it away or choose "
            "another folder.", directory) from None
    return tuple(dict.fromkeys(
        [MANIFEST_NAME, *(f for f in listed if isinstance(f, str) and _OUR_FILE_RE.match(f))]))


def _prepare(directory: Any, files: Sequence[str], *, overwrite: bool,
             needed_bytes: int) -> _Prepared:
    """Every check of the folder a song of ``files`` (relative paths) goes to."""
    if isinstance(directory, bytes) or not isinstance(directory, (str, os.PathLike)) or \
            not os.fspath(directory):
        raise _refuse(f"directory={directory!r} is not a folder path; pass e.g. 'out/song'.",
                      directory)
    try:
        if "\x00" in os.fsdecode(os.fsencode(directory)):  # pathlib would call it "missing"
            raise ValueError("a NUL character")
        path = Path(directory).expanduser()
        exists, is_dir = path.exists(), path.is_dir()
        base = _nearest_existing(path)
        non_empty = is_dir and any(path.iterdir())
        clashes = [f for f in files if (path / f).exists() or (path / f).is_symlink()]
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, an unencodable name, ~user
        raise _refuse(f"directory={directory!r} is not a usable path ({exc}); pass e.g. "
                      "'out/song'.", directory) from None
    if exists and not is_dir:
        raise _refuse(f"directory={str(path)!r} is a file, not a folder; pass a folder path to "
                      "save the song into.", directory)
    if not base.is_dir():
        raise _refuse(f"directory={str(path)!r} cannot be made: {base} is a file. Pass a path "
                      "whose parents are folders.", directory)
    if non_empty and not overwrite:
        raise _refuse(
            f"directory={str(path)!r} is not empty; pass overwrite=True to replace the song "
            "there (files musicstems did not write are kept), or choose an empty or new folder.",
            directory, overwrite=overwrite)
    old_files: tuple[str, ...] = ()
    if non_empty:
        old_files = _old_song_files(path, directory)
        foreign = [f for f in clashes if f not in old_files]
        if foreign:
            raise _refuse(
                f"directory={str(path)!r} holds {', '.join(foreign)}, which no musicstems "
                "manifest there lists, so it may be yours; overwrite=True never replaces such "
                "a file. Move it, or choose another folder.", directory)
    for folder in {base, path.parent if exists else base} | ({path} if non_empty else set()):
        _probe_writable(folder, directory)
    free = shutil.disk_usage(base).free
    if free < needed_bytes:
        raise _refuse(
            f"directory={str(path)!r} is on a disk with {free / 1e6:.1f} MB free and the song "
            f"needs about {needed_bytes / 1e6:.1f} MB; free some space or choose a folder on "
            "another disk.", directory)
    return _Prepared(path=path, non_empty=non_empty, old_files=old_files)


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C while a song's files are moved into place (renames only, milliseconds), and
    deliver it after: the folder then holds the old song or the new one, never a mix."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[Any] = []

    def hold(signum, frame):
        caught.append(frame)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(signal.SIGINT, caught[-1])
        elif caught and previous == signal.SIG_DFL:
            raise KeyboardInterrupt


def _swap_in(staging: Path, path: Path, new_files: Sequence[str], old_files: Sequence[str],
             ) -> None:
    """Move the earlier song's files aside, the new ones in (manifest last), then drop the old
    ones; on any failure put everything back as it was."""
    backup = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    moved: list[str] = []
    placed: list[str] = []
    try:
        with _interrupts_held():
            try:
                # the old manifest first: from then on the folder names no half-moved song
                for relative in dict.fromkeys([MANIFEST_NAME, *old_files, *new_files]):
                    source = path / relative
                    if source.is_symlink() or source.is_file():
                        (backup / relative).parent.mkdir(parents=True, exist_ok=True)
                        os.replace(source, backup / relative)
                        moved.append(relative)
                for relative in new_files:
                    (path / relative).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staging / relative, path / relative)
                    placed.append(relative)
            except BaseException:
                for relative in reversed(placed):
                    os.replace(path / relative, staging / relative)
                for relative in reversed(moved):
                    os.replace(backup / relative, path / relative)
                raise
    finally:
        shutil.rmtree(backup, ignore_errors=True)


def save_song(directory: str | Path, files: dict[str, Callable[[Path], None]],
              manifest: dict, *, overwrite: bool = False, needed_bytes: int = 0) -> Path:
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
        Replace the song in a non-empty folder: the files its manifest lists are removed or
        replaced. Files that musicstems did not write stay where they are.
    needed_bytes : int
        Estimated size of the song; a disk with less free space is refused before writing.
    """
    names = [*files, MANIFEST_NAME]
    prepared = _prepare(directory, names, overwrite=overwrite, needed_bytes=needed_bytes)
    path = prepared.path
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial",
                                    dir=path.parent))
    try:
        for relative, writer in files.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            writer(staging / relative)
        with open(staging / MANIFEST_NAME, "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2, default=_json_default, allow_nan=False)
            handle.write("\n")
        if not prepared.non_empty:
            with _interrupts_held():
                if path.exists():
                    path.rmdir()  # empty: nothing of the user's is lost
                os.replace(staging, path)
        else:
            _swap_in(staging, path, names, prepared.old_files)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in made:  # the parents this save made, if nothing else went into them
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return path


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def load_manifest(directory: str | Path) -> dict:
    """The manifest of a song folder, parsed as data (JSON without NaN or Infinity)."""
    path = Path(directory).expanduser() / MANIFEST_NAME
    if not path.is_file():
        raise ExportError(f"{str(path)!r} does not exist; pass a folder written by "
                          "Composition.save().", arguments={"directory": directory})
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError, OSError) as exc:  # JSONDecodeError and bad UTF-8 too
        raise ExportError(f"{str(path)!r} is not valid JSON: {exc}",
                          arguments={"directory": directory}) from exc
    if not isinstance(manifest, dict):
        raise ExportError(f"{str(path)!r} holds a {type(manifest).__name__}, not the object "
                          "Composition.save() writes.", arguments={"directory": directory})
    return manifest
