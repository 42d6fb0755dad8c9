"""Standard MIDI files from a plan: type 1, one track per stem, General MIDI programs.

Track 0 carries the tempo, the 4/4 time signature, the key signature and one marker per song
section; then each stem gets a track named after it, on its own channel (drums on channel 10,
``channel=9`` counting from 0), with a program change from :data:`GM_PROGRAMS`, its mix level as
CC7 volume and its pan as CC10. Any DAW opens it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from .song import Plan

__all__ = ["GM_PROGRAMS", "gm_program", "write_midi", "DRUM_CHANNEL", "midi_channels"]

DRUM_CHANNEL = 9  # MIDI channel 10
# (role, sound) -> General MIDI program, counting from 0 (0 = Acoustic Grand Piano)
GM_PROGRAMS = {
    ("bass", "acid"): 38, ("bass", "synth"): 38, ("bass", "808"): 38, ("bass", "reese"): 39,
    ("bass", "sub"): 38, ("bass", "upright"): 32, ("bass", "electric"): 33,
    ("pads", "analog"): 89, ("pads", "choir"): 91, ("pads", "glass"): 94,
    ("piano", "grand"): 0, ("piano", "epiano"): 4,
    ("lead", "saw"): 81, ("lead", "pluck"): 84, ("lead", "square"): 80, ("lead", "flute"): 73,
    ("lead", "sax"): 65, ("lead", "soft"): 79,
    ("guitar", "clean"): 27, ("guitar", "acoustic"): 25, ("guitar", "distorted"): 30,
    ("strings", "ensemble"): 48, ("strings", "pizzicato"): 45,
    ("brass", "section"): 61, ("brass", "synthbrass"): 62,
    ("organ", "drawbar"): 16, ("organ", "pipe"): 19,
    ("bells", "fm"): 14, ("bells", "mallet"): 12, ("bells", "glock"): 9,
    ("pluck", "synth"): 84, ("pluck", "harp"): 46,
}
_ROLE_DEFAULT = {"drums": 0, "bass": 38, "pads": 89, "piano": 0, "lead": 81, "guitar": 27,
                 "strings": 48, "brass": 61, "organ": 16, "bells": 14, "pluck": 84}
_KEY_SIGNATURES = {
    "major": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
    "minor": ("Cm", "C#m", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "Bbm", "Bm"),
}


def gm_program(role: str, sound: str) -> int:
    """The General MIDI program (0-127) for a role and sound."""
    return GM_PROGRAMS.get((role, sound), _ROLE_DEFAULT.get(role, 0))


def midi_channels(roles: Mapping[str, str]) -> dict[str, int]:
    """Channel (0-15) per stem: drums share channel 9 (MIDI channel 10); the others take 0-8 and
    10-15 in order, and share channels when there are more than 15 of them."""
    melodic = [c for c in range(16) if c != DRUM_CHANNEL]
    channels, index = {}, 0
    for name, role in roles.items():
        if role == "drums":
            channels[name] = DRUM_CHANNEL
        else:
            channels[name] = melodic[index % len(melodic)]
            index += 1
    return channels


def _volume_cc(gain_db: float) -> int:
    """CC7 value for a gain in dB: 100 at 0 dB, following the common 40 log10(v / 127) curve."""
    value = 100.0 * 10.0 ** (float(gain_db) / 40.0)
    return int(min(127, max(0, round(value))))


def _pan_cc(pan: float) -> int:
    return int(min(127, max(0, round(64 + 63 * float(pan)))))


def write_midi(plan: "Plan", path: str | Path,
               stems_settings: Mapping[str, Mapping] | None = None) -> Path:
    """Write ``plan`` as a type-1 Standard MIDI File at ``path``.

    Parameters
    ----------
    plan : Plan
    path : str or Path
        The file to write (``.mid``).
    stems_settings : dict of str -> dict, optional
        Per stem ``gain_db`` (-> CC7 volume) and ``pan`` in [-1, 1] (-> CC10).

    Returns
    -------
    Path
    """
    import mido

    settings = stems_settings or {}
    tpb = plan.ticks_per_beat
    midi = mido.MidiFile(type=1, ticks_per_beat=tpb)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("track_name", name="musicstems plan", time=0))
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(plan.bpm), time=0))
    conductor.append(mido.MetaMessage("time_signature", numerator=plan.meter[0],
                                      denominator=plan.meter[1], time=0))
    conductor.append(mido.MetaMessage("key_signature",
                                      key=_KEY_SIGNATURES[plan.key.mode][plan.key.tonic], time=0))
    now = 0
    bar_ticks = plan.bar_ticks
    for section in plan.sections:
        tick = section.start_bar * bar_ticks
        conductor.append(mido.MetaMessage("marker", text=section.name, time=tick - now))
        now = tick
    conductor.append(mido.MetaMessage("end_of_track", time=max(0, plan.end_tick - now)))
    midi.tracks.append(conductor)

    for name, part in plan.parts.items():
        track = mido.MidiTrack()
        channel = part.channel
        stem = settings.get(name, {})
        track.append(mido.MetaMessage("track_name", name=name, time=0))
        track.append(mido.MetaMessage("instrument_name", name=f"{part.role} ({part.sound})",
                                      time=0))
        track.append(mido.Message("program_change", channel=channel, program=part.program,
                                  time=0))
        track.append(mido.Message("control_change", channel=channel, control=7,
                                  value=_volume_cc(stem.get("gain_db", 0.0)), time=0))
        track.append(mido.Message("control_change", channel=channel, control=10,
                                  value=_pan_cc(stem.get("pan", 0.0)), time=0))
        # (tick, 0 = off before 1 = on at the same tick, pitch, velocity)
        events = []
        for note in part.notes:
            events.append((note.start, 1, note.pitch, note.velocity))
            events.append((note.start + note.duration, 0, note.pitch, 0))
        events.sort()
        now = 0
        for tick, is_on, pitch, velocity in events:
            kind = "note_on" if is_on else "note_off"
            track.append(mido.Message(kind, channel=channel, note=pitch, velocity=velocity,
                                      time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=max(0, plan.end_tick - now)))
        midi.tracks.append(track)
    path = Path(path)
    midi.save(str(path))
    return path
