"""Key of each stem, measured on its chroma, and the transposition that puts it in the song's key.

* **Chroma.** The summed constant-Q chroma (``librosa.feature.chroma_cqt``) of each stem, as
  shares of its pitch classes.
* **Target.** The given key, or the key of the tonal stems' shared chroma (each weighted by its
  confidence, so a line transposed on its own is outvoted). Its template is one scale: the
  Krumhansl-Kessler profile of its major key plus its relative minor's, so relative major/minor
  readings are no transposition.
* **Decision** (:func:`_decide`). The stem's profile is correlated with the template under the
  12 rotations; the best is applied only when the stem is not already in the target scale (its
  notes' chroma outside it, :func:`_out_of_scale`; leakage and overtones are no notes,
  :func:`_notes`), the rotation is not a fourth or fifth, and it beats
  no shift by :data:`_MIN_KEY_MARGIN`. Otherwise the stem is left alone, with the reason.
* **With chords** (:mod:`.chords`), the decision is the stem's bar-by-bar agreement with the
  song's chords instead, for every stem whose scale fit reaches :data:`MIN_CHORD_TONALITY`.
* **Confidence.** The scale fit (correlation with the best one-scale template, scaled down for a
  flat chroma). Below :data:`MIN_KEY_CORRELATION` a stem is left alone on this axis and the
  report says why.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..spec import Key
from .chords import chord_scores, decide_by_chords
from .common import ANALYSIS_SR, _pick

_CHROMA_HOP = 512
_CHROMA_BINS_PER_OCTAVE = 36  # librosa.feature.chroma_cqt's default
_CHROMA_OCTAVES = 6

#: Scale fit (:attr:`_Tonality.confidence`) a stem needs to count as tonal. Legato lines that
#: use most of their scale measure 0.73-0.85, the sketch backend's pads and piano 0.70-0.72, its
#: root-only basses 0.49-0.61, drums and noise 0.3-0.5.
MIN_KEY_CORRELATION = 0.6
#: Coefficient of variation a chroma profile needs before its correlation means anything: white
#: noise measures ~0.02 (and can still correlate 0.6 by chance), tonal parts 0.2 and more.
_MIN_CHROMA_CONTRAST = 0.1
#: Transpositions whose out-of-scale chroma share is within this factor (plus _SCALE_SLACK) of
#: the smallest count as equally in key. Key profiles misread in-key material by a fourth or a
#: fifth easily (jazz-voiced pads, a melody that skips the one note telling A minor from F
#: major); how much of a stem falls outside the target scale does not, so it decides, and a stem
#: already within the tie is left where it is. Counting notes only (:func:`_notes`), test parts
#: 1-3 semitones off measure 0.06-0.34 outside the scale as they are against <= 0.008 at the
#: right transposition; in-key stems of the sketch backend 0-0.084, at most 0.025 above the tie
#: (a low upright's G# whose 3rd partial, D#, is nearly as loud; bass lines with passing notes).
_SCALE_TIE = 1.25
_SCALE_SLACK = 0.04
#: Chroma share below which a pitch class counts as overtones and leakage, not as a note: a note
#: of a 7-note scale holds 10-20 %, the 5th partial of a bright tone (its major third) 3-5 %.
_NOTE_FLOOR = 0.05
#: Pitch classes that are another's leakage or overtones, not notes of their own: (np.roll
#: shift that brings the explaining pitch class onto the explained one, the largest share of
#: the explaining one's that the explained may hold). A semitone neighbour at up to half its
#: level is leakage: the sketch backend's reese bass (one G#) puts 8-9 % on G and A beside its
#: 52 %. The major third and the minor seventh above a note are its 5th and 7th partials: its
#: low upright F# puts 8 % on A# beside 20 %. A fifth (3rd partial) is a note, as in a power
#: chord. Half, not more: a melody's major third above a stronger note (the test flute's F#
#: over D) reads at 60-70 % of it and is a note.
_EXPLAINING = ((1, 0.5), (-1, 0.5), (4, 0.5), (10, 0.5))
#: Scale fit a stem needs for its transposition to be decided by the chords: lower than
#: MIN_KEY_CORRELATION, since the chords tell what a key cannot. Over 42 sketch songs
#: (benchmarks/sweep_chords.py) drums measure 0.25-0.46 and can agree with a wrong rotation of
#: the chords by up to 0.17; the synth and sub basses of the tests 0.59-0.60.
MIN_CHORD_TONALITY = 0.5
_MIN_KEY_DURATION_S = 1.0
_MAX_SEMITONES = 6
_STEPS = np.arange(-_MAX_SEMITONES, _MAX_SEMITONES)  # transpositions considered, -6 .. 5
#: Readings a fourth or fifth away are never applied: the two scales share six of seven notes,
#: and in-key material that dwells on the dominant or subdominant reads that way.
_NEVER_SHIFTS = (-5, 5, -7, 7)
#: How much better the best transposition must correlate with the song's template than no
#: shift. Lines transposed by 2-3 semitones measure margins of 0.69-0.91, the same lines
#: untransposed 0; the margin keeps near-ties where they are. In-key material the template
#: misreads can score more (the sketch backend's piano 0.49 at -2, its A-D-E basses 0.31-0.40 at
#: +3): the scale check in :func:`_decide`, applied first, is what leaves those alone.
_MIN_KEY_MARGIN = 0.25

# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass
class _Tonality:
    key: Key
    correlation: float  # with the best of the 24 key profiles
    contrast: float     # std / mean of the chroma profile
    correlations: np.ndarray  # (2, 12): major / minor row, tonic column
    profile: np.ndarray  # (12,) chroma share per pitch class, C first, sums to 1
    frames: np.ndarray | None = None  # (12, frames) chroma over time, kept when chords decide

    @property
    def confidence(self) -> float:
        """The scale fit, scaled down when the profile is too flat for it to mean much."""
        return _scale_fit(self.profile) * min(1.0, self.contrast / _MIN_CHROMA_CONTRAST)


def _key_correlations(profile: np.ndarray) -> np.ndarray:
    """Pearson correlation of a 12-bin chroma profile with each key profile: shape (2, 12),
    row 0 major, row 1 minor, column the tonic pitch class."""
    out = np.zeros((2, 12))
    centred = profile - profile.mean()
    for row, template in enumerate((_MAJOR_PROFILE, _MINOR_PROFILE)):
        for tonic in range(12):
            rotated = np.roll(template, tonic)
            rotated = rotated - rotated.mean()
            denom = math.sqrt(float(centred @ centred) * float(rotated @ rotated))
            out[row, tonic] = float(centred @ rotated) / denom if denom > 0 else 0.0
    return out


def _tonality(mono: np.ndarray, frames: bool = False) -> _Tonality:
    import librosa

    # Six octaves from C1 (32.7 Hz) to B6 (1.98 kHz): bass fundamentals to the top of most
    # chords. Summing unnormalised chroma weights every frame by its energy, so the quiet tails
    # between notes do not flatten the profile. This is librosa.feature.chroma_cqt(y=mono,
    # fmin=C1, n_octaves=6, norm=None) summed over time, to rounding; folding the summed CQT
    # into 12 pitch classes, instead of every frame, skips a matrix product that multi-threaded
    # BLAS stalls on whenever another process holds a core (it waits for all its threads).
    fmin_hz = librosa.note_to_hz("C1")
    with warnings.catch_warnings():
        # The C1 octave's filters are ~1.6 s long; shorter stems are zero-padded, which is fine.
        warnings.filterwarnings("ignore", message=r"n_fft=\d+ is too large", category=UserWarning)
        # Noise has no peaks to estimate tuning from; librosa then assumes A440, as we want.
        warnings.filterwarnings("ignore", message="Trying to estimate tuning from empty",
                                category=UserWarning)
        cqt = np.abs(librosa.cqt(mono, sr=ANALYSIS_SR, hop_length=_CHROMA_HOP, fmin=fmin_hz,
                                 n_bins=_CHROMA_OCTAVES * _CHROMA_BINS_PER_OCTAVE,
                                 bins_per_octave=_CHROMA_BINS_PER_OCTAVE,
                                 tuning=None))  # estimated, as chroma_cqt does (cqt's is 0)
    fold = librosa.filters.cq_to_chroma(cqt.shape[0], bins_per_octave=_CHROMA_BINS_PER_OCTAVE,
                                        fmin=fmin_hz)
    profile = np.einsum("cf,f->c", fold, cqt.sum(axis=1))
    # einsum's own loop, not BLAS, for the same reason
    chroma = np.einsum("cf,ft->ct", fold, cqt) if frames else None
    contrast = float(profile.std() / profile.mean()) if profile.mean() > 0 else 0.0
    correlations = _key_correlations(profile)
    mode, tonic = np.unravel_index(int(np.argmax(correlations)), correlations.shape)
    total = float(profile.sum())
    return _Tonality(key=Key(int(tonic), "major" if mode == 0 else "minor"),
                     correlation=float(correlations[mode, tonic]), contrast=contrast,
                     correlations=correlations,
                     profile=profile / total if total > 0 else np.full(12, 1 / 12),
                     frames=chroma)


@dataclass(frozen=True)
class KeyDecision:
    """What the key step measured and decided for one stem: its own key (None when it has no
    clear tonal content), key confidence, the transposition to apply, and why it was not moved
    where it was not."""

    detected_key: str | None = None
    confidence: float | None = None
    semitones: int = 0
    reasons: tuple[str, ...] = ()


def _scale_masks() -> np.ndarray:
    """(12, 12): row t weighs each pitch class by the Krumhansl-Kessler profiles of the major
    key on t and its relative minor, summed: one template for both readings of one scale, so a
    relative major/minor reading is no transposition, while the tonics still weigh most (a bass
    of chord roots fits many scales equally, but not their tonics)."""
    masks = np.zeros((12, 12))
    for tonic in range(12):
        masks[tonic] = np.roll(_MAJOR_PROFILE, tonic) + np.roll(_MINOR_PROFILE, tonic + 9)
    return masks


_MASKS = _scale_masks()


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else 0.0


def _scale_fit(profile: np.ndarray) -> float:
    """Correlation of a chroma profile with the best of the 12 diatonic scales: how plainly the
    stem keeps to one key (major and minor alike, bass lines of roots and fifths too)."""
    return max(_correlation(profile, mask) for mask in _MASKS)


def _rotation_scores(profile: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Correlation of the stem's profile transposed by s with ``template``, s = -6 .. 5."""
    return np.array([_correlation(np.roll(profile, s), template) for s in _STEPS])


def _decide(scores: np.ndarray, outside: np.ndarray | None = None) -> tuple[int, str | None]:
    """Transposition from rotation scores, and the reason when the stem is left alone although
    another rotation scored best. ``outside``, when given, is the chroma share outside the
    target scale per rotation (:func:`_out_of_scale`): a stem already as much in the scale as
    any rotation would put it is never moved, whatever the correlation prefers."""
    best = int(_STEPS[int(np.argmax(scores))])
    margin = float(scores.max() - scores[_MAX_SEMITONES])
    if best == 0:
        return 0, None
    if outside is not None and \
            outside[_MAX_SEMITONES] <= outside.min() * _SCALE_TIE + _SCALE_SLACK:
        return 0, (f"key: ambiguous (it reads best {best:+d} semitones from the song, but its "
                   "notes are already in the song's scale), left alone")
    if best in _NEVER_SHIFTS:
        return 0, (f"key: it reads {best:+d} semitones (a fourth or fifth) from the song, which "
                   "is how in-key material that dwells on the dominant or subdominant reads: "
                   "ambiguous, left alone")
    if margin < _MIN_KEY_MARGIN:
        return 0, (f"key: ambiguous ({best:+d} semitones beats no shift by only {margin:.2f} "
                   f"< {_MIN_KEY_MARGIN} in chroma correlation), left alone")
    return best, None


def _align_key(mono: dict[str, np.ndarray], durations_s: dict[str, float],
               target_key: Key | None, reference: str | None,
               chords: tuple[tuple[tuple[int, ...], ...], float] | None = None,
               timing: dict[str, tuple[float, float]] | None = None
               ) -> tuple[str | None, dict[str, KeyDecision]]:
    """Measure every stem's key and decide its transposition, relative to ``target_key`` or,
    without one, to the shared chroma of the tonal stems. With ``chords`` (per-bar pitch
    classes, root first, and the bar's length in seconds), every stem with a chroma contrast is
    decided by its bar-by-bar agreement with them instead (:mod:`.chords`), read after its
    tempo correction ``timing[name]`` = (rate, offset_s).

    Returns (the song's key name, per-stem :class:`KeyDecision`).
    """
    notes: dict[str, list[str]] = {name: [] for name in mono}
    tonalities: dict[str, _Tonality] = {}
    for name, y in mono.items():
        if durations_s[name] < _MIN_KEY_DURATION_S:
            notes[name].append(f"key: {durations_s[name]:.2f} s is too short to measure a key "
                               f"(needs {_MIN_KEY_DURATION_S:g} s)")
        else:
            tonalities[name] = _tonality(y, frames=chords is not None)
    tonal: dict[str, float] = {}
    for name, tone in tonalities.items():
        if tone.contrast < _MIN_CHROMA_CONTRAST:
            notes[name].append(f"key: no clear tonal content (chroma nearly flat, contrast "
                               f"{tone.contrast:.3f} < {_MIN_CHROMA_CONTRAST})")
        elif tone.confidence < MIN_KEY_CORRELATION:
            notes[name].append(f"key: no clear tonal content (scale fit "
                               f"{tone.confidence:.3f} < {MIN_KEY_CORRELATION})")
        else:
            tonal[name] = tone.confidence
    profiles = {name: tonalities[name].profile for name in tonal}
    steps = {name: 0 for name in mono}
    key_name = target_key.name if target_key is not None else None
    if target_key is None and profiles:
        # The song's key is the one of the tonal stems' shared chroma, each stem weighted by
        # its key confidence: a line transposed on its own is outvoted by the others. With a
        # reference that is tonal, its key is the song's.
        if reference in profiles:
            shared = profiles[reference]
        else:
            shared = sum(tonal[name] * p for name, p in profiles.items())
            if reference is not None:
                notes[reference].append("reference has no clear key; the shared chroma of "
                                        "the tonal stems was followed")
        target_key = _own_key(_tonality_of(shared))
        key_name = target_key.name
    if chords is not None:
        # Root-only basses (scale fit 0.49-0.61) count here; drums (0.25-0.46) do not.
        by_chords = [name for name, tone in tonalities.items()
                     if tone.contrast >= _MIN_CHROMA_CONTRAST
                     and tone.confidence >= MIN_CHORD_TONALITY]
        # the song's scale: the target key's, else every pitch class the chords hold
        scale = target_key.scale() if target_key is not None else \
            sorted({pc for chord in chords[0] for pc in chord})
        for name in by_chords:
            rate, offset_s = (timing or {}).get(name, (1.0, 0.0))
            steps[name], reason = decide_by_chords(chord_scores(
                tonalities[name].frames, chords[0], chords[1], rate, offset_s, scale))
            if reason:
                notes[name].append(reason)
    elif target_key is not None:
        major = target_key.tonic if target_key.mode == "major" else target_key.relative.tonic
        for name, profile in profiles.items():
            steps[name], reason = _decide(_rotation_scores(profile, _MASKS[major]),
                                          _out_of_scale(profile, major))
            if reason:
                notes[name].append(reason)
    decisions = {}
    for name in mono:
        tone = tonalities.get(name)
        decisions[name] = KeyDecision(
            detected_key=_own_key(tone).name if name in tonal else None,
            confidence=round(tone.confidence, 3) if tone else None, semitones=steps[name],
            reasons=tuple(notes[name]))
    return key_name, decisions


def _tonality_of(profile: np.ndarray) -> _Tonality:
    """A :class:`_Tonality` for a chroma profile that was not measured from audio (the shared
    chroma of several stems)."""
    total = float(profile.sum())
    share = profile / total if total > 0 else np.full(12, 1 / 12)
    correlations = _key_correlations(share)
    mode, tonic = np.unravel_index(int(np.argmax(correlations)), correlations.shape)
    return _Tonality(key=Key(int(tonic), "major" if mode == 0 else "minor"),
                     correlation=float(correlations[mode, tonic]),
                     contrast=float(share.std() / share.mean()), correlations=correlations,
                     profile=share)


def _notes(profile: np.ndarray) -> np.ndarray:
    """The chroma profile with the pitch classes that are not notes set to 0: those under
    ``_NOTE_FLOOR``, and those a stronger pitch class explains (:data:`_EXPLAINING`)."""
    stronger = np.zeros(12, dtype=bool)
    for interval, ratio in _EXPLAINING:
        stronger |= np.roll(profile, interval) * ratio >= profile
    return np.where(stronger | (profile < _NOTE_FLOOR), 0.0, profile)


def _out_of_scale(profile: np.ndarray, major_tonic: int) -> np.ndarray:
    """Chroma share on notes outside the major scale on ``major_tonic`` (= its relative minor)
    after transposing by s, for s = -6 .. 5: shape (12,). Only notes count (:func:`_notes`),
    each above ``_NOTE_FLOOR``, so the overtones and leakage of in-key notes are no wrong
    notes."""
    outside = np.ones(12, dtype=bool)
    outside[list(Key(major_tonic, "major").scale())] = False
    notes = _notes(profile)
    return np.array([float(np.maximum(np.roll(notes, s)[outside] - _NOTE_FLOOR, 0.0).sum())
                     for s in range(-_MAX_SEMITONES, _MAX_SEMITONES)])


def _own_key(tone: _Tonality) -> Key:
    """The key a stem is in: the major scale holding most of its chroma, named as that major key
    or its relative minor, whichever key profile correlates better."""
    outside = np.array([_out_of_scale(tone.profile, tonic)[_MAX_SEMITONES]
                        for tonic in range(12)])
    tied = [t for t in range(12) if outside[t] <= outside.min() * _SCALE_TIE + _SCALE_SLACK]
    major = max(tied, key=lambda t: max(tone.correlations[0, t],
                                        tone.correlations[1, (t + 9) % 12]))
    minor = (major + 9) % 12
    if tone.correlations[1, minor] > tone.correlations[0, major]:
        return Key(minor, "minor")
    return Key(major, "major")
