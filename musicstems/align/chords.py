"""Transposition decided by agreement with the song's chords, bar by bar.

A key alone cannot tell where a line of chord roots belongs: A-D-E moved up two semitones is
B-E-F#, which fits several scales, and a low bass's overtones can make an in-key stem read as
another key. The chords can: each bar of the stem should sound its bar's chord tones.

* **Chroma per frame.** The stem's constant-Q chroma frames (the ones its key profile sums,
  :func:`musicstems.align.key._tonality`), each placed in the song's time after the stem's own
  tempo and offset correction (output time = input time / rate + offset), so a slow or late
  stem is read against the right bars.
* **Score.** For each transposition s = -6 .. 5, the stem's energy, transposed by s, weighted
  by what each pitch class is in the bar it sounds in (:data:`_ROOT_WEIGHT`: the chord's root,
  its other tones, the rest of the song's scale), as a share of its energy.
* **Who.** Only stems with a scale fit of at least :data:`~musicstems.align.key.MIN_CHORD_TONALITY`
  (drums agree with some rotation of the chords by chance).
* **Decision.** The best transposition is applied only when it beats no shift by
  :data:`MIN_CHORD_MARGIN`; otherwise the stem is left alone, with the reason.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import MusicStemsError
from ..spec import check_finite
from .common import ANALYSIS_SR

_CHROMA_HOP = 512  # as key._CHROMA_HOP: the frames come from the same CQT
_MAX_SEMITONES = 6
_STEPS = np.arange(-_MAX_SEMITONES, _MAX_SEMITONES)
#: Weight of a pitch class in a bar: its chord's root, the chord's other tones, the other
#: notes of the song's scale, anything else 0. The root counts most, so a bass of roots
#: transposed by a fifth (whose notes are the chords' fifths, also chord tones) is told from
#: the roots themselves; the scale counts, so a melody's passing notes are no disagreement.
_ROOT_WEIGHT = 1.0
_CHORD_WEIGHT = 0.75
_SCALE_WEIGHT = 0.4
#: How much better (in weighted chord-tone share, 0..1) the best transposition must score than
#: no shift. Over 42 sketch songs (benchmarks/sweep_chords.py) an in-key stem's best wrong
#: rotation beats no shift by at most 0.12; basses, keys and leads transposed by +2 / -3 that
#: are restored measure 0.15 and more (the tests' synth bass 0.16-0.21, sub bass 0.36-0.69).
MIN_CHORD_MARGIN = 0.15


def check_chords(chords: Any, bar_s: Any) -> tuple[tuple[tuple[int, ...], ...], float] | None:
    """Validate ``chords`` (a sequence of per-bar pitch-class collections, root first) and
    ``bar_s`` (seconds per bar); return them as tuples and a float, or None without chords."""
    if chords is None:
        if bar_s is not None:
            raise MusicStemsError(f"bar_s={bar_s!r} was given without chords; pass chords= too "
                                  "(one pitch-class set per bar), or leave bar_s out.")
        return None
    if bar_s is None:
        raise MusicStemsError("chords were given without bar_s; pass bar_s= the length of one "
                              "bar in seconds, e.g. 2.0 for 4/4 at 120 bpm.")
    bar_s = check_finite(bar_s, "bar_s", low=0.05, high=60.0,
                         fix="Pass the length of one bar in seconds, e.g. 2.0.")
    if isinstance(chords, (str, bytes)) or not isinstance(chords, Sequence) or not chords:
        raise MusicStemsError(f"chords={chords!r} is not a non-empty sequence; pass one "
                              "pitch-class collection per bar, root first, e.g. "
                              "[(9, 0, 4), (2, 5, 9)] for Am, Dm.")
    out = []
    for bar, chord in enumerate(chords):
        try:
            pcs = tuple(chord)
        except TypeError:
            pcs = None
        if not pcs or any(isinstance(pc, bool) or not isinstance(pc, (int, np.integer))
                          or not 0 <= pc <= 11 for pc in pcs):
            raise MusicStemsError(
                f"chords[{bar}]={chord!r} is not a collection of pitch classes; pass ints "
                "0-11 (C=0), root first, e.g. (9, 0, 4) for A minor.")
        out.append(tuple(int(pc) for pc in pcs))
    return tuple(out), float(bar_s)


def _weights(chords: Sequence[tuple[int, ...]], scale: Sequence[int]) -> np.ndarray:
    """(bars, 12): weight of each pitch class in each bar (:data:`_ROOT_WEIGHT` ...)."""
    out = np.zeros((len(chords), 12))
    out[:, list(scale)] = _SCALE_WEIGHT
    for bar, pcs in enumerate(chords):
        out[bar, list(pcs)] = _CHORD_WEIGHT
        out[bar, pcs[0]] = _ROOT_WEIGHT
    return out


def chord_scores(frames: np.ndarray, chords: Sequence[tuple[int, ...]], bar_s: float,
                 rate: float, offset_s: float, scale: Sequence[int]) -> np.ndarray:
    """Weighted chord-tone share of the stem transposed by s, for s = -6 .. 5: shape (12,).

    ``frames`` is the stem's chroma, (12, frames), C first, one frame per _CHROMA_HOP samples
    at ANALYSIS_SR; ``rate`` and ``offset_s`` the stem's tempo correction; ``scale`` the song's
    scale's pitch classes. Frames past the
    last bar use the last chord, as a song's tail rings on it; frames before 0 are dropped.
    """
    times_s = np.arange(frames.shape[1]) * _CHROMA_HOP / ANALYSIS_SR / rate + offset_s
    keep = times_s >= 0
    bars = np.minimum((times_s[keep] // bar_s).astype(int), len(chords) - 1)
    energy = frames[:, keep]
    total = float(energy.sum())
    if total <= 0:
        return np.zeros(len(_STEPS))
    per_bar = np.zeros((len(chords), 12))
    np.add.at(per_bar, bars, energy.T)
    weights = _weights(chords, scale)
    # transposing by s moves pitch class p to p + s: np.roll(row, s)
    return np.array([float((np.roll(per_bar, s, axis=1) * weights).sum()) / total
                     for s in _STEPS])


def decide_by_chords(scores: np.ndarray) -> tuple[int, str | None]:
    """Transposition from :func:`chord_scores`, and why the stem is left alone when another
    transposition scored best."""
    best = int(_STEPS[int(np.argmax(scores))])
    margin = float(scores.max() - scores[_MAX_SEMITONES])
    if best == 0:
        return 0, None
    if margin < MIN_CHORD_MARGIN:
        return 0, (f"key: ambiguous against the chords ({best:+d} semitones beats no shift by "
                   f"only {margin:.2f} < {MIN_CHORD_MARGIN} in chord-tone share), left alone")
    return best, None
