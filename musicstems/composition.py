"""The result of ``compose``: the mix, every stem, and everything needed to reproduce them."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import ExportError
from .export import (MIDI_NAME, _check_flag, _check_format, estimate_song_bytes, load_manifest,
                     read_audio, save_song, write_audio)

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
        overwrite, midi = _check_flag(overwrite, "overwrite"), _check_flag(midi, "midi")
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

    def stems_settings(self) -> dict[str, dict]:
        return {name: {k: v for k, v in entry.items() if k in ("prompt", "gain_db", "pan",
                                                               "role")}
                for name, entry in self.manifest.get("stems", {}).items()}

    @classmethod
    def load(cls, directory: str | Path) -> "Composition":
        """Read a song written by :meth:`save`."""
        directory = Path(directory).expanduser()
        manifest = load_manifest(directory)
        try:
            files = manifest["files"]
            mix, sr = read_audio(directory / files["mix"])
            stems = {}
            for name, relative in files["stems"].items():
                stems[name], stem_sr = read_audio(directory / relative)
                if stem_sr != sr:
                    raise ExportError(f"stem {name!r} is at {stem_sr} Hz but the mix at {sr} Hz.")
        except KeyError as exc:
            raise ExportError(f"{str(directory)!r}: manifest.json lacks {exc}; it was not "
                              "written by Composition.save().") from exc
        plan = None
        if manifest.get("plan") is not None:
            from .plan import Plan
            plan = Plan.from_dict(manifest["plan"])
        prompts = {name: entry["prompt_sent"] for name, entry in manifest["stems"].items()}
        return cls(mix=mix, stems=stems, sample_rate=sr, prompts=prompts,
                   seed=int(manifest["seed"]), manifest=manifest, plan=plan)

    # -- notebooks ---------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        rows = [self._player_row("mix", self.mix, self.report.get("mix", {}))]
        rows += [self._player_row(name, audio, self.report.get(name, {}))
                 for name, audio in self.stems.items()]
        settings = self.manifest.get("settings", {})
        title = ", ".join(f"{k}={settings[k]}" for k in ("style", "bpm", "key") if
                          settings.get(k) is not None)
        return (f"<div class='musicstems'><b>Composition</b> {html.escape(title)} "
                f"&mdash; {self.duration_s:.2f} s, {self.sample_rate} Hz, seed {self.seed}"
                "<table>" + "".join(rows) + "</table></div>")

    def _player_row(self, name: str, audio: np.ndarray, analysis: dict) -> str:
        # Our own WAV bytes, not IPython.display.Audio: that one rescales every clip to full
        # scale, which would hide the real levels of the stems.
        import soundfile

        buffer = io.BytesIO()
        pcm = np.clip(np.atleast_2d(audio), -1.0, 1.0).T
        soundfile.write(buffer, pcm, self.sample_rate, format="WAV", subtype="PCM_16")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        lufs = analysis.get("integrated_lufs")
        centroid = analysis.get("spectral_centroid_hz")
        info = f"{lufs:.1f} LUFS" if lufs is not None else "silent"
        if centroid is not None:
            info += f", centroid {centroid:.0f} Hz"
        return (f"<tr><td>{html.escape(name)}</td><td><audio controls preload='none' "
                f"src='data:audio/wav;base64,{data}'></audio></td>"
                f"<td>{html.escape(info)}</td></tr>")

    def __repr__(self) -> str:
        return (f"Composition(stems={list(self.stems)}, duration_s={self.duration_s:.2f}, "
                f"sample_rate={self.sample_rate}, seed={self.seed})")
