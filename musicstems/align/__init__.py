"""Musical alignment: make separately generated stems agree on tempo, beat grid and key.

Every stem is measured on a mono copy at :data:`ANALYSIS_SR` Hz; only stems that need a change are
processed at their own rate, once, with a phase vocoder (or Rubber Band where installed).

* **Tempo.** Onset strength (log-mel spectral flux, ``librosa.onset.onset_strength``) gives a
  coarse tempo from its autocorrelation tempogram (``librosa.feature.tempo``), which is refined by
  maximising the magnitude of the envelope's Fourier series at the first :data:`_HARMONICS`
  multiples of the beat frequency: a 10 s stem is measured to a few hundredths of a percent where
  the tempogram's lag grid alone is 2-3 % coarse. A reading that is half, double, 2/3, 3/2, a
  third or three times the target to within 10 % (:data:`_TEMPO_FACTORS`) is taken as that
  relation, so a 64 or 256 BPM reading of a 128 BPM part is not stretched; any other reading is
  stretched to the target as it is, or from the octave nearest to it.
* **Beat grid.** The beat phase is the time within one beat where the envelope's harmonics add up
  best (a pulse train fitted to the onsets); each stem is delayed or advanced by at most half a
  beat so that its beats fall on the grid of one stem, the *reference* (``reference=`` or the most
  rhythmic stem), which is not shifted.
* **Key.** The summed constant-Q chroma (``librosa.feature.chroma_cqt``) is correlated with the
  24 rotations of the Krumhansl-Kessler major/minor profiles (Krumhansl 1990, as used in the
  Krumhansl-Schmuckler algorithm) to tell tonal stems from the rest. The transposition, within
  +-6 semitones, is the one that leaves the least chroma outside the target key's scale (a key
  and its relative major/minor share one); a stem already as much in that scale as it can be is
  not moved, and the profiles only choose among equally good transpositions and name the key.
* **Confidence.** The share of the onset envelope's variance that repeats every beat measures how
  clear a beat is; the best profile correlation (scaled down for a flat chroma) measures tonal
  content. Below :data:`MIN_BEAT_CONFIDENCE` / :data:`MIN_KEY_CORRELATION` a stem is left alone
  on that axis and the report says why.
"""

from __future__ import annotations

import math
import shutil
import warnings
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import MusicStemsError
from ..spec import Key, check_bpm, check_finite, parse_key

__all__ = ["align_stems", "AlignedStems", "ANALYSIS_SR", "MIN_BEAT_CONFIDENCE",
           "MIN_KEY_CORRELATION"]

#: Rate of the mono copy every measurement is made on, Hz. Onsets and chroma below 5.5 kHz are
#: all the analysis needs, and a quarter of the samples of 44.1 kHz costs a quarter of the time.
ANALYSIS_SR = 11025
_HOP = 128            # onset envelope hop: 11.6 ms at ANALYSIS_SR
_ONSET_N_FFT = 512    # 46 ms: short enough that bass and clicks peak within ~2 ms of each other
_CHROMA_HOP = 512
_HARMONICS = 4        # beat-frequency harmonics in the tempo / phase fit

#: Share of the onset envelope's variance that must repeat every beat for a stem to count as
#: rhythmic. Drums, bass and chord stabs measure 0.35-0.85, syncopated leads 0.25-0.35,
#: sustained pads, drones and noise below 0.15.
MIN_BEAT_CONFIDENCE = 0.2
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
_MIN_TEMPO_DURATION_S = 4.0
_MIN_KEY_DURATION_S = 1.0
#: Tempo ratios closer to 1 than this are left alone: 0.1 % drifts 30 ms over 30 s, less than the
#: measurement noise on real music, and a phase vocoder pass costs more than it gains.
_STRETCH_TOLERANCE = 1e-3
#: Shifts below 5 ms are left out: within measurement noise and below an audible flam.
_MIN_OFFSET_S = 0.005
_MAX_SEMITONES = 6
# A stem's tempo reading times one of these that lands within _FOLD_TOLERANCE of the target is
# the same tempo read in half / double time or in a 2:3 / 3:2 relation (the bands do not
# overlap: neighbouring factors are >= 4/3 apart, more than 1.1 ** 2).
_TEMPO_FACTORS = (1.0, 2.0, 0.5, 1.5, 2.0 / 3.0, 3.0, 1.0 / 3.0)
_FOLD_TOLERANCE = 1.1
# Otherwise the reading is taken as it is or an octave (beat trackers' classic error) off.
_OCTAVE_FACTORS = (1.0, 2.0, 0.5, 4.0, 0.25)
_MAX_CHANNELS = 16
_SILENCE_PEAK = 1e-6  # -120 dBFS

# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class AlignedStems:
    """What :func:`align_stems` returns.

    Attributes
    ----------
    stems : dict of str -> np.ndarray [shape=(channels, samples)], float32
        The aligned stems, each exactly as long as its input.
    bpm : float or None
        Tempo of the common beat grid, in beats per minute: ``bpm`` when it was given (and
        ``stretch`` is on), else the measured tempo of the reference stem. ``None`` when both
        ``stretch`` and ``beat_offset`` are off, or no tempo was given and none was measured.
    key : str or None
        Target key, e.g. ``"A minor"``: ``key`` when it was given, else the key of the reference
        (or most tonal) stem. Tonal stems are now in it or in its relative major/minor. ``None``
        when ``pitch_shift`` is off, or no key was given and no stem has a clear one.
    report : dict of str -> dict
        Per stem: ``detected_bpm``, ``stretch_ratio`` (speed factor applied, > 1 is faster),
        ``offset_s`` (shift applied, > 0 is later), ``detected_key``, ``semitones`` (applied),
        ``confidence`` (``{"beat": ..., "key": ...}``), ``skipped_reason`` (``None`` or why an
        axis was left alone) and ``engine`` (what stretched or shifted it, ``None`` if nothing).
    reference : str or None
        The stem whose beat grid the others were moved to (it is never shifted).
    """

    stems: dict[str, np.ndarray]
    bpm: float | None
    key: str | None
    report: dict[str, dict[str, Any]]
    reference: str | None = None


@dataclass
class _Rhythm:
    bpm: float          # refined tempo of the stem as it is
    confidence: float   # share of onset-envelope variance repeating every beat
    envelope: np.ndarray


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
) -> AlignedStems:
    """Align the tempo, beat grid and key of separately generated stems.

    Parameters
    ----------
    stems : dict of str -> np.ndarray [shape=(channels, samples) or (samples,)]
        Floating-point audio in [-1, 1], all the same length. A value may also be an
        ``(array, sample_rate)`` pair, whose rate must equal ``sample_rate``.
    sample_rate : int in [8000, 384000], Hz
        Sample rate of every stem.
    bpm : float in [20, 300], optional
        Target tempo in beats per minute. When omitted, the tempo of ``reference`` (or of the
        most rhythmic stem) is followed.
    key : str or Key, optional
        Target key such as ``"A minor"`` or ``"F#m"``. When omitted, the key of ``reference``
        (or of the most clearly tonal stem) is followed.
    stretch : bool
        Time-stretch rhythmic stems to the target tempo.
    beat_offset : bool
        Shift rhythmic stems by up to half a beat so their beats land on the reference's grid.
    pitch_shift : bool
        Transpose tonal stems to the target key (or its relative) by at most 6 semitones.
    reference : str, optional
        Name of the stem that sets the beat grid, and the tempo and key when ``bpm`` / ``key``
        are not given. Defaults to the most rhythmic stem (grid, tempo) and the most tonal stem
        (key).

    Returns
    -------
    AlignedStems
        ``stems`` (float32, (channels, samples), input lengths to the sample), ``bpm``, ``key``,
        ``report`` and ``reference``.

    Raises
    ------
    MusicStemsError
        For a bad argument or stem (wrong shape or type, empty, silent, NaN/inf samples, another
        sample rate, different lengths, bpm outside [20, 300], an unknown key, an unknown
        reference), before any audio is processed.

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
    audio, sample_rate, bpm, target_key, reference = _check_inputs(
        stems, sample_rate, bpm=bpm, key=key, stretch=stretch, beat_offset=beat_offset,
        pitch_shift=pitch_shift, reference=reference)
    num_samples = next(iter(audio.values())).shape[-1]
    duration_s = num_samples / sample_rate

    mono = {name: _analysis_copy(y, sample_rate) for name, y in audio.items()}
    report = {name: {"detected_bpm": None, "stretch_ratio": 1.0, "offset_s": 0.0,
                     "detected_key": None, "semitones": 0,
                     "confidence": {"beat": None, "key": None},
                     "skipped_reason": None, "engine": None} for name in audio}
    reasons: dict[str, list[str]] = {name: [] for name in audio}

    rates = {name: 1.0 for name in audio}
    offsets_s = {name: 0.0 for name in audio}
    target_bpm = grid_stem = None
    if stretch or beat_offset:
        target_bpm, grid_stem = _align_tempo(mono, duration_s, bpm, reference, stretch,
                                             beat_offset, rates, offsets_s, report, reasons)

    semitones = {name: 0 for name in audio}
    key_name = None
    if pitch_shift:
        key_name = _align_key(mono, duration_s, target_key, reference, semitones, report,
                              reasons)

    preferred = _engine()
    out: dict[str, np.ndarray] = {}
    for name, y in audio.items():
        engine = None
        if rates[name] != 1.0 or semitones[name] != 0:
            y, engine = _stretch_and_shift(y, sample_rate, rates[name], semitones[name],
                                           preferred)
        shift = int(round(offsets_s[name] * sample_rate))
        out[name] = _place(y, shift, num_samples)
        entry = report[name]
        entry["stretch_ratio"] = round(rates[name], 6)
        entry["offset_s"] = round(shift / sample_rate, 5)
        entry["semitones"] = semitones[name]
        entry["engine"] = engine
        entry["skipped_reason"] = "; ".join(reasons[name]) or None
    return AlignedStems(stems=out, bpm=None if target_bpm is None else round(target_bpm, 3),
                        key=key_name, report=report, reference=grid_stem)


# --------------------------------------------------------------------------------------------
# validation


def _check_flag(value: Any, argument: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise MusicStemsError(f"{argument}={value!r} is not allowed; pass True or False.")
    return bool(value)


def _check_inputs(stems, sample_rate, *, bpm, key, stretch, beat_offset, pitch_shift,
                  reference):
    """Check every argument and stem before any work; return the stems as float32
    (channels, samples) arrays, the sample rate as an int, bpm, the target Key and reference."""
    if isinstance(sample_rate, np.generic):  # np.int64(32000) from a file reader is fine
        sample_rate = sample_rate.item()
    if isinstance(bpm, np.generic):
        bpm = bpm.item()
    rate = check_finite(sample_rate, "sample_rate", low=8000, high=384000,
                        fix="Pass the rate of the audio in Hz, e.g. 32000 for MusicGen.")
    if rate != int(rate):
        raise MusicStemsError(f"sample_rate={sample_rate!r} is not a whole number of Hz; "
                              "pass e.g. 32000 or 44100.")
    rate = int(rate)
    for flag, argument in ((stretch, "stretch"), (beat_offset, "beat_offset"),
                           (pitch_shift, "pitch_shift")):
        _check_flag(flag, argument)
    bpm = check_bpm(bpm)
    target_key = parse_key(key)
    if not isinstance(stems, Mapping):
        raise MusicStemsError(
            f"stems={type(stems).__name__} is not a dict; pass {{'drums': audio, ...}} with "
            "float32 numpy arrays shaped (channels, samples).")
    if not stems:
        raise MusicStemsError("stems is empty; pass at least one stem, e.g. {'drums': audio}.")
    audio: dict[str, np.ndarray] = {}
    for name, value in stems.items():
        if not isinstance(name, str) or not name:
            raise MusicStemsError(f"stems has the name {name!r}; name every stem with a "
                                  "non-empty text, e.g. 'drums'.")
        audio[name] = _check_stem(name, value, rate)
    lengths = {name: y.shape[-1] for name, y in audio.items()}
    if len(set(lengths.values())) > 1:
        listing = ", ".join(f"{name} {n}" for name, n in lengths.items())
        raise MusicStemsError(
            f"stems have different lengths ({listing} samples); alignment keeps every length "
            "exact, so pad or trim them to one length first (librosa.util.fix_length).")
    if reference is not None and reference not in audio:
        raise MusicStemsError(
            f"reference={reference!r} is not one of the stems ({', '.join(map(repr, audio))}); "
            "pass one of those names, or None to follow the most rhythmic / most tonal stem.")
    return audio, rate, bpm, target_key, reference


def _check_stem(name: str, value: Any, sample_rate: int) -> np.ndarray:
    if isinstance(value, tuple):
        if len(value) != 2:
            raise MusicStemsError(f"stem {name!r} is a tuple of {len(value)} items; pass an "
                                  "array, or an (array, sample_rate) pair.")
        value, stem_rate = value
        if isinstance(stem_rate, bool) or not isinstance(stem_rate, (int, float, np.number)) \
                or float(stem_rate) != sample_rate:
            raise MusicStemsError(
                f"stem {name!r} has sample rate {stem_rate!r} but sample_rate={sample_rate}; "
                f"resample it first, e.g. librosa.resample(y, orig_sr={stem_rate!r}, "
                f"target_sr={sample_rate}).")
    if not isinstance(value, np.ndarray):
        raise MusicStemsError(
            f"stem {name!r} is a {type(value).__name__}, not a numpy array; pass "
            "np.asarray(audio, dtype=np.float32) shaped (channels, samples).")
    if not np.issubdtype(value.dtype, np.floating):
        raise MusicStemsError(
            f"stem {name!r} has dtype {value.dtype}; pass floating-point audio in [-1, 1], e.g. "
            "audio.astype(np.float32) / 32768 for 16-bit samples.")
    if value.ndim == 1:
        value = value[None, :]
    if value.ndim != 2:
        raise MusicStemsError(f"stem {name!r} has shape {value.shape}; pass (channels, samples) "
                              "or (samples,).")
    channels, samples = value.shape
    if samples == 0 or channels == 0:
        raise MusicStemsError(f"stem {name!r} is empty (shape {value.shape}); pass audio with at "
                              "least one sample, or leave the stem out.")
    if channels > _MAX_CHANNELS or channels > samples:
        raise MusicStemsError(
            f"stem {name!r} has shape {value.shape}, which reads as {channels} channels of "
            f"{samples} samples; audio is (channels, samples): pass audio.T.")
    finite = np.isfinite(value)
    if not finite.all():
        bad = int(value.size - np.count_nonzero(finite))
        first = int(np.argmin(finite.all(axis=0)))
        raise MusicStemsError(
            f"stem {name!r} has {bad} NaN or infinite samples (the first at sample {first}); "
            "fix the audio, e.g. np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0).")
    peak = float(np.max(np.abs(value)))
    if peak < _SILENCE_PEAK:
        raise MusicStemsError(
            f"stem {name!r} is silent (peak {peak:.3g}, below -120 dBFS); it has no tempo or "
            "key to align. Leave it out of the stems given to align_stems.")
    return np.ascontiguousarray(value, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# analysis


def _analysis_copy(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono mix at ANALYSIS_SR, float32 (lower rates are upsampled: no new content, but one
    analysis setup for every input)."""
    import librosa

    mono = y.mean(axis=0)
    if sample_rate == ANALYSIS_SR:
        return mono
    return librosa.resample(mono, orig_sr=sample_rate, target_sr=ANALYSIS_SR,
                            res_type="soxr_mq")


def _beat_coefficients(envelope: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """Fourier coefficients of the (Hann-windowed, zero-mean) onset envelope at the first
    ``_HARMONICS`` multiples of each frequency: shape (len(freqs_hz), _HARMONICS)."""
    times_s = np.arange(len(envelope)) * (_HOP / ANALYSIS_SR)
    weighted = (envelope - envelope.mean()) * np.hanning(len(envelope))
    harmonics = np.arange(1, _HARMONICS + 1)
    phases = np.multiply.outer(np.multiply.outer(np.atleast_1d(freqs_hz), harmonics), times_s)
    return np.exp(-2j * np.pi * phases) @ weighted


def _refine_bpm(envelope: np.ndarray, coarse_bpm: float) -> float:
    """Tempo that maximises the summed harmonic magnitudes within +/-8 % of ``coarse_bpm``:
    a 0.25 % grid, then a 0.01 % grid around its best point, then a parabola."""
    best = math.log(coarse_bpm)
    for span, step in ((0.08, 0.0025), (0.003, 0.0001)):
        grid = best + np.arange(-span, span + step / 2, step)
        score = np.abs(_beat_coefficients(envelope, np.exp(grid) / 60.0)).sum(axis=1)
        i = int(np.argmax(score))
        best = float(grid[i])
        if 0 < i < len(grid) - 1:
            a, b, c = score[i - 1:i + 2]
            if a - 2 * b + c < 0:
                best += 0.5 * (a - c) / (a - 2 * b + c) * step
    return math.exp(best)


def _beat_phase_s(envelope: np.ndarray, bpm: float) -> float:
    """Time in [0, 60/bpm) s at which a pulse train of period 60/bpm best fits the onsets."""
    freq = bpm / 60.0
    coeffs = _beat_coefficients(envelope, np.array([freq]))[0]
    harmonics = np.arange(1, _HARMONICS + 1)
    taper = np.exp(-(harmonics / _HARMONICS) ** 2)  # smooth the pulse so the fit has one peak
    candidates = np.arange(0.0, 1.0, 1.0 / 1000) / freq
    fit = (np.exp(2j * np.pi * np.multiply.outer(candidates, harmonics) * freq)
           @ (coeffs * taper)).real
    return float(candidates[int(np.argmax(fit))])


def _beat_confidence(envelope: np.ndarray, bpm: float, bins: int = 24) -> float:
    """Share of the onset envelope's variance explained by its average one-beat pattern."""
    times_s = np.arange(len(envelope)) * (_HOP / ANALYSIS_SR)
    centred = envelope - envelope.mean()
    total = float(centred @ centred)
    if total <= 0.0:
        return 0.0
    which = np.minimum((np.mod(times_s * bpm / 60.0, 1.0) * bins).astype(int), bins - 1)
    pattern = np.bincount(which, centred, bins) / np.maximum(np.bincount(which, None, bins), 1)
    return float(np.sum(pattern[which] ** 2) / total)


def _rhythm(mono: np.ndarray) -> _Rhythm:
    import librosa

    envelope = librosa.onset.onset_strength(y=mono, sr=ANALYSIS_SR, hop_length=_HOP,
                                            n_fft=_ONSET_N_FFT, n_mels=64)
    if not np.any(envelope > 0):  # a steady tone: no onsets at all
        return _Rhythm(bpm=float("nan"), confidence=0.0, envelope=envelope)
    coarse = float(librosa.feature.tempo(onset_envelope=envelope, sr=ANALYSIS_SR,
                                         hop_length=_HOP)[0])
    bpm = _refine_bpm(envelope, coarse)
    return _Rhythm(bpm=bpm, confidence=_beat_confidence(envelope, bpm), envelope=envelope)


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
    # between notes do not flatten the profile.
    with warnings.catch_warnings():
        # The C1 octave's filters are ~1.6 s long; shorter stems are zero-padded, which is fine.
        warnings.filterwarnings("ignore", message=r"n_fft=\d+ is too large", category=UserWarning)
        # Noise has no peaks to estimate tuning from; librosa then assumes A440, as we want.
        warnings.filterwarnings("ignore", message="Trying to estimate tuning from empty",
                                category=UserWarning)
        chroma = librosa.feature.chroma_cqt(y=mono, sr=ANALYSIS_SR, hop_length=_CHROMA_HOP,
                                            fmin=librosa.note_to_hz("C1"), n_octaves=6,
                                            norm=None)
    profile = chroma.sum(axis=1)
    contrast = float(profile.std() / profile.mean()) if profile.mean() > 0 else 0.0
    correlations = _key_correlations(profile)
    mode, tonic = np.unravel_index(int(np.argmax(correlations)), correlations.shape)
    total = float(profile.sum())
    return _Tonality(key=Key(int(tonic), "major" if mode == 0 else "minor"),
                     correlation=float(correlations[mode, tonic]), contrast=contrast,
                     correlations=correlations,
                     profile=profile / total if total > 0 else np.full(12, 1 / 12))


# --------------------------------------------------------------------------------------------
# decisions


def _fold(detected_bpm: float, target_bpm: float) -> float:
    """How to read ``detected_bpm`` against ``target_bpm``: the factor of _TEMPO_FACTORS that
    brings it within 10 % of the target, else the octave that brings it closest (a 100 BPM loop
    aimed at 128 BPM is sped up by 1.28, not read as 2:3 and slowed to 85.3)."""
    for factor in _TEMPO_FACTORS:
        if abs(math.log(detected_bpm * factor / target_bpm)) <= math.log(_FOLD_TOLERANCE):
            return factor
    distances = [abs(math.log(detected_bpm * f / target_bpm)) for f in _OCTAVE_FACTORS]
    return _OCTAVE_FACTORS[int(np.argmin(distances))]


def _pick(candidates: dict[str, float], reference: str | None, what: str,
          reasons: dict[str, list[str]]) -> str | None:
    """The reference if it qualifies, else the candidate with the highest score."""
    if reference is not None and reference in candidates:
        return reference
    choice = max(candidates, key=candidates.get) if candidates else None
    if reference is not None and choice is not None:
        reasons[reference].append(f"reference has no clear {what}; {choice!r} was followed")
    return choice


def _align_tempo(mono, duration_s, bpm, reference, stretch, beat_offset, rates, offsets_s,
                 report, reasons):
    """Measure every stem's tempo and beat phase; fill ``rates`` (speed factors) and
    ``offsets_s``. Returns (target bpm, name of the grid stem)."""
    if duration_s < _MIN_TEMPO_DURATION_S:
        for name in mono:
            reasons[name].append(f"tempo: {duration_s:.2f} s is too short to measure a tempo "
                                 f"(needs {_MIN_TEMPO_DURATION_S:g} s)")
        return bpm, None
    rhythms = {name: _rhythm(y) for name, y in mono.items()}
    rhythmic: dict[str, float] = {}
    for name, rhythm in rhythms.items():
        entry = report[name]
        entry["confidence"]["beat"] = round(rhythm.confidence, 3)
        if math.isfinite(rhythm.bpm):
            entry["detected_bpm"] = round(rhythm.bpm, 3)
        if rhythm.confidence >= MIN_BEAT_CONFIDENCE:
            rhythmic[name] = rhythm.confidence
        else:
            reasons[name].append(f"tempo: no clear beat (beat confidence "
                                 f"{rhythm.confidence:.2f} < {MIN_BEAT_CONFIDENCE})")
    grid_stem = _pick(rhythmic, reference, "beat", reasons)
    if grid_stem is None:
        return bpm, None
    # Without stretching, the grid can only follow the tempo the reference already has.
    target_bpm = bpm if bpm is not None and stretch else rhythms[grid_stem].bpm

    phases: dict[str, float] = {}
    for name in rhythmic:
        detected = rhythms[name].bpm
        factor = _fold(detected, target_bpm)
        rate = target_bpm / (detected * factor) if stretch else 1.0
        if abs(rate - 1.0) < _STRETCH_TOLERANCE:
            rate = 1.0
        rates[name] = rate
        # Beat phase in the stem's own time, then in output time. Measured at the target beat,
        # except for a stem at 2/3 of the target tempo (factor 3/2): it pulses every 1.5 beats,
        # which no one-beat pulse train fits, so its own pulse is used.
        phase_bpm = detected * factor if factor <= 1.0 or factor.is_integer() else detected
        phases[name] = _beat_phase_s(rhythms[name].envelope, phase_bpm) / rate

    if beat_offset:
        beat_s = 60.0 / target_bpm
        for name, phase in phases.items():
            if name == grid_stem:
                continue
            offset = (phases[grid_stem] - phase + beat_s / 2) % beat_s - beat_s / 2
            offsets_s[name] = offset if abs(offset) >= _MIN_OFFSET_S else 0.0
    return target_bpm, grid_stem


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


# --------------------------------------------------------------------------------------------
# processing


def _engine() -> str:
    """``"rubberband"`` when pyrubberband and its command-line tool are both installed, else
    librosa's phase vocoder."""
    try:
        import pyrubberband  # noqa: F401
    except ImportError:
        return "librosa-phase-vocoder"
    return "rubberband" if shutil.which("rubberband") else "librosa-phase-vocoder"


def _stretch_and_shift(y: np.ndarray, sample_rate: int, rate: float, semitones: int,
                       engine: str) -> tuple[np.ndarray, str]:
    """Speed up by ``rate`` and transpose by ``semitones``; returns (channels, samples) audio of
    about ``len / rate`` samples and the name of the engine that did it."""
    fallback = "librosa-phase-vocoder"
    if engine == "rubberband":
        try:
            return _rubberband(y, sample_rate, rate, semitones), engine
        except Exception as error:  # a broken install must not lose the song: fall back, say so
            fallback = f"librosa-phase-vocoder (rubberband failed: {type(error).__name__})"
    import librosa

    # Pitch by a factor a = 2**(s/12): stretch by rate/a, then play the result back a times
    # faster by resampling from sr*a to sr (librosa.effects.pitch_shift does the same in two
    # passes). Both steps keep t = 0 fixed, so beat positions scale by exactly 1/rate.
    factor = 2.0 ** (semitones / 12.0)
    n_fft = 1 << max(9, min(12, int(round(math.log2(0.05 * sample_rate)))))  # ~50 ms window
    z = librosa.effects.time_stretch(y, rate=rate / factor, n_fft=n_fft,
                                     hop_length=n_fft // 4)
    if semitones:
        z = librosa.resample(z, orig_sr=sample_rate * factor, target_sr=sample_rate,
                             res_type="soxr_hq")
    return z, fallback


def _rubberband(y: np.ndarray, sample_rate: int, rate: float, semitones: int) -> np.ndarray:
    import pyrubberband

    z = y.T  # pyrubberband wants (samples, channels)
    if rate != 1.0:
        z = pyrubberband.time_stretch(z, sample_rate, rate)
    if semitones:
        z = pyrubberband.pitch_shift(z, sample_rate, semitones)
    return np.atleast_2d(np.asarray(z, dtype=np.float32).T)


def _place(y: np.ndarray, shift: int, length: int) -> np.ndarray:
    """Delay (``shift`` > 0) or advance ``y`` by ``shift`` samples and cut or zero-pad it to
    ``length``; float32 (channels, length)."""
    out = np.zeros((y.shape[0], length), dtype=np.float32)
    start = max(shift, 0)
    source = y[:, max(-shift, 0):]
    count = max(0, min(length - start, source.shape[-1]))
    out[:, start:start + count] = source[:, :count]
    return out
