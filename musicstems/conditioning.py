"""What MusicGen hears of the plan besides words: a primer of audio, and a melody's chroma.

Both are plain numpy, made from the song's :class:`~musicstems.plan.Plan` by the sketch synth
(:mod:`musicstems.synth`), before any model runs; the MusicGen backend encodes them
(``backends/primer.py``, ``backends/melody.py``).

**Primer.** Each stem is generated as the continuation of a short count-in rendered at the
plan's tempo and key: the stem's own planned part (its first bar: the drums' groove, the bass's
roots, the pads' chords), else a click on every beat for drums or the song's first chord for a
tonal stem when the part is silent there. Its length is :func:`primer_beats` whole beats --
the bar's last two at 120 bpm (one at 60 bpm and below, three from 180 bpm), never more than
:data:`PRIMER_MAX_S` but for a single beat below 60 bpm -- ending exactly on a downbeat, so the song's first sample, right
after the primer, falls on the plan's beat 1. Why at most 1 s: two beats are a tempo to
continue and a chord a key, while the primer's cost stays small -- every later step attends
over its cached positions, and it is encoded, run through the decoder, decoded and cut off
again: a 2 s bar cost about 21-24 % of a 10 s song's generation, 1 s 6-8 %
(benchmarks/RESULTS.md). The primer window is a whole number of codec frames; the leading fraction
of a frame before the first beat is silence.

**Chroma** (MusicGen-Melody): with a melody model each tonal stem is conditioned on the
chroma of its planned part (``harmony="plan"``) or of the user's file (``Stem(melody=...)``),
over the decoder's own timeline -- the primer, then the song -- so chroma frame t is heard at
audio time t. :func:`chroma` computes it as transformers' ``MusicgenMelodyFeatureExtractor``
does (which needs torchaudio): a power STFT of 16384 points every 4096 samples at 32 kHz,
librosa's chroma filters (the extractor's are a copy of them), and per frame a one-hot of the
loudest pitch class -- so a silent frame reads as C, as it does there. Drums never hear a
chroma: their rows get the model's own "no melody" input, as guidance's unconditional half.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PRIMER_MAX_S", "Primer", "primer_beats", "render_primers", "check_conditioning",
           "is_melody_model", "stem_roles", "chroma", "Melody", "melodies"]

#: The longest primer, in seconds (see the module's docstring for why).
PRIMER_MAX_S = 1.0
_CLICK_KEY, _ACCENT_KEY = 42, 37  # GM closed hat on the beats, rim shot on the downbeat
_QUIET = 1e-4  # peak below which a rendered part counts as silent (-80 dBFS)


@dataclass(frozen=True)
class Primer:
    """One stem's primer: ``audio`` (channels, samples) float32 at the model's rate; ``source``
    says what it is ("plan part", "click", "first chord")."""

    audio: np.ndarray
    source: str
    beats: int

    def report(self, sample_rate: int) -> dict:
        return {"source": self.source, "beats": self.beats,
                "seconds": round(self.audio.shape[-1] / sample_rate, 6)}


def primer_beats(plan) -> int:
    """Whole beats of the primer: the bar's beats, fewer when a bar is longer than
    :data:`PRIMER_MAX_S`, at least one."""
    return max(1, min(plan.meter[0], math.floor(PRIMER_MAX_S / plan.beat_s + 1e-9)))


def _click(plan, beats: int, sample_rate: int, num_samples: int) -> np.ndarray:
    from .synth.drums import drum_hit

    out = np.zeros((2, num_samples))
    beat = plan.beat_s * sample_rate
    for index in range(beats):
        downbeat = (plan.meter[0] - beats + index) % plan.meter[0] == 0
        hit = drum_hit(_ACCENT_KEY if downbeat else _CLICK_KEY, "909", sample_rate)
        start = num_samples - round((beats - index) * beat)
        stop = min(num_samples, start + hit.shape[-1])
        out[:, start:stop] += (1.0 if downbeat else 0.7) * hit[:, :stop - start]
    return out


def _first_chord(part, plan, sample_rate: int, num_samples: int) -> np.ndarray:
    from .synth.voices import render_note

    chord = plan.chords[0]
    octave = 36 if part.role == "bass" else 60
    out = np.zeros((2, num_samples))
    for pc in chord.pitch_classes[:1] if part.role == "bass" else chord.pitch_classes:
        note = render_note(part.role, part.sound, octave + pc, num_samples / sample_rate, 96,
                           part.style.brightness, sample_rate)
        out += note[:, :num_samples] if note.shape[-1] >= num_samples else np.pad(
            note, ((0, 0), (0, num_samples - note.shape[-1])))
    return out


def render_primers(plan, names, sample_rate: int, hop: int) -> dict[str, Primer]:
    """Every stem's primer, all of one length.

    Parameters
    ----------
    plan : Plan
    names : sequence of str
        Stems of ``plan`` to make primers for.
    sample_rate : int > 0, Hz
        The model's rate.
    hop : int > 0, samples
        Samples per codec frame (640 at 32 kHz, 50 frames/s): the primer is a whole number of
        frames, so cutting it off the output keeps every length exact to the sample.

    Returns
    -------
    dict of str -> Primer
        ``audio`` [shape=(2, frames * hop)], float32, peak -6 dBFS: :func:`primer_beats` beats
        that end at the window's end, on a downbeat.
    """
    from .synth.render import render_part

    beats = primer_beats(plan)
    beat_samples = beats * plan.beat_s * sample_rate
    frames = math.ceil(beat_samples / hop - 1e-9)
    window = frames * hop
    sounding = round(beat_samples)  # the beats; the rest of the window before them is silence
    bar = round(plan.bar_s * sample_rate)
    primers = {}
    for name in names:
        part = plan.parts[name]
        # the part's first bar, its last `beats` beats: they end on the next downbeat
        audio = render_part(part, plan, sample_rate, bar)[:, bar - sounding:].astype(np.float64)
        source = "plan part"
        if not np.max(np.abs(audio), initial=0.0) > _QUIET:
            source = "click" if part.role == "drums" else "first chord"
            audio = (_click(plan, beats, sample_rate, sounding) if part.role == "drums"
                     else _first_chord(part, plan, sample_rate, sounding))
        peak = np.max(np.abs(audio), initial=0.0)
        if peak > 0:
            audio = audio * (0.5 / peak)
        out = np.zeros((2, window), dtype=np.float32)
        out[:, window - sounding:] = audio
        primers[name] = Primer(audio=out, source=source, beats=beats)
    return primers


# MusicgenMelodyFeatureExtractor's numbers (facebook/musicgen-melody's preprocessor_config)
CHROMA_RATE, CHROMA_FFT, CHROMA_HOP, NUM_CHROMA = 32000, 16384, 4096, 12


def chroma(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The chroma MusicGen-Melody is conditioned on, as its feature extractor makes it.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples) or (samples,)]
        Mixed to mono (the extractor's mean of the channels).
    sample_rate : int > 0, Hz
        Resampled to 32 kHz when it differs.

    Returns
    -------
    np.ndarray [shape=(frames, 12)], float32
        One-hot per frame (frame t centred on sample ``t * 4096`` at 32 kHz, 7.8 frames/s):
        the loudest pitch class, C first; ``input_features`` is a batch of these.
    """
    import librosa

    mono = np.asarray(audio, dtype=np.float32)
    mono = mono.mean(axis=0) if mono.ndim == 2 else mono
    if sample_rate != CHROMA_RATE:
        mono = librosa.resample(mono, orig_sr=sample_rate, target_sr=CHROMA_RATE)
    if mono.size < CHROMA_FFT:  # the extractor's own padding of a short input
        pad = CHROMA_FFT - mono.size
        mono = np.pad(mono, (pad // 2, pad - pad // 2))
    power = np.abs(librosa.stft(mono, n_fft=CHROMA_FFT, hop_length=CHROMA_HOP, window="hann",
                                center=True, pad_mode="reflect")) ** 2
    filters = librosa.filters.chroma(sr=CHROMA_RATE, n_fft=CHROMA_FFT, tuning=0.0,
                                     n_chroma=NUM_CHROMA)
    loudest = (filters @ power).argmax(axis=0)
    out = np.zeros((loudest.size, NUM_CHROMA), dtype=np.float32)
    out[np.arange(loudest.size), loudest] = 1.0
    return out


@dataclass(frozen=True)
class Melody:
    """One stem's chroma (frames, 12), or None: the model's "no melody" (drums, harmony off);
    ``source`` says which ("plan part", "file", None)."""

    chroma: np.ndarray | None
    source: str | None
    path: str | None = None

    def report(self) -> dict | None:
        if self.chroma is None:
            return None
        frames = self.chroma.shape[0]
        return {"source": self.source, **({"file": self.path} if self.path else {}),
                "frames": frames, "seconds": round(frames * CHROMA_HOP / CHROMA_RATE, 6)}


def melodies(plan, stems, harmony: str | None, sample_rate: int, num_samples: int,
             primers: dict[str, np.ndarray] | None) -> dict[str, Melody]:
    """Every stem's chroma over the decoder's timeline: its primer (if any), then
    ``num_samples`` of the song -- its planned part (``harmony="plan"``) or its melody file
    (read, mixed to mono, looped or cut to the song's length). Drums, and tonal stems with
    neither, get ``Melody(None, None)``. For a melody model, so ``harmony="auto"`` is "plan".
    """
    from .export import read_audio
    from .synth.render import render_part

    planned = harmony in ("plan", "auto")
    out = {}
    for stem in stems:
        part = plan.parts[stem.name]
        if part.role == "drums" or (stem.melody is None and not planned):
            out[stem.name] = Melody(None, None)
            continue
        if stem.melody is not None:
            import librosa

            audio, rate = read_audio(Path(stem.melody).expanduser())
            mono = audio.mean(axis=0)
            if rate != sample_rate:
                mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate)
            song = np.resize(mono, num_samples)  # looped when shorter, as the model tiles
            source, path = "file", str(stem.melody)
        else:
            song = render_part(part, plan, sample_rate, num_samples).mean(axis=0)
            source, path = "plan part", None
        before = np.zeros(0) if primers is None else primers[stem.name].mean(axis=0)
        out[stem.name] = Melody(chroma(np.concatenate([before, song]), sample_rate), source,
                                path)
    return out


def is_melody_model(model: str) -> bool:
    """Whether ``model`` (a folder or a hub id) is a MusicGen-Melody, from its config.json --
    read from the folder or the local Hugging Face cache, no network and no torch -- or, for a
    hub id not cached yet, from its name."""
    import json

    from .backends.hub import config_path

    config = config_path(model)
    if config is not None:
        with open(config, encoding="utf-8") as file:
            return json.load(file).get("model_type") == "musicgen_melody"
    return "musicgen-melody" in str(model).lower()


def stem_roles(stems, style: str | None) -> dict[str, str]:
    """Each stem's instrument role, as :func:`~musicstems.plan.make_plan` chooses it."""
    from .plan.genres import genre_of
    from .plan.roles import choose_style

    genre = genre_of(style, *(s.prompt for s in stems))
    roles: dict[str, str] = {}
    for stem in stems:
        roles[stem.name] = choose_style(stem.prompt, name=stem.name, style=style, genre=genre,
                                        taken=tuple(roles.values())).role
    return roles


def check_conditioning(stems, settings) -> None:
    """Check ``harmony`` and every stem's ``melody`` against the backend and the model, once
    the settings are valid on their own: ``harmony="plan"`` and ``melody=`` need a melody
    model (read from its config, no torch), ``melody=`` a tonal stem and a file that exists.
    Called by :func:`~musicstems.spec.validate_compose_args`, before any model loads.

    Raises
    ------
    MusicStemsError
        Naming the setting or the stem, the value and the fix.
    """
    from pathlib import Path

    from .errors import MusicStemsError

    backend, model = settings["backend"], settings["model"]
    melody_model = backend == "musicgen" and is_melody_model(model)
    harmony = settings["harmony"]
    melodies = {s.name: s.melody for s in stems if s.melody is not None}
    if not melody_model and (harmony == "plan" or melodies):
        if harmony == "plan":
            what, arguments = "harmony='plan'", {"harmony": harmony}
        else:
            name = next(iter(melodies))
            what, arguments = f"stem {name!r} melody={melodies[name]!r}", {}
        where = (f"model={model!r} is not one" if backend == "musicgen" else
                 "backend='sketch' plays the plan itself")
        raise MusicStemsError(
            f"{what} needs a melody model and {where}; pass model='facebook/musicgen-melody' "
            "(musicstems.testing.tiny_musicgen(path, melody=True) writes a tiny one), or "
            + ("harmony=None." if harmony == "plan" else "leave melody out."),
            arguments={**arguments, "model": model, "backend": backend})
    if melodies:
        roles = stem_roles(stems, settings["style"])
        for name, melody in melodies.items():
            if roles[name] == "drums":
                raise MusicStemsError(f"stem {name!r} is drums and has melody={melody!r}; "
                                      "drums take no melody: give it to a tonal stem.")
            if not isinstance(melody, (str, Path)) or not Path(melody).expanduser().is_file():
                raise MusicStemsError(f"stem {name!r} has melody={melody!r}, which is not a "
                                      "file on this machine; pass the path of an audio file "
                                      "(wav, flac, ogg, mp3).")
            import soundfile

            try:
                soundfile.info(str(Path(melody).expanduser()))
            except (RuntimeError, soundfile.LibsndfileError) as exc:
                raise MusicStemsError(f"stem {name!r} has melody={str(melody)!r}, which is "
                                      f"not audio soundfile can read ({exc}); pass a wav, "
                                      "flac, ogg or mp3 file.") from exc
