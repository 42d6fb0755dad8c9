"""The shared musical plan: tempo, key, chords, form, roles and notes are musically valid,
deterministic, survive JSON, and export to a MIDI file a DAW (and pretty_midi) reads back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from musicstems.errors import MusicStemsError
from musicstems.plan.harmony import diatonic_chord
from musicstems.plan.score import STEP
from musicstems.plan import Plan, make_plan
from musicstems.plan.roles import choose_style
from musicstems.spec import Key, validate_compose_args

BAND = {
    "drums": "punchy four-on-the-floor techno drums with crisp hi-hats",
    "bass": "deep rolling acid bassline",
    "pads": "warm evolving analog pads",
    "lead": "hypnotic plucked synth lead melody",
}
# one song per genre family, so every bass and chord writer is exercised
STYLES = ["dark berlin techno", "deep house", "lo-fi hip hop", "jazz", "rock", "trap",
          "drum and bass", "ambient", "funk", "pop"]
EVERY_TEXTURE = {
    "drums": "drums", "bass": "bassline", "pads": "lush pads", "keys": "piano chords",
    "gtr": "strummed acoustic guitar", "arp": "arpeggiated pluck", "lead": "synth lead melody",
    "horns": "brass stabs", "organ": "hammond organ", "bells": "glockenspiel melody",
    "strings": "string ensemble",
}


def spec_of(stems=None, **kwargs):
    kwargs.setdefault("duration_s", 20.0)
    kwargs.setdefault("seed", 3)
    return validate_compose_args(stems or BAND, backend="sketch", progress=False, **kwargs)


def bar_of(plan: Plan, tick: int) -> int:
    return min(plan.num_bars - 1, max(0, tick) // plan.bar_ticks)


@pytest.mark.parametrize("style, bpm", [("dark berlin techno", 128), ("deep house", 122),
                                        ("house", 124), ("hip hop", 90), ("ambient", 80),
                                        ("drum and bass", 174), ("drum & bass", 174),
                                        (None, 120), ("something unheard of", 120)])
def test_tempo_defaults_from_style(style, bpm):
    # prompts that name no genre: the style alone decides (a prompt's "techno" would count)
    assert make_plan(spec_of({"drums": "drums", "bass": "bassline"}, style=style)).bpm == bpm
    assert make_plan(spec_of({"drums": "hip hop drums"})).bpm == 90  # ... when there is no style


def test_given_tempo_and_key_win():
    plan = make_plan(spec_of(style="techno", bpm=100, key="F# minor"))
    assert plan.bpm == 100.0
    assert plan.key == Key(6, "minor")
    assert plan.meter == (4, 4)


def test_key_is_drawn_from_the_seed_and_the_mood():
    keys = {make_plan(spec_of(style="pop", seed=s)).key for s in range(12)}
    assert len({k.tonic for k in keys}) > 3  # the seed spreads the tonic
    assert {k.mode for k in keys} == {"major"}  # pop defaults to major
    assert make_plan(spec_of(style="dark sad pop")).key.mode == "minor"  # mood words win
    assert make_plan(spec_of(style="techno", seed=5)).key == \
        make_plan(spec_of(style="techno", seed=5)).key


@pytest.mark.parametrize("prompt, role", [
    ("deep rolling acid bassline", "bass"),
    ("warm evolving analog pads", "pads"),
    ("punchy four-on-the-floor techno drums with crisp hi-hats", "drums"),
    ("hypnotic plucked synth lead melody", "lead"),
    ("bass drum and claps", "drums"),
    ("felt piano chords", "piano"),
    ("rhodes electric piano", "piano"),
    ("strummed acoustic guitar", "guitar"),
    ("lush string section", "strings"),
    ("brass section stabs", "brass"),
    ("hammond organ", "organ"),
    ("twinkling glockenspiel", "bells"),
    ("harp plucks", "pluck"),
    ("808 sub bass", "bass"),
])
def test_role_from_prompt(prompt, role):
    assert choose_style(prompt).role == role


def test_sound_texture_and_feel_from_prompt_and_style():
    assert choose_style("deep rolling acid bassline").sound == "acid"
    assert choose_style("bassline", style="trap").sound == "808"  # the style colours the sound
    assert choose_style("bassline", style="jazz").sound == "upright"
    assert choose_style("piano arpeggio").texture == "arp"
    assert choose_style("sparse minimal piano").density < choose_style("busy piano").density
    assert choose_style("dark pads").brightness < 0 < choose_style("bright pads").brightness


def test_unmatched_prompts_get_the_name_then_the_missing_roles():
    plan = make_plan(spec_of({"drums": "tight and punchy", "x": "something", "y": "else",
                              "z": "entirely"}))
    assert plan.roles == {"drums": "drums", "x": "pads", "y": "bass", "z": "lead"}
    assert plan.to_dict()["stems"]["x"]["matched"] is False


def test_roles_reference_stem_and_channels():
    plan = make_plan(spec_of())
    assert plan.roles == {"drums": "drums", "bass": "bass", "pads": "pads", "lead": "lead"}
    assert plan.reference_stem == "drums"
    assert plan.parts["drums"].channel == 9  # MIDI channel 10
    assert len({p.channel for p in plan.parts.values()}) == 4
    no_drums = make_plan(spec_of({"bass": BAND["bass"], "pads": BAND["pads"]}))
    assert no_drums.reference_stem == "bass"  # the busiest part
    only_pads = make_plan(spec_of({"pads": BAND["pads"]}))
    assert only_pads.reference_stem is None  # one chord a bar is no beat to align to


def test_same_spec_same_plan_and_stems_do_not_disturb_each_other():
    assert make_plan(spec_of()) == make_plan(spec_of())
    assert make_plan(spec_of(seed=4)).notes != make_plan(spec_of(seed=3)).notes
    more = make_plan(spec_of({**BAND, "bells": "glockenspiel"}))
    assert all(more.notes[name] == notes for name, notes in make_plan(spec_of()).notes.items())


@pytest.mark.parametrize("style", STYLES)
def test_form_and_chords_cover_the_song_in_key(style):
    plan = make_plan(spec_of(EVERY_TEXTURE, style=style, duration_s=40.0))
    assert plan.num_bars == int(np.ceil(40.0 / plan.bar_s - 1e-9))
    starts = [s.start_bar for s in plan.sections]
    assert starts[0] == 0 and sum(s.num_bars for s in plan.sections) == plan.num_bars
    assert starts == sorted(starts)
    scale = set(plan.key.scale())
    for chord in plan.chords:
        assert set(chord.pitch_classes) <= scale, (chord.name, plan.key.name)
    end = plan.end_tick
    for name, notes in plan.notes.items():
        assert notes, name
        assert all(0 <= n.start and n.start + n.duration <= end and n.duration > 0
                   for n in notes), name


@pytest.mark.parametrize("style", STYLES)
def test_bass_follows_the_roots(style):
    plan = make_plan(spec_of(EVERY_TEXTURE, style=style, duration_s=40.0))
    scale = set(plan.key.scale())
    notes = plan.notes["bass"]
    roots_or_fifths = 0
    for note in notes:
        chord = plan.chords[bar_of(plan, note.start)]
        assert note.pitch % 12 in scale  # chord tones and passing tones are all in key
        if note.start % plan.bar_ticks == 0:
            assert note.pitch % 12 == chord.root  # every downbeat is the root
        roots_or_fifths += note.pitch % 12 in (chord.root, chord.pitch_classes[2])
    assert roots_or_fifths / len(notes) >= 0.5  # passing tones pass; they do not take over


@pytest.mark.parametrize("style", STYLES)
def test_chord_parts_play_chord_tones(style):
    plan = make_plan(spec_of(EVERY_TEXTURE, style=style, duration_s=40.0))
    for name in ("pads", "keys", "gtr", "arp", "horns", "organ", "strings"):
        for note in plan.notes[name]:
            chord = plan.chords[bar_of(plan, note.start)]
            # a strum's later strings start up to 4 x 14 ticks after the bar line
            late = plan.chords[bar_of(plan, note.start - 60)] if name == "gtr" else chord
            assert note.pitch % 12 in set(chord.pitch_classes) | set(late.pitch_classes), \
                (name, note, chord.name)


@pytest.mark.parametrize("style", STYLES)
def test_melody_fits_the_scale_and_lands_on_chord_tones(style):
    plan = make_plan(spec_of(EVERY_TEXTURE, style=style, duration_s=40.0))
    scale = set(plan.key.scale())
    for name in ("lead", "bells"):
        notes = plan.notes[name]
        assert notes
        for note in notes:
            assert note.pitch % 12 in scale
            if note.start % (8 * STEP) == 0:  # beats 1 and 3
                assert note.pitch % 12 in plan.chords[bar_of(plan, note.start)].pitch_classes


def test_straight_drums_sit_on_the_sixteenth_grid():
    plan = make_plan(spec_of(style="techno"))
    drums = plan.notes["drums"]
    assert all(n.start % STEP == 0 for n in drums)
    kicks = {n.start for n in drums if n.pitch == 36}
    beats_with_kick = sum(b * 480 in kicks for b in range(plan.num_bars * 4))
    assert beats_with_kick >= 0.7 * plan.num_bars * 4  # four on the floor, breaks aside


def test_swing_delays_the_offbeat_sixteenths():
    plan = make_plan(spec_of({"drums": "drums"}, style="lo-fi hip hop"))
    late = {n.start % STEP for n in plan.notes["drums"]}
    assert late == {0, round(0.25 * STEP)}


def test_json_round_trip():
    plan = make_plan(spec_of(EVERY_TEXTURE, style="jazz"))
    data = json.loads(json.dumps(plan.to_dict(), allow_nan=False))
    again = Plan.from_dict(data)
    assert again == plan
    assert data["chords"][0] == plan.chords[0].name
    assert data["stems"]["bass"]["role"] == "bass"


def test_from_dict_names_the_problem():
    data = make_plan(spec_of()).to_dict()
    with pytest.raises(MusicStemsError, match="could not be read"):
        Plan.from_dict({k: v for k, v in data.items() if k != "chords"})
    with pytest.raises(MusicStemsError, match="format"):
        Plan.from_dict({**data, "format": 99})


def test_midi_round_trip(tmp_path):
    import mido
    import pretty_midi

    plan = make_plan(spec_of(EVERY_TEXTURE, style="techno", key="C minor"))
    settings = {"bass": {"gain_db": -6.0, "pan": -0.5}}
    path = plan.to_midi(tmp_path / "song.mid", settings)

    raw = mido.MidiFile(str(path))
    assert raw.type == 1 and len(raw.tracks) == len(EVERY_TEXTURE) + 1
    metas = {m.type: m for m in raw.tracks[0] if m.is_meta}
    assert metas["key_signature"].key == "Cm"
    assert (metas["time_signature"].numerator, metas["time_signature"].denominator) == (4, 4)
    bass_cc = {m.control: m.value for m in raw.tracks[2] if m.type == "control_change"}
    assert bass_cc == {7: 71, 10: 32}  # -6 dB -> 100 * 10**(-6/40); pan -0.5 -> 64 - 31.5

    midi = pretty_midi.PrettyMIDI(str(path))
    assert np.allclose(midi.get_tempo_changes()[1], [plan.bpm])
    by_name = {inst.name: inst for inst in midi.instruments}
    assert list(by_name) == list(EVERY_TEXTURE)
    half_tick_s = plan.seconds(0.5)
    for name, part in plan.parts.items():
        inst = by_name[name]
        assert inst.is_drum == (part.role == "drums")
        if not inst.is_drum:
            assert inst.program == part.program
        got = sorted((n.start, n.pitch, n.velocity, n.end - n.start) for n in inst.notes)
        want = sorted((plan.seconds(n.start), n.pitch, n.velocity, plan.seconds(n.duration))
                      for n in part.notes)
        assert len(got) == len(want), name
        assert [g[1:3] for g in got] == [w[1:3] for w in want], name
        assert np.allclose([g[0] for g in got], [w[0] for w in want], atol=half_tick_s)
        assert np.allclose([g[3] for g in got], [w[3] for w in want], atol=2 * half_tick_s)


def test_diatonic_chords_of_a_minor():
    names = [diatonic_chord(Key(9, "minor"), d).name for d in range(7)]
    assert names == ["Am", "Bdim", "C", "Dm", "Em", "F", "G"]
    assert diatonic_chord(Key(0, "major"), 4, seventh=True).name == "G7"
