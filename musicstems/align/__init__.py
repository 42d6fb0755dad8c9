"""Musical alignment: make separately generated stems agree on tempo, beat grid and key.

Every stem is measured on a mono copy at :data:`ANALYSIS_SR` Hz; only stems that need a change are
processed at their own rate, once, with a phase vocoder (or Rubber Band where installed).

The package holds one job per module, and data flows one way through them:

* ``inputs``: every argument and stem checked before any work (:class:`MusicStemsError`).
* ``common``: the mono analysis copy at :data:`ANALYSIS_SR`, and how the stem to follow is
  picked when the reference does not qualify.
* ``tempo``: tempo (onset envelope, periodicity refinement, half / double / 2:3 folding), beat
  confidence and the beat-grid offset.
* ``novelty``: note-change envelopes (chroma flux, chroma contrast) and note starts, for stems
  without percussive onsets.
* ``key``: chroma, Krumhansl-Kessler key profiles, key confidence and the transposition that
  puts a stem in the song's key.
* ``engines``: time-stretching and pitch-shifting (librosa's phase vocoder, or pyrubberband), and
  placing the result on the grid.

This module holds :func:`align_stems`, which calls them in that order, and its result
:class:`AlignedStems`. How each measurement works is described in those modules and in
``docs/alignment.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..spec import Key
from .chords import check_chords
from .common import ANALYSIS_SR, _analysis_copy
from .engines import _engine, _place, _stretch_and_shift
from .inputs import _check_inputs
from .key import MIN_KEY_CORRELATION, KeyDecision, _align_key
from .tempo import MIN_BEAT_CONFIDENCE, TempoDecision, _align_tempo

__all__ = ["align_stems", "AlignedStems", "ANALYSIS_SR", "MIN_BEAT_CONFIDENCE",
           "MIN_KEY_CORRELATION"]


@dataclass(frozen=True)
class AlignedStems:
    """What :func:`align_stems` returns.

    Attributes
    ----------
    stems : dict of str -> np.ndarray [shape=(channels, samples)], float32
        The aligned stems, all ``length`` samples long (the longest input's by default).
    bpm : float or None
        Tempo of the common beat grid, in beats per minute: ``bpm`` when it was given (and
        ``stretch`` is on), else the measured tempo of the reference stem. ``None`` when both
        ``stretch`` and ``beat_offset`` are off, or no tempo was given and none was measured.
    key : str or None
        Target key, e.g. ``"A minor"``: ``key`` when it was given, else the key of the reference
        (when tonal) or of the tonal stems' shared chroma. Tonal stems that were clearly
        transposed are now in it or its relative major/minor; ambiguous ones are left. ``None``
        when ``pitch_shift`` is off, or no key was given and no stem has a clear one.
    report : dict of str -> dict
        Per stem: ``detected_bpm``, ``stretch_ratio`` (speed factor applied, > 1 is faster),
        ``offset_s`` (shift applied, > 0 is later), ``detected_key``, ``semitones`` (applied),
        ``confidence`` (``{"beat": ..., "key": ...}``, whether or not the stem was moved),
        ``tempo_source`` (the envelope the tempo was read from: ``"onsets"``, ``"chroma flux"``
        or ``"chroma contrast"``), ``skipped_reason`` (``None`` or why an axis was left alone)
        and ``engine`` (what stretched or shifted it, ``None`` if nothing).
    reference : str or None
        The stem whose beat grid the others were moved to (it is never shifted).
    """

    stems: dict[str, np.ndarray]
    bpm: float | None
    key: str | None
    report: dict[str, dict[str, Any]]
    reference: str | None = None


def align_stems(
    stems: Mapping[str, Any],
    sample_rate: int,
    *,
    bpm: float | None = None,
    key: "str | Key | None" = None,
    stretch: bool = True,
    beat_offset: bool = True,
    pitch_shift: bool = True,
    reference: str | None = None,
    length: int | None = None,
    chords: "Sequence[Sequence[int]] | None" = None,
    bar_s: float | None = None,
) -> AlignedStems:
    """Align the tempo, beat grid and key of separately generated stems.

    Parameters
    ----------
    stems : dict of str -> np.ndarray [shape=(channels, samples) or (samples,)]
        Floating-point audio in [-1, 1]; lengths may differ. A value may also be an
        ``(array, sample_rate)`` pair, whose rate must equal ``sample_rate``.
    sample_rate : int in [8000, 384000], Hz
        Sample rate of every stem.
    bpm : float in [20, 300], optional
        Target tempo in beats per minute. When omitted, the tempo of ``reference`` (or of the
        most rhythmic stem) is followed.
    key : str or Key, optional
        Target key such as ``"A minor"`` or ``"F#m"``. When omitted, the key of ``reference``
        (when it is tonal), else of the tonal stems' shared chroma, is followed.
    stretch : bool
        Time-stretch rhythmic stems to the target tempo.
    beat_offset : bool
        Shift stems with a beat (from onsets or note changes) by up to half a beat so their
        beats land on the reference's grid.
    pitch_shift : bool
        Transpose tonal stems into the target key (or its relative) by at most 6 semitones,
        only when the transposition clearly beats none (``docs/alignment.md``).
    reference : str, optional
        Name of the stem that sets the beat grid, and the tempo and key when ``bpm`` / ``key``
        are not given. Defaults to the most rhythmic stem (grid, tempo) and the tonal stems'
        shared chroma (key).
    length : int > 0, optional, samples
        Length of every output stem (cut or zero-padded at the end). Defaults to the longest
        input.
    chords : sequence of sequences of int in [0, 11], optional
        The song's chords bar by bar, each its pitch classes (C = 0), root first, e.g.
        ``[(9, 0, 4), (2, 5, 9)]`` for Am, Dm. When given (with ``bar_s``), a stem's
        transposition is decided by how well its chroma, bar by bar after its own tempo
        correction, agrees with these chords over the 12 rotations, not by the key alone
        (``docs/alignment.md``); the last chord holds past the end.
    bar_s : float in [0.05, 60], s, optional
        Length of one bar of ``chords``, from the start of the output grid. Required with
        ``chords``.

    Returns
    -------
    AlignedStems
        ``stems`` (float32, (channels, length), exact to the sample), ``bpm``, ``key``,
        ``report`` and ``reference``.

    Raises
    ------
    MusicStemsError
        For a bad argument or stem (wrong shape or type, empty, silent, NaN/inf samples, another
        sample rate, a length that is not a positive int, bpm outside [20, 300], an unknown
        key, an unknown reference, chords that are not pitch classes or lack ``bar_s``), before any audio is processed.

    Examples
    --------
    >>> import numpy as np
    >>> sr = 22050
    >>> clicks = np.zeros((1, 8 * sr), np.float32)
    >>> clicks[0, ::int(sr * 60 / 125)] = 1.0          # a click track at 125 BPM
    >>> out = align_stems({"clicks": clicks}, sr, bpm=120)
    >>> round(out.report["clicks"]["stretch_ratio"], 2), out.stems["clicks"].shape == clicks.shape
    (0.96, True)
    """
    audio, sample_rate, bpm, target_key, reference, length = _check_inputs(
        stems, sample_rate, bpm=bpm, key=key, stretch=stretch, beat_offset=beat_offset,
        pitch_shift=pitch_shift, reference=reference, length=length)
    chord_grid = check_chords(chords, bar_s)
    durations_s = {name: y.shape[-1] / sample_rate for name, y in audio.items()}
    mono = {name: _analysis_copy(y, sample_rate) for name, y in audio.items()}

    target_bpm = grid_stem = None
    tempo = {name: TempoDecision() for name in audio}
    if stretch or beat_offset:
        target_bpm, grid_stem, tempo = _align_tempo(mono, durations_s, bpm, reference, stretch,
                                                    beat_offset)
    key_name = None
    tonal = {name: KeyDecision() for name in audio}
    if pitch_shift:
        timing = {name: (decision.rate, decision.offset_s) for name, decision in tempo.items()}
        key_name, tonal = _align_key(mono, durations_s, target_key, reference, chord_grid,
                                     timing)

    preferred = _engine()
    out: dict[str, np.ndarray] = {}
    report: dict[str, dict[str, Any]] = {}
    for name, y in audio.items():
        rate, semitones = tempo[name].rate, tonal[name].semitones
        engine = None
        if rate != 1.0 or semitones != 0:
            y, engine = _stretch_and_shift(y, sample_rate, rate, semitones, preferred)
        shift = int(round(tempo[name].offset_s * sample_rate))
        out[name] = _place(y, shift, length)
        report[name] = {
            "detected_bpm": tempo[name].detected_bpm, "stretch_ratio": round(rate, 6),
            "offset_s": round(shift / sample_rate, 5), "detected_key": tonal[name].detected_key,
            "semitones": semitones,
            "confidence": {"beat": tempo[name].confidence, "key": tonal[name].confidence},
            "tempo_source": tempo[name].source,
            "skipped_reason": "; ".join(tempo[name].reasons + tonal[name].reasons) or None,
            "engine": engine}
    return AlignedStems(stems=out, bpm=None if target_bpm is None else round(target_bpm, 3),
                        key=key_name, report=report, reference=grid_stem)
