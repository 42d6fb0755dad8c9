"""A song in a notebook: small players with each stem's loudness and fit, ``play`` and ``plot``.

Players embed MP3 (libsndfile's encoder through soundfile, variable bit rate; FLAC, then
16-bit WAV, where the installed libsndfile has no MP3): a 10 s, 4-stem song is a few hundred
kB of HTML instead of megabytes of WAV, and every browser plays it. A player holds at most
:data:`MAX_EMBED_S` seconds; a longer stem shows its start and says so (``song.play(name)``
plays all of it). The levels are the song's own: nothing is rescaled to full scale, as
``IPython.display.Audio`` would.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from .errors import MusicStemsError

__all__ = ["player_html", "song_html", "Player", "plot_song", "MAX_EMBED_S"]

# Two minutes of MP3 is about 1-2 MB of HTML per player: beyond that a notebook gets slow to
# open and to save, so the overview embeds the start and play() the whole stem.
MAX_EMBED_S = 120.0


def _encoded(audio: np.ndarray, sample_rate: int) -> tuple[bytes, str]:
    import soundfile

    pcm = np.clip(np.atleast_2d(audio), -1.0, 1.0).T
    for fmt, subtype, mime in (("MP3", "MPEG_LAYER_III", "audio/mpeg"),
                               ("FLAC", "PCM_16", "audio/flac"), ("WAV", "PCM_16", "audio/wav")):
        if fmt in soundfile.available_formats():
            buffer = io.BytesIO()
            try:
                soundfile.write(buffer, pcm, sample_rate, format=fmt, subtype=subtype)
            except (RuntimeError, TypeError, soundfile.LibsndfileError):
                continue  # e.g. MP3 at a rate the encoder does not take
            return buffer.getvalue(), mime
    raise MusicStemsError("soundfile can encode neither MP3, FLAC nor WAV; reinstall it "
                          "(pip install --force-reinstall soundfile).")


def player_html(audio: np.ndarray, sample_rate: int, *, max_s: float | None = MAX_EMBED_S
                ) -> str:
    """An ``<audio>`` element holding ``audio`` (channels, samples), its first ``max_s``
    seconds at most (None: all)."""
    audio = np.atleast_2d(audio)
    cut = audio.shape[-1] if max_s is None else min(audio.shape[-1], int(max_s * sample_rate))
    data, mime = _encoded(audio[..., :cut], sample_rate)
    note = ""
    if cut < audio.shape[-1]:
        note = f" <i>(first {cut / sample_rate:.0f} s; play() for all)</i>"
    return (f"<audio controls preload='none' src='data:{mime};base64,"
            f"{base64.b64encode(data).decode('ascii')}'></audio>{note}")


def _info(analysis: dict, fit: dict | None, muted: bool) -> str:
    lufs = analysis.get("integrated_lufs")
    parts = [f"{lufs:.1f} LUFS" if lufs is not None else "silent"]
    peak = analysis.get("true_peak_dbtp")
    if peak is not None:
        parts.append(f"peak {peak:.1f} dBTP")
    if fit:
        parts.append("fits the plan" if fit.get("fits") else
                     "does not fit: " + "; ".join(fit.get("reasons", [])))
    if muted:
        parts.append("muted in the mix")
    return ", ".join(parts)


def song_html(song) -> str:
    """The song as a table: the mix and every stem, each with its player, loudness and fit."""
    report, fit = song.report, song.fit
    muted = set(song.muted)
    rows = [("mix", song.mix, _info(report.get("mix", {}), None, False))]
    rows += [(name, audio, _info(report.get(name, {}), fit.get(name), name in muted))
             for name, audio in song.stems.items()]
    settings = song.manifest.get("settings", {})
    title = ", ".join(f"{k}={settings[k]}" for k in ("style", "bpm", "key")
                      if settings.get(k) is not None)
    body = "".join(f"<tr><td>{html.escape(name)}</td>"
                   f"<td>{player_html(audio, song.sample_rate)}</td>"
                   f"<td>{html.escape(info)}</td></tr>" for name, audio, info in rows)
    return (f"<div class='musicstems'><b>Composition</b> {html.escape(title)} &mdash; "
            f"{song.duration_s:.2f} s, {song.sample_rate} Hz, seed {song.seed}"
            f"<table>{body}</table></div>")


class Player:
    """One stem (or the mix) as a notebook player, all of it; ``song.play(name)``."""

    def __init__(self, name: str, audio: np.ndarray, sample_rate: int):
        self.name, self.audio, self.sample_rate = name, audio, sample_rate

    def _repr_html_(self) -> str:
        return (f"<div><b>{html.escape(self.name)}</b> "
                f"{player_html(self.audio, self.sample_rate, max_s=None)}</div>")

    def __repr__(self) -> str:
        return (f"Player({self.name!r}, {self.audio.shape[-1] / self.sample_rate:.2f} s; "
                "shown as a player in a notebook)")


def _short_term_lufs(mix: np.ndarray, sample_rate: int, window_s: float = 3.0,
                     hop_s: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """BS.1770 short-term loudness (3 s windows) every ``hop_s``: times (window centres, s)
    and LUFS (-inf where silent)."""
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)
    window, hop = int(window_s * sample_rate), int(hop_s * sample_rate)
    data = np.atleast_2d(mix).T.astype(np.float64)
    if len(data) < window:
        window = len(data)
    starts = np.arange(0, max(len(data) - window, 0) + 1, hop)
    with np.errstate(divide="ignore"):
        values = np.array([meter.integrated_loudness(data[s:s + window]) for s in starts])
    return (starts + window / 2) / sample_rate, values


def plot_song(song, *, kind: str = "waveform", figsize: tuple[float, float] | None = None):
    """Every stem on one time axis (waveform, or a spectrogram), the plan's beat grid and
    chords, and the mix's short-term loudness; see ``Composition.plot``."""
    if kind not in ("waveform", "spectrogram"):
        raise MusicStemsError(f"kind={kind!r} is not 'waveform' or 'spectrogram'.",
                              arguments={"kind": kind})
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise MusicStemsError("plot() needs matplotlib, which is not installed; pip install "
                              "'musicstems[plot]'.") from None
    names = list(song.stems)
    rows = len(names) + 1
    fig, axes = plt.subplots(rows, 1, sharex=True, squeeze=False,
                             figsize=figsize or (10, 1.3 * rows + 0.8))
    axes = axes[:, 0]
    sr, duration = song.sample_rate, song.duration_s
    plan = song.plan
    for ax, name in zip(axes, names):
        mono = np.atleast_2d(song.stems[name]).mean(axis=0)
        if kind == "waveform":
            step = max(1, len(mono) // 4000)  # min/max envelope: a few thousand points
            usable = len(mono) // step * step
            blocks = mono[:usable].reshape(-1, step)
            t = (np.arange(blocks.shape[0]) + 0.5) * step / sr
            ax.fill_between(t, blocks.min(axis=1), blocks.max(axis=1), linewidth=0)
            ax.set_ylim(-1, 1)
        else:
            with np.errstate(divide="ignore"):  # silence is -inf dB, drawn as the floor
                ax.specgram(mono, Fs=sr, NFFT=1024, noverlap=768, cmap="magma")
            ax.set_ylim(0, min(8000, sr / 2))
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        if plan is not None:
            for beat in np.arange(0, duration, plan.beat_s):
                ax.axvline(beat, color="0.85", linewidth=0.5, zorder=0)
    if plan is not None and plan.chords:
        top = axes[0]
        for bar, chord in enumerate(plan.chords):
            start = bar * plan.bar_s
            if start >= duration:
                break
            top.text(start, 1.02, chord.name, transform=top.get_xaxis_transform(), fontsize=8,
                     va="bottom")
    times, lufs = _short_term_lufs(song.mix, sr)
    axes[-1].plot(times, np.where(np.isfinite(lufs), lufs, np.nan))
    axes[-1].set_ylabel("mix\nLUFS (3 s)", rotation=0, ha="right", va="center")
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0, duration)
    fig.tight_layout()
    return fig
