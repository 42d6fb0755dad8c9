"""Key of each stem, measured on its chroma, and the transposition that puts it in the target key.

* **Key.** The summed constant-Q chroma (``librosa.feature.chroma_cqt``) is correlated with the
  24 rotations of the Krumhansl-Kessler major/minor profiles (Krumhansl 1990, as used in the
  Krumhansl-Schmuckler algorithm) to tell tonal stems from the rest. The transposition, within
  +-6 semitones, is the one that leaves the least chroma outside the target key's scale (a key
  and its relative major/minor share one); a stem already as much in that scale as it can be is
  not moved, and the profiles only choose among equally good transpositions and name the key.
* **Confidence.** The best profile correlation (scaled down for a flat chroma) measures tonal
  content. Below :data:`MIN_KEY_CORRELATION` a stem is left alone on this axis and the report
  says why.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..spec import Key
from .common import ANALYSIS_SR, _pick

_CHROMA_HOP = 512
_CHROMA_BINS_PER_OCTAVE = 36  # librosa.feature.chroma_cqt's default
_CHROMA_OCTAVES = 6

#: Correlation with the best key profile a stem needs to count as tonal. Bass lines, chords and
#: pads measure 0.7-0.9; drums, hi-hats and noise 0.3-0.5.
MIN_KEY_CORRELATION = 0.6
#: Coefficient of variation a chroma profile needs before its correlation means anything: white
#: noise measures ~0.02 (and can still correlate 0.6 by chance), tonal parts 0.2 and more.
_MIN_CHROMA_CONTRAST = 0.1
#: Transpositions whose out-of-scale chroma share is within this factor (plus _SCALE_SLACK) of
#: the smallest count as equally in key. Key profiles misread in-key material by a fourth or a
#: fifth easily (jazz-voiced pads, a melody that skips the one note telling A minor from F
#: major); how much of a stem falls outside the target scale does not, so it decides, and a stem
#: already within the tie is left where it is. Test parts 1-3 semitones off measure 0.07-0.56
#: outside the scale as they are against <= 0.015 at the right transposition; in-key stems of the
#: sketch backend 0-0.11 against a minimum at most 0.03 lower (bass lines with passing notes).
_SCALE_TIE = 1.25
_SCALE_SLACK = 0.02
#: Chroma share below which a pitch class counts as overtones and leakage, not as a note: a note
#: of a 7-note scale holds 10-20 %, the 5th partial of a bright tone (its major third) 3-5 %.
_NOTE_FLOOR = 0.05
_MIN_KEY_DURATION_S = 1.0
_MAX_SEMITONES = 6

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

    @property
    def confidence(self) -> float:
        """The correlation, scaled down when the profile is too flat for it to mean much."""
        return self.correlation * min(1.0, self.contrast / _MIN_CHROMA_CONTRAST)


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


def _tonality(mono: np.ndarray) -> _Tonality:
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
    contrast = float(profile.std() / profile.mean()) if profile.mean() > 0 else 0.0
    correlations = _key_correlations(profile)
    mode, tonic = np.unravel_index(int(np.argmax(correlations)), correlations.shape)
    total = float(profile.sum())
    return _Tonality(key=Key(int(tonic), "major" if mode == 0 else "minor"),
                     correlation=float(correlations[mode, tonic]), contrast=contrast,
                     correlations=correlations,
                     profile=profile / total if total > 0 else np.full(12, 1 / 12))


def _align_key(mono, duration_s, target_key, reference, semitones, report, reasons):
    """Measure every stem's key; fill ``semitones``. Returns the target key's name."""
    if duration_s < _MIN_KEY_DURATION_S:
        for name in mono:
            reasons[name].append(f"key: {duration_s:.2f} s is too short to measure a key "
                                 f"(needs {_MIN_KEY_DURATION_S:g} s)")
        return target_key.name if target_key else None
    tonalities = {name: _tonality(y) for name, y in mono.items()}
    tonal: dict[str, float] = {}
    for name, tone in tonalities.items():
        entry = report[name]
        entry["confidence"]["key"] = round(tone.confidence, 3)
        if tone.contrast < _MIN_CHROMA_CONTRAST:
            reasons[name].append(f"key: no clear tonal content (chroma nearly flat, contrast "
                                 f"{tone.contrast:.2f} < {_MIN_CHROMA_CONTRAST})")
        elif tone.correlation < MIN_KEY_CORRELATION:
            reasons[name].append(f"key: no clear tonal content (key correlation "
                                 f"{tone.correlation:.2f} < {MIN_KEY_CORRELATION})")
        else:
            entry["detected_key"] = _own_key(tone).name
            tonal[name] = tone.confidence
    if target_key is None:
        key_stem = _pick(tonal, reference, "key", reasons)
        if key_stem is None:
            return None
        target_key = _own_key(tonalities[key_stem])
    for name in tonal:
        semitones[name] = _interval(tonalities[name], target_key)
    return target_key.name


def _out_of_scale(profile: np.ndarray, major_tonic: int) -> np.ndarray:
    """Chroma share on notes outside the major scale on ``major_tonic`` (= its relative minor)
    after transposing by s, for s = -6 .. 5: shape (12,). Each pitch class counts only above
    ``_NOTE_FLOOR``, so the overtones of in-key notes do not count as wrong notes."""
    outside = np.ones(12, dtype=bool)
    outside[list(Key(major_tonic, "major").scale())] = False
    return np.array([float(np.maximum(np.roll(profile, s)[outside] - _NOTE_FLOOR, 0.0).sum())
                     for s in range(-_MAX_SEMITONES, _MAX_SEMITONES)])


def _interval(tone: _Tonality, target: Key) -> int:
    """Transposition in semitones, within [-6, 6), that puts ``tone`` in ``target`` or in its
    relative major/minor (they share one scale).

    The transpositions that leave the least of the stem's chroma outside the target scale (within
    ``_SCALE_TIE``) are equally in key; 0 is kept if it is one of them, else the one whose key
    reading lands on the target (or its relative) with the best profile correlation wins.
    """
    major = target.tonic if target.mode == "major" else target.relative.tonic
    outside = _out_of_scale(tone.profile, major)
    steps = range(-_MAX_SEMITONES, _MAX_SEMITONES)
    tied = [s for s, out in zip(steps, outside) if out <= outside.min() * _SCALE_TIE
            + _SCALE_SLACK]
    if 0 in tied:
        return 0
    minor = (major + 9) % 12
    fit = {s: max(tone.correlations[0, (major - s) % 12], tone.correlations[1, (minor - s) % 12])
           for s in tied}
    return int(max(tied, key=lambda s: (fit[s], -abs(s))))


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
