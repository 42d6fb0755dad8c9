"""Part writing: the notes every stem plays against the song's shared chords, form and meter.

:func:`write_part` hands a stem to the writer of its texture and tidies the notes it returns.
Times are ticks on the grid of :mod:`musicstems.plan.score`. Each writer follows one rule of
thumb of its texture:

- ``beat`` (:mod:`.drums`): a 16-step pattern per drum family, thinned in quiet sections, a crash at each loud
  section's downbeat and a snare fill before it. Drums use General MIDI keys.
- ``bassline`` (:mod:`.bass`): the chord root on every downbeat; other steps take the root, its octave, the
  chord's fifth, or a scale neighbour of the root (a passing tone, in key).
- ``sustain`` / ``comp`` / ``stabs`` / ``strum`` (:mod:`.chords`): chord tones only, voiced to move least from
  the previous chord.
- ``arp`` (:mod:`.chords`): chord tones only, up or up-and-down through two octaves.
- ``melody`` (:mod:`.melody`): a motif of scale steps, transposed diatonically with each bar's chord; its
  strong-beat notes snap to chord tones, the others stay in the scale.

Every random choice comes from the ``rng`` a caller passes in (one per stem, seeded from the
song's seed and the stem's name and prompt), so the same inputs give the same notes.
"""

from __future__ import annotations

import numpy as np

from .bass import write_bass
from .chords import write_arp, write_comp, write_stabs, write_strum, write_sustain
from .drums import write_drums
from .melody import write_melody
from .roles import StemStyle
from .score import Note, Score

__all__ = ["write_part", "WRITERS"]

# texture -> the writer of its notes
WRITERS = {"beat": write_drums, "bassline": write_bass, "sustain": write_sustain,
           "comp": write_comp, "stabs": write_stabs, "strum": write_strum,
           "arp": write_arp, "melody": write_melody}


def write_part(style: StemStyle, score: Score, rng: np.random.Generator) -> tuple[Note, ...]:
    """The notes of one stem, sorted by start then pitch, cut at ``score.end_tick``.

    Parameters
    ----------
    style : StemStyle
        The stem's role, sound, texture, density ... (:func:`musicstems.plan.roles.choose_style`).
    score : Score
        Key, genre, chords per bar, sections and the song's last tick.
    rng : np.random.Generator
        The stem's own generator.

    Returns
    -------
    tuple of Note
    """
    notes = WRITERS[style.texture](style, score, rng)
    kept = []
    for note in notes:
        if note.start >= score.end_tick:
            continue
        duration = min(note.duration, score.end_tick - note.start)
        kept.append(Note(int(note.start), int(max(1, duration)), int(np.clip(note.pitch, 0, 127)),
                         int(note.velocity)))
    # two notes of one pitch on one tick would be one note in MIDI: keep the louder
    unique: dict[tuple[int, int], Note] = {}
    for note in kept:
        key = (note.start, note.pitch)
        if key not in unique or note.velocity > unique[key].velocity:
            unique[key] = note
    kept = sorted(unique.values(), key=lambda n: (n.start, n.pitch))
    # One sounding note per pitch: a note ends at the latest when the same pitch starts again,
    # so every note-off in a MIDI file belongs to the note it ends.
    next_start: dict[int, int] = {}
    for index in range(len(kept) - 1, -1, -1):
        note = kept[index]
        limit = next_start.get(note.pitch)
        if limit is not None and note.start + note.duration > limit:
            kept[index] = note._replace(duration=limit - note.start)
        next_start[note.pitch] = note.start
    return tuple(kept)
