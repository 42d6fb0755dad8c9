"""Synthetic stems whose tempo, beat grid and key are known, for the alignment tests and
benchmark (one renderer for both): ``render_stem`` (drums, bass, chords, pad in A minor),
``legato_song`` and ``render_line`` (legato monophonic lines and drums rendered with the package's
synth) and ``sketch_part`` (one stem of the sketch backend, moved off tempo, grid or key).
"""

from __future__ import annotations

__all__ = ["synth_tone", "render_stem", "LINES", "LINE_BEATS", "render_line", "legato_song",
           "sketch_part"]
# Alignment is tested (tests/test_align.py) and timed (benchmarks/bench_align.py) on stems whose
# truth is known because they are rendered from a score: one renderer, here, for both.

# A minor: Am - F - C - G, one chord per bar of 4 beats; (bass root MIDI, chord MIDI notes).
_PROGRESSION = [(45, (57, 60, 64)), (41, (53, 57, 60)), (48, (55, 60, 64)), (43, (55, 59, 62))]


def synth_tone(midis, length_s, *, attack_s, decay_s, rng, harmonics=6, sr=22050):
    """Notes ``midis`` sounding together for ``length_s`` s: ``harmonics`` partials at 1/k
    amplitude, random phases from ``rng``, a linear attack, an exponential decay and a 20 ms
    release so no note ends in a click. float64 (samples,)."""
    import numpy as np

    t = np.arange(int(length_s * sr)) / sr
    env = np.minimum(t / attack_s, 1.0) * np.exp(-t / decay_s)
    release = min(len(t), int(0.02 * sr))
    env[len(t) - release:] *= np.linspace(1.0, 0.0, release)
    out = np.zeros_like(t)
    for midi in midis:
        freq = 440.0 * 2 ** ((midi - 69) / 12)
        for k in range(1, harmonics + 1):
            if k * freq < sr / 2:
                out += np.sin(2 * np.pi * k * freq * t + rng.uniform(0, 2 * np.pi)) / k
    return env * out


def render_stem(kind, *, bpm=120.0, offset_beats=0.0, semitones=0, duration_s=12.0, sr=22050,
                seed=0, channels=1):
    """One part of a song in A minor (+ ``semitones``) with beat k at
    ``(k + offset_beats) * 60 / bpm`` seconds; float32 (channels, round(duration_s * sr)).

    drums: kick on every beat, snare on 2 and 4, closed hats on eighths (no pitch to speak of);
    bass: root, root, fifth, third of each bar's chord, one note per beat; chords: short stabs
    on every beat; pad: one sustained chord per bar with a 0.6 s swell (harmony, no clear
    beat); clicks: a kick on every beat and nothing else.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sr))
    out = np.zeros(n)
    beat_s = 60.0 / bpm

    def add(start_s, sound):
        i = int(round(start_s * sr))
        if i < 0:
            sound, i = sound[-i:], 0
        m = max(0, min(len(sound), n - i))
        out[i:i + m] += sound[:m]

    t_kick = np.arange(int(0.3 * sr)) / sr
    kick = 0.9 * np.sin(2 * np.pi * np.cumsum(45 + 80 * np.exp(-t_kick / 0.03)) / sr) \
        * np.exp(-t_kick / 0.08)
    for beat in range(-2, int(duration_s / beat_s) + 2):
        start = (beat + offset_beats) * beat_s
        bar, position = divmod(beat, 4)
        root, chord = _PROGRESSION[bar % 4]
        root, chord = root + semitones, [m + semitones for m in chord]
        if kind in ("drums", "clicks"):
            add(start, kick)
        if kind == "drums":
            if position in (1, 3):
                t = np.arange(int(0.2 * sr)) / sr
                add(start, 0.4 * rng.standard_normal(len(t)) * np.exp(-t / 0.05))
            for half in (0.0, 0.5):
                t = np.arange(int(0.06 * sr)) / sr
                hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.015)
                add(start + half * beat_s, 0.15 * hat)
        elif kind == "bass":
            # root, root, fifth, third: the thirds (C, A, E, B) include B, so the line is in
            # A minor, not also in F major / D minor as a bare root-fifth line would be.
            note = root + (0, 0, 7, 3 if bar % 4 == 0 else 4)[position]
            add(start, 0.5 * synth_tone([note], 0.9 * beat_s, attack_s=0.005, decay_s=0.25,
                                        rng=rng, sr=sr))
        elif kind == "chords":
            add(start, 0.2 * synth_tone(chord, 0.35 * beat_s, attack_s=0.005, decay_s=0.12,
                                        rng=rng, sr=sr))
        elif kind == "pad" and position == 0:
            add(start, 0.12 * synth_tone(chord + [root], 4 * beat_s + 0.5, attack_s=0.6,
                                         decay_s=8.0, rng=rng, harmonics=4, sr=sr))
    audio = np.repeat(out[None], channels, axis=0)
    return audio.astype(np.float32)


# Legato monophonic lines in C major, one note after another with no gap: (start beat, length in
# beats, MIDI pitch). Every line uses all seven notes of the scale (F and B among them), so its
# key is C major or A minor and nothing closer; none has a percussive onset. Eight bars of 4/4.
# name -> (synth role, synth sound, notes)
LINES = {
    "bass": ("bass", "electric", [  # roots and passing notes, half and whole notes
        (0, 2, 36), (2, 2, 40), (4, 2, 41), (6, 2, 43), (8, 4, 45), (12, 2, 43), (14, 2, 47),
        (16, 2, 36), (18, 1, 38), (19, 1, 40), (20, 4, 41), (24, 2, 43), (26, 2, 35),
        (28, 4, 36)]),
    "lead": ("lead", "flute", [  # a tune in quarters, halves and a dotted half
        (0, 1, 72), (1, 1, 74), (2, 2, 76), (4, 1, 77), (5, 1, 76), (6, 2, 74), (8, 3, 72),
        (11, 1, 71), (12, 2, 69), (14, 2, 67), (16, 1, 72), (17, 1, 76), (18, 1, 79),
        (19, 1, 77), (20, 2, 76), (22, 2, 74), (24, 1, 71), (25, 1, 72), (26, 2, 74),
        (28, 4, 72)]),
    "strings": ("strings", "ensemble", [  # a bowed counter-line, mostly half notes
        (0, 2, 64), (2, 2, 65), (4, 2, 67), (6, 2, 65), (8, 2, 64), (10, 2, 62), (12, 2, 60),
        (14, 2, 59), (16, 2, 60), (18, 2, 62), (20, 2, 64), (22, 2, 65), (24, 2, 67),
        (26, 2, 71), (28, 4, 72)]),
    "organ": ("organ", "drawbar", [  # a held organ line, no attack transient
        (0, 2, 60), (2, 2, 59), (4, 2, 57), (6, 2, 59), (8, 2, 60), (10, 2, 62), (12, 2, 64),
        (14, 1, 65), (15, 1, 64), (16, 2, 62), (18, 2, 60), (20, 2, 57), (22, 2, 53),
        (24, 2, 55), (26, 2, 59), (28, 4, 60)]),
    "voice": ("pads", "choir", [  # a sung line, quarters and halves
        (0, 2, 67), (2, 1, 69), (3, 1, 71), (4, 2, 72), (6, 2, 71), (8, 1, 69), (9, 1, 67),
        (10, 2, 65), (12, 2, 64), (14, 2, 62), (16, 2, 64), (18, 1, 65), (19, 1, 67),
        (20, 2, 69), (22, 2, 67), (24, 2, 65), (26, 2, 62), (28, 4, 60)]),
}
LINE_BEATS = 32
# Drums: (beat within the bar, GM key); kick on 1 and 3, snare on 2 and 4, hats on eighths.
_DRUM_BAR = [(0.0, 36), (2.0, 36), (1.0, 38), (3.0, 38)] + [(k / 2, 42) for k in range(8)]


def render_line(name, *, bpm, tonic=0, factor=1.0, delay_beats=0.0, semitones=0, sr=16000,
                lead_in_beats=1.0):
    """One stem of the legato song (a line of :data:`LINES`, or ``"drums"``), rendered with the
    package's synth (:func:`musicstems.synth.voices.render_note`, ``drums.drum_hit``).

    Parameters
    ----------
    name : str
        ``"drums"`` or a key of :data:`LINES`.
    bpm : float
        The song's tempo; the stem is played at ``bpm * factor``.
    tonic : int
        Pitch class of the song's key (the lines are written in C major / A minor; 2 is D major
        / B minor).
    factor : float
        Tempo factor: 1.05 plays 5 % fast, so the stem is 1/1.05 as long.
    delay_beats : float
        Extra delay of every note, in beats.
    semitones : int
        Transposition of this stem on top of ``tonic``.
    sr : int, Hz
    lead_in_beats : float
        Silence before beat 0, in the stem's own beats.

    Returns
    -------
    np.ndarray [shape=(1, samples)], float32
        Beat k (k = 0 .. 31) starts at ``(k + lead_in_beats + delay_beats) * 60 / (bpm *
        factor)`` s; the stem ends one beat (and the last note's release) after beat 32.
    """
    import numpy as np

    from ..synth.drums import drum_hit
    from ..synth.voices import render_note

    beat_s = 60.0 / (bpm * factor)
    n = int(round((LINE_BEATS + lead_in_beats + delay_beats + 1.5) * beat_s * sr))
    out = np.zeros(n)
    if name == "drums":
        events = [(bar * 4 + at, drum_hit(key, "rock", sr)[0], 0.8 if key != 42 else 0.3)
                  for bar in range(LINE_BEATS // 4) for at, key in _DRUM_BAR]
    else:
        role, sound, notes = LINES[name]
        events = [(start, render_note(role, sound, pitch + tonic + semitones, length * beat_s,
                                      90, 0.5, sr)[0], 1.0)
                  for start, length, pitch in notes]
    for start_beats, sound, gain in events:
        i = int(round((start_beats + lead_in_beats + delay_beats) * beat_s * sr))
        m = min(len(sound), n - i)
        out[i:i + m] += gain * sound[:m]
    return (0.5 * out / np.max(np.abs(out)))[None].astype(np.float32)


def legato_song(perturbations, *, bpm=100.0, tonic=0, sr=16000):
    """Render several stems of the legato song, each perturbed.

    Parameters
    ----------
    perturbations : dict of str -> (factor, delay_beats, semitones)
        Per stem (``"drums"`` or a key of :data:`LINES`): tempo factor, delay in beats and
        transposition, as :func:`render_line` takes them.
    bpm, tonic, sr
        The song's tempo, key (pitch class of the major tonic) and sample rate.

    Returns
    -------
    stems : dict of str -> np.ndarray [shape=(1, samples)], float32
        Perturbed: lengths differ with the tempo factors.
    truth : dict of str -> np.ndarray [shape=(1, samples)], float32
        The same stems unperturbed (factor 1, no delay, no transposition), all one length.
    """
    stems = {name: render_line(name, bpm=bpm, tonic=tonic, factor=f, delay_beats=d,
                               semitones=s, sr=sr)
             for name, (f, d, s) in perturbations.items()}
    truth = {name: render_line(name, bpm=bpm, tonic=tonic, sr=sr) for name in perturbations}
    return stems, truth


def sketch_part(prompt, *, role_name="bass", bpm=120.0, key="A minor", duration_s=12.0,
                factor=1.0, delay_beats=0.0, semitones=0, seed=1, sr=16000):
    """The sketch backend's own rendering of one stem, played ``factor`` times as fast, delayed
    by ``delay_beats`` and transposed by ``semitones``; float32 (2, samples), as long as the
    song at its true tempo. Drums (``role_name="drums"``) are never transposed."""
    import dataclasses

    from ..plan import make_plan
    from ..spec import validate_compose_args
    from ..synth.render import render_part

    spec = validate_compose_args({role_name: prompt}, bpm=bpm, key=key, duration_s=duration_s,
                                 seed=seed, backend="sketch")
    plan = make_plan(spec)
    part = plan.parts[role_name]
    shift = int(round(delay_beats * plan.ticks_per_beat))
    step = 0 if part.role == "drums" else semitones
    notes = tuple(note._replace(start=note.start + shift, pitch=note.pitch + step)
                  for note in part.notes)
    played = dataclasses.replace(plan, bpm=bpm * factor)
    return render_part(dataclasses.replace(part, notes=notes), played, sr,
                       int(round(duration_s * sr)))
