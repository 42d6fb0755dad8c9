"""One shared musical plan per song: tempo, key, meter, chords, form, and every stem's notes.

``make_plan(spec)`` reads the validated :class:`~musicstems.spec.SongSpec` and decides, in this
order and each from its own seeded generator (so adding a stem never changes the others):

1. the genre, from the style (then the prompts): :func:`musicstems.plan.genres.genre_of`;
2. tempo: ``spec.bpm``, else the genre's (techno 128, house 124, hip hop 90, ambient 80,
   drum and bass 174 ...; 120 when no genre is named);
3. key: ``spec.key``, else a mode from mood words ("dark" -> minor, "happy" -> major) or the
   genre, and a tonic drawn from the seed;
4. meter 4/4 and the song form: sections by bar, scaled to ``spec.duration_s``;
5. chords, one per bar: a diatonic progression for verses and another for choruses/drops;
6. per stem: role, sound and texture from its prompt (:func:`musicstems.plan.roles.choose_style`),
   then its notes (:func:`musicstems.plan.parts.write_part`).

It is cheap (no audio is rendered and no model loaded) and deterministic: the same spec and seed give the same plan. Both
backends get it: the sketch backend renders its notes; MusicGen uses its tempo and key.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import MusicStemsError
from ..spec import Key, parse_key
from .genres import GENRES, Genre, genre_of, mood_mode
from .harmony import Chord, Section, choose_progression, song_form
from .midi import gm_program, midi_channels, write_midi
from .parts import write_part
from .roles import StemStyle, choose_style
from .score import TICKS_PER_BEAT, Note, Score

__all__ = ["Plan", "Part", "make_plan", "redraw_part", "PLAN_FORMAT"]

PLAN_FORMAT = 1
METER = (4, 4)


def _stable_hash(text: str) -> int:
    """A hash that is the same in every process (Python's ``hash`` of a str is not)."""
    return zlib.crc32(text.encode("utf-8"))


def _rng(seed: int, *labels: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), *(_stable_hash(label) for label in labels)])


@dataclass(frozen=True)
class Part:
    """One stem's share of the plan.

    Attributes
    ----------
    name, prompt : str
        The stem's name and its own prompt.
    style : StemStyle
        Role, sound, texture, density, brightness, register, hypnotic, movement.
    program : int
        General MIDI program, 0-127 (ignored on the drum channel).
    channel : int
        MIDI channel 0-15; 9 (channel 10) for drums.
    notes : tuple of Note
        ``(start, duration, pitch, velocity)`` in ticks (:data:`TICKS_PER_BEAT` per beat); drum
        pitches are General MIDI percussion keys.
    """

    name: str
    prompt: str
    style: StemStyle
    program: int
    channel: int
    notes: tuple[Note, ...]

    @property
    def role(self) -> str:
        return self.style.role

    @property
    def sound(self) -> str:
        return self.style.sound

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, **self.style.to_dict(), "program": self.program,
                "channel": self.channel, "num_notes": len(self.notes),
                "notes": " ".join(f"{n.start},{n.duration},{n.pitch},{n.velocity}"
                                  for n in self.notes)}

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> "Part":
        style = StemStyle(role=str(data["role"]), sound=str(data["sound"]),
                          texture=str(data["texture"]), density=int(data["density"]),
                          brightness=float(data["brightness"]), register=int(data["register"]),
                          hypnotic=bool(data["hypnotic"]), movement=bool(data["movement"]),
                          matched=bool(data.get("matched", True)))
        notes = tuple(Note(*(int(v) for v in group.split(",")))
                      for group in str(data.get("notes", "")).split())
        return cls(name, str(data.get("prompt", "")), style, int(data["program"]),
                   int(data["channel"]), notes)


@dataclass(frozen=True)
class Plan:
    """The song's shared musical plan.

    Attributes
    ----------
    bpm : float
        Tempo in beats (quarter notes) per minute.
    key : Key
    meter : tuple of int
        ``(4, 4)``.
    genre : str
        The genre whose habits shaped the plan (``"default"`` when none was named).
    chords : tuple of Chord
        One chord per bar, ``num_bars`` of them.
    sections : tuple of Section
        The song form, covering every bar.
    parts : dict of str -> Part
        Per stem, in the song's stem order: role, sound, MIDI program and channel, notes.
    reference_stem : str or None
        The most rhythmic stem (drums first), for beat alignment; None when no stem has at least
        two onsets per bar.
    duration_s : float
        Length of the song; notes end by then.
    seed : int
    ticks_per_beat : int

    Examples
    --------
    >>> from musicstems.spec import validate_compose_args
    >>> spec = validate_compose_args({"bass": "deep rolling acid bassline"}, style="techno",
    ...                              duration_s=8, seed=1, backend="sketch")
    >>> plan = make_plan(spec)
    >>> plan.bpm, plan.roles
    (128.0, {'bass': 'bass'})
    """

    bpm: float
    key: Key
    meter: tuple[int, int]
    genre: str
    chords: tuple[Chord, ...]
    sections: tuple[Section, ...]
    parts: dict[str, Part]
    reference_stem: str | None
    duration_s: float
    seed: int
    ticks_per_beat: int = TICKS_PER_BEAT

    # -- views ---------------------------------------------------------------------------------
    @property
    def roles(self) -> dict[str, str]:
        """Stem name -> role ("drums", "bass", "pads", ...)."""
        return {name: part.role for name, part in self.parts.items()}

    @property
    def notes(self) -> dict[str, tuple[Note, ...]]:
        """Stem name -> its notes, in ticks."""
        return {name: part.notes for name, part in self.parts.items()}

    @property
    def num_bars(self) -> int:
        return len(self.chords)

    @property
    def beat_s(self) -> float:
        return 60.0 / self.bpm

    @property
    def bar_s(self) -> float:
        return self.meter[0] * 4 / self.meter[1] * self.beat_s

    @property
    def bar_ticks(self) -> int:
        return self.meter[0] * self.ticks_per_beat * 4 // self.meter[1]

    @property
    def end_tick(self) -> int:
        return int(round(self.duration_s / self.beat_s * self.ticks_per_beat))

    def seconds(self, ticks: float) -> float:
        """Ticks -> seconds at the plan's tempo."""
        return float(ticks) * self.beat_s / self.ticks_per_beat

    def chord_at(self, time_s: float) -> Chord:
        """The chord sounding at ``time_s`` seconds."""
        bar = int(min(self.num_bars - 1, max(0, time_s // self.bar_s)))
        return self.chords[bar]

    # -- files ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; :meth:`from_dict` reads them back. Notes are one compact string
        per stem: ``"start,duration,pitch,velocity"`` groups (ticks) separated by spaces."""
        table = {}
        for chord in self.chords:
            table.setdefault(chord.name, chord.to_dict())
        return {
            "format": PLAN_FORMAT, "bpm": self.bpm, "key": self.key.name,
            "meter": list(self.meter), "genre": self.genre, "seed": self.seed,
            "duration_s": self.duration_s, "ticks_per_beat": self.ticks_per_beat,
            "num_bars": self.num_bars, "chords": [c.name for c in self.chords],
            "chord_table": table, "sections": [s.to_dict() for s in self.sections],
            "reference_stem": self.reference_stem,
            "stems": {name: part.to_dict() for name, part in self.parts.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Plan":
        """Rebuild a plan written by :meth:`to_dict` (e.g. from a song's manifest.json)."""
        try:
            if int(data.get("format", PLAN_FORMAT)) != PLAN_FORMAT:
                raise MusicStemsError(f"plan format {data.get('format')!r} is not known to this "
                                      f"musicstems (it reads format {PLAN_FORMAT}); upgrade "
                                      "musicstems to read this song's plan.")
            table = {name: Chord.from_dict(c) for name, c in data["chord_table"].items()}
            return cls(
                bpm=float(data["bpm"]), key=parse_key(str(data["key"]), argument="plan key"),
                meter=tuple(int(v) for v in data["meter"]), genre=str(data["genre"]),
                chords=tuple(table[name] for name in data["chords"]),
                sections=tuple(Section.from_dict(s) for s in data["sections"]),
                parts={name: Part.from_dict(name, p) for name, p in data["stems"].items()},
                reference_stem=data.get("reference_stem"), duration_s=float(data["duration_s"]),
                seed=int(data["seed"]), ticks_per_beat=int(data["ticks_per_beat"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, MusicStemsError):
                raise
            raise MusicStemsError(f"the plan could not be read ({exc!r}); pass the dict that "
                                  "Plan.to_dict() wrote (manifest.json's 'plan').") from exc

    def to_midi(self, path: str | Path, stems_settings: Mapping[str, Mapping] | None = None
                ) -> Path:
        """Write a type-1 MIDI file: a tempo/key/markers track, then one track per stem with its
        General MIDI program (drums on channel 10) and its ``gain_db`` / ``pan`` as CC7 / CC10.
        See :func:`musicstems.plan.midi.write_midi`."""
        return write_midi(self, path, stems_settings)


def _choose_key(spec, genre: Genre) -> Key:
    if spec.key is not None:
        return spec.key
    rng = _rng(spec.seed, "key")
    mode = mood_mode(spec.style, *(s.prompt for s in spec.stems)) or genre.mode or \
        ("minor" if rng.random() < 0.5 else "major")
    return Key(int(rng.integers(12)), mode)


def _chords(key: Key, genre: Genre, sections: tuple[Section, ...], seed: int
            ) -> tuple[Chord, ...]:
    rng = _rng(seed, "harmony")
    verse = choose_progression(key, genre, rng)
    chorus = choose_progression(key, genre, rng, avoid=tuple(c.degree for c in verse))
    chords = []
    for section in sections:
        progression = chorus if section.name in ("chorus", "drop") else verse
        for bar in range(section.num_bars):
            chords.append(progression[(bar // genre.bars_per_chord) % len(progression)])
    return tuple(chords)


def _reference_stem(parts: dict[str, Part], num_bars: int) -> str | None:
    for name, part in parts.items():
        if part.role == "drums":
            return name
    best, best_rate = None, 0.0
    for name, part in parts.items():
        rate = len({n.start for n in part.notes}) / max(1, num_bars)
        if rate > best_rate:
            best, best_rate = name, rate
    return best if best_rate >= 2.0 else None


def make_plan(spec) -> Plan:
    """The shared musical plan of a validated song spec.

    Parameters
    ----------
    spec : SongSpec
        From :func:`musicstems.spec.validate_compose_args`; reads ``stems``, ``style``, ``bpm``,
        ``key``, ``duration_s`` and ``seed``.

    Returns
    -------
    Plan
        The same for the same spec, in every process.
    """
    prompts = [s.prompt for s in spec.stems]
    genre = genre_of(spec.style, *prompts)
    bpm = float(spec.bpm) if spec.bpm is not None else float(genre.bpm)
    key = _choose_key(spec, genre)
    beat_s = 60.0 / bpm
    bar_s = METER[0] * beat_s
    num_bars = max(1, math.ceil(spec.duration_s / bar_s - 1e-9))
    sections = song_form(num_bars, genre)
    chords = _chords(key, genre, sections, spec.seed)
    end_tick = int(round(spec.duration_s / beat_s * TICKS_PER_BEAT))
    score = Score(key=key, genre=genre, chords=chords, sections=sections, end_tick=end_tick)

    styles: dict[str, StemStyle] = {}
    for stem in spec.stems:
        styles[stem.name] = choose_style(stem.prompt, name=stem.name, style=spec.style,
                                         genre=genre, taken=tuple(s.role for s in styles.values()))
    channels = midi_channels({name: st.role for name, st in styles.items()})
    parts = {}
    for stem in spec.stems:
        style = styles[stem.name]
        # a stem's own seed (Stem.seed, e.g. from regenerate) redraws its part alone
        part_seed = spec.seed if stem.seed is None else stem.seed
        notes = write_part(style, score, _rng(part_seed, "part", stem.name, stem.prompt))
        parts[stem.name] = Part(stem.name, stem.prompt, style, gm_program(style.role, style.sound),
                                channels[stem.name], notes)
    return Plan(bpm=bpm, key=key, meter=METER, genre=genre.name, chords=chords, sections=sections,
                parts=parts, reference_stem=_reference_stem(parts, num_bars),
                duration_s=float(spec.duration_s), seed=int(spec.seed))



def redraw_part(plan: Plan, spec, name: str) -> Plan:
    """``plan`` with stem ``name``'s part written again from ``spec``'s stem of that name (its
    prompt and its own seed), over the same score: tempo, key, chords, sections and every
    other part stay as they are (``Composition.regenerate``).

    The part is drawn as :func:`make_plan` draws it (its role read with the roles of the stems
    before it taken), so with an unchanged prompt it equals ``make_plan(spec)``'s part.
    """
    stems = list(spec.stems)
    index = [s.name for s in stems].index(name)
    stem = stems[index]
    genre = GENRES.get(plan.genre) or genre_of(spec.style, *(s.prompt for s in stems))
    score = Score(key=plan.key, genre=genre, chords=plan.chords, sections=plan.sections,
                  end_tick=plan.end_tick)
    taken = tuple(plan.parts[s.name].role for s in stems[:index] if s.name in plan.parts)
    style = choose_style(stem.prompt, name=name, style=spec.style, genre=genre, taken=taken)
    roles = {**plan.roles, name: style.role}
    part_seed = spec.seed if stem.seed is None else stem.seed
    notes = write_part(style, score, _rng(part_seed, "part", name, stem.prompt))
    part = Part(name, stem.prompt, style, gm_program(style.role, style.sound),
                midi_channels(roles)[name], notes)
    parts = {key: (part if key == name else value) for key, value in plan.parts.items()}
    return replace(plan, parts=parts)  # the grid stem stays the one the song was aligned to
