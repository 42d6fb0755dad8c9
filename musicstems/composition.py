"""The result of ``compose``: the mix, every stem, and everything needed to reproduce them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .checks import check_flag
from .errors import ExportError, MusicStemsError
from .export import (MIDI_NAME, _check_format, estimate_song_bytes, load_manifest, read_audio,
                     save_song, write_audio)

__all__ = ["Composition"]


@dataclass
class Composition:
    """A finished song.

    Attributes
    ----------
    mix : np.ndarray [shape=(channels, samples)], float32
        The mastered mix.
    stems : dict of str -> np.ndarray [shape=(channels, samples)], float32
        Every stem after alignment and loudness, before panning, at the sample rate of the mix.
    sample_rate : int
        Hz.
    prompts : dict of str -> str
        The exact text sent to the model for each stem.
    seed : int
        The seed that reproduces this song with the same settings.
    manifest : dict
        Settings, measurements, versions and timings: what ``save`` writes as manifest.json.
    plan : object or None
        The song's shared musical plan, when the backend made one.
    """

    mix: np.ndarray
    stems: dict[str, np.ndarray]
    sample_rate: int
    prompts: dict[str, str]
    seed: int
    manifest: dict[str, Any] = field(default_factory=dict)
    plan: Any = None

    @property
    def duration_s(self) -> float:
        return self.mix.shape[-1] / self.sample_rate

    @property
    def fit(self) -> dict[str, dict]:
        """How well each stem agrees with the plan, per stem (:func:`musicstems.fit.measure_fit`):
        ``rhythm`` (share of onsets on the plan's 16th grid), ``harmony`` (share of pitch-class
        energy on the planned chords' tones), ``fits`` and ``reasons``. Empty for a song saved
        before the fit was measured."""
        return self.manifest.get("fit", {}).get("stems", {})

    @property
    def report(self) -> dict[str, dict]:
        """Measurements per stem and of the mix: LUFS, peaks, RMS, dominant frequency, centroid,
        and share of energy in the low / mid / high bands."""
        stems = {name: entry.get("analysis", {})
                 for name, entry in self.manifest.get("stems", {}).items()}
        return {**stems, "mix": self.manifest.get("mix", {}).get("analysis", {})}

    def save(self, directory: str | Path, *, format: str = "wav", overwrite: bool = False,
             midi: bool = False) -> Path:
        """Write ``mix.<format>``, ``stems/<name>.<format>`` and ``manifest.json``.

        Everything that can fail is checked before the first byte is written (format and its
        encoder, the folder, the files already there, the disk space: :class:`SaveTarget`),
        and the files are moved into place only once all are written.

        Parameters
        ----------
        directory : path
            Folder to write; must be new or empty unless ``overwrite=True``.
        format : {"wav", "flac", "mp3"}
            WAV keeps the float32 samples exactly; FLAC is 24-bit; MP3 is 320 kbit/s-class VBR.
        overwrite : bool
            Replace the song in a non-empty folder: every file its manifest lists is replaced
            or removed (a stem the new song lacks goes too); files musicstems did not write
            are kept, and one in the way of a new file is refused before writing.
        midi : bool
            Also write ``song.mid``, the song's plan with one track per stem. With the sketch
            backend it holds exactly the notes you hear; with MusicGen it is the plan the
            prompts were written from (its tempo and key are followed, not its notes).

        Returns
        -------
        Path
            The folder written.
        """
        fmt = _check_format(format)
        overwrite, midi = check_flag(overwrite, "overwrite"), check_flag(midi, "midi")
        if midi and self.plan is None:
            raise ExportError("midi=True needs a song with a plan, and this one has none (it "
                              "was loaded from a manifest without one). Save without midi=True.",
                              arguments={"midi": midi})
        sr = self.sample_rate
        channels = [np.atleast_2d(a).shape[0] for a in (self.mix, *self.stems.values())]

        def writer(audio: np.ndarray) -> Callable[[Path], None]:
            def write(path: Path) -> None:
                write_audio(path, audio, sr, fmt)
            return write

        files = {f"mix.{fmt}": writer(self.mix)}
        for name, audio in self.stems.items():
            files[f"stems/{name}.{fmt}"] = writer(audio)
        if midi:
            files[MIDI_NAME] = lambda path: self.plan.to_midi(path, self.stems_settings())
        manifest = dict(self.manifest)
        manifest["files"] = {"mix": f"mix.{fmt}",
                             "stems": {name: f"stems/{name}.{fmt}" for name in self.stems},
                             "midi": MIDI_NAME if midi else None}
        # save_song checks the folder, the files there and the disk before writing anything
        return save_song(directory, files, manifest, overwrite=overwrite,
                         needed_bytes=estimate_song_bytes(fmt, channels, self.mix.shape[-1], sr))

    @property
    def muted(self) -> list[str]:
        """The stems silent in the mix (:meth:`remix`'s ``mute``); still stems of the song."""
        return [name for name, entry in self.manifest.get("stems", {}).items()
                if isinstance(entry, dict) and entry.get("muted")]

    @property
    def edits(self) -> list[dict]:
        """What was done to the song since it was composed, in order (the manifest's
        ``edits``): each regenerate or remix with its arguments and the stems after it."""
        return list(self.manifest.get("edits", []))

    def regenerate(self, stem: str, *, prompt: str | None = None, seed: int | None = None,
                   progress: bool = True, callback: Callable[[dict], None] | None = None
                   ) -> "Composition":
        """A new song with one stem generated again and everything else kept.

        The stem is generated on the song's plan (tempo, key, chords, sections) with the
        song's settings, aligned to the song's grid stem, tempo and key, matched to its
        ``stem_lufs`` with its ``gain_db``, and the song is mixed and mastered again. The other
        stems are bit-identical. Its part of the plan is drawn again from its new seed (the
        sketch backend plays it; MusicGen's primer and chroma follow it).

        Parameters
        ----------
        stem : str
            The stem's name.
        prompt : str, optional
            A new prompt for it; the prompt sent is rebuilt with the song's style, tempo and
            key. ``None`` keeps its prompt.
        seed : int in [0, 2**32), optional
            Its new seed; ``None`` draws one (recorded in the manifest). Its current seed
            (``manifest["stems"][stem]["seed"]``) gives the same part again.
        progress : bool
            Show a progress bar.
        callback : callable, optional
            As ``compose``'s.

        Returns
        -------
        Composition
            This song is not changed; the new one's manifest records the edit in ``edits``.

        Raises
        ------
        MusicStemsError
            For an unknown stem or a bad prompt or seed, before any model loads.

        Examples
        --------
        >>> from musicstems import compose
        >>> song = compose({"drums": "techno drums", "bass": "acid bass"}, bpm=128, seed=3,
        ...                duration_s=4, backend="sketch", progress=False)
        >>> new = song.regenerate("bass", seed=9, progress=False)
        >>> bool((new.stems["drums"] == song.stems["drums"]).all())
        True
        """
        from .edit import regenerate

        return regenerate(self, stem, prompt=prompt, seed=seed, progress=progress,
                          callback=callback)

    def remix(self, *, gain_db: dict[str, float] | None = None,
              pan: dict[str, float] | None = None, mute: list[str] | None = None
              ) -> "Composition":
        """A new song mixed and mastered again with new levels, pans or mutes; nothing is
        generated or aligned again.

        Parameters
        ----------
        gain_db : dict of str -> float in [-60, 24], dB, optional
            New ``gain_db`` per stem (relative to its matched loudness, as ``Stem.gain_db``);
            stems not named keep theirs.
        pan : dict of str -> float in [-1, 1], optional
            New pan per stem; stems not named keep theirs.
        mute : list of str, optional
            The stems silent in the new mix (``[]`` unmutes all); ``None`` keeps the song's.
            A muted stem stays in ``stems``, in the saved files and in the manifest
            (``muted: true``): it is still a stem of the song, only not heard in the mix.

        Returns
        -------
        Composition
            Mastered to the song's ``target_lufs`` under its ``ceiling_dbfs``; the manifest
            records the edit in ``edits``.

        Raises
        ------
        MusicStemsError
            For an unknown stem name, a value out of range, or muting every stem, before
            any work.

        Examples
        --------
        >>> from musicstems import compose
        >>> song = compose({"drums": "techno drums", "bass": "acid bass"}, bpm=128, seed=3,
        ...                duration_s=4, backend="sketch", progress=False)
        >>> quieter = song.remix(gain_db={"drums": -3}, mute=["bass"])
        >>> quieter.muted
        ['bass']
        """
        from .edit import remix

        return remix(self, gain_db=gain_db, pan=pan, mute=mute)

    def stems_settings(self) -> dict[str, dict]:
        return {name: {k: v for k, v in entry.items() if k in ("prompt", "gain_db", "pan",
                                                               "role")}
                for name, entry in self.manifest.get("stems", {}).items()}

    @classmethod
    def load(cls, directory: str | Path) -> "Composition":
        """Read a song written by :meth:`save`.

        The manifest is parsed as data (JSON) and checked before any audio is read: every
        file it names must lie inside ``directory`` (no ``..``, no absolute path, no symlink
        out of it), and audio with NaN or infinite samples is refused.

        Raises
        ------
        ExportError
            For a folder that is not a song musicstems wrote, naming what is wrong.
        """
        folder = _song_folder(directory)
        manifest = load_manifest(folder)
        files, prompts, seed = _read_manifest(folder, manifest)
        mix, sr = read_audio(files["mix"])
        stems = {}
        for name, path in files["stems"].items():
            stems[name], stem_sr = read_audio(path)
            if stem_sr != sr:
                raise _not_a_song(folder, f"stem {name!r} is at {stem_sr} Hz but the mix at "
                                  f"{sr} Hz")
        plan = None
        if manifest.get("plan") is not None:
            from .plan import Plan
            try:
                plan = Plan.from_dict(manifest["plan"])
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                raise _not_a_song(folder, f"its plan cannot be read ({type(exc).__name__}: "
                                  f"{exc})") from exc
        return cls(mix=mix, stems=stems, sample_rate=sr, prompts=prompts, seed=seed,
                   manifest=manifest, plan=plan)

    # -- notebooks ---------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        from .display import song_html

        return song_html(self)

    def play(self, stem: str = "mix"):
        """A notebook player of the whole mix or of one stem, at its real level.

        Parameters
        ----------
        stem : str
            ``"mix"`` or a stem's name.

        Returns
        -------
        musicstems.display.Player
            Shown as an ``<audio>`` player in Jupyter (MP3, all of it).
        """
        from .display import Player

        if stem == "mix":
            return Player("mix", self.mix, self.sample_rate)
        if stem not in self.stems:
            raise MusicStemsError(f"stem={stem!r} is not a stem of this song; use 'mix' or "
                                  f"one of {list(self.stems)}.", arguments={"stem": stem})
        return Player(stem, self.stems[stem], self.sample_rate)

    def plot(self, kind: str = "waveform", *, figsize: tuple[float, float] | None = None):
        """Every stem on one time axis, the plan's beat grid and chords, and the mix's
        short-term loudness (BS.1770, 3 s windows).

        Parameters
        ----------
        kind : {"waveform", "spectrogram"}
        figsize : (float, float), optional, inches

        Returns
        -------
        matplotlib.figure.Figure
            Needs matplotlib: ``pip install "musicstems[plot]"``.
        """
        from .display import plot_song

        return plot_song(self, kind=kind, figsize=figsize)

    def __repr__(self) -> str:
        return (f"Composition(stems={list(self.stems)}, duration_s={self.duration_s:.2f}, "
                f"sample_rate={self.sample_rate}, seed={self.seed})")


def _not_a_song(folder: Path, problem: str) -> ExportError:
    return ExportError(f"{str(folder)!r}: {problem}; it is not a song written by "
                       "Composition.save() (or it was edited). Save the song again.",
                       arguments={"directory": str(folder)})


def _song_folder(directory: Any) -> Path:
    if isinstance(directory, bytes) or not isinstance(directory, (str, os.PathLike)) or \
            not os.fspath(directory) or "\x00" in os.fspath(directory):
        raise ExportError(f"directory={directory!r} is not a folder path; pass the folder "
                          "Composition.save() wrote, e.g. 'out/song'.",
                          arguments={"directory": directory})
    try:
        folder = Path(directory).expanduser()
        is_dir = folder.is_dir()
    except (OSError, ValueError, RuntimeError) as exc:
        raise ExportError(f"directory={directory!r} is not a usable path ({exc}).",
                          arguments={"directory": directory}) from None
    if not is_dir:
        raise ExportError(f"directory={str(folder)!r} is not a folder; pass the folder "
                          "Composition.save() wrote.", arguments={"directory": directory})
    return folder


def _inside(folder: Path, relative: Any, what: str) -> Path:
    """``folder / relative`` for a manifest's relative path that stays inside ``folder``, even
    through symlinks; anything else is refused."""
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise _not_a_song(folder, f"{what} is {relative!r}, not a file name")
    path = folder / relative
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError, ValueError):  # a symlink loop, an unencodable name
        inside = False
    if Path(relative).is_absolute() or ".." in Path(relative).parts or not inside:
        raise _not_a_song(folder, f"{what} is {relative!r}, which lies outside the folder")
    return path


def _read_manifest(folder: Path, manifest: dict) -> tuple[dict, dict[str, str], int]:
    """The files (as paths inside ``folder``), the prompts and the seed a manifest names, each
    checked for the type ``save`` writes."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not isinstance(files.get("stems"), dict) or \
            not files["stems"]:
        raise _not_a_song(folder, "manifest.json has no 'files' with a 'mix' and 'stems'")
    paths = {"mix": _inside(folder, files.get("mix"), "files['mix']"),
             "stems": {name: _inside(folder, rel, f"files['stems'][{name!r}]")
                       for name, rel in files["stems"].items()}}
    entries = manifest.get("stems")
    if not isinstance(entries, dict) or set(entries) != set(files["stems"]):
        raise _not_a_song(folder, "manifest.json's 'stems' are not the stems of its 'files'")
    prompts = {}
    for name, entry in entries.items():
        prompt = entry.get("prompt_sent") if isinstance(entry, dict) else None
        if not isinstance(prompt, str):
            raise _not_a_song(folder, f"stem {name!r} has no 'prompt_sent' text")
        prompts[name] = prompt
    seed = manifest.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise _not_a_song(folder, f"its seed is {seed!r}, not a whole number from 0 to 2**32-1")
    return paths, prompts, seed
