"""Tempo and beat grid of each stem, measured on its onset envelope, and what to change.

* **Tempo.** Onset strength (log-mel spectral flux, ``librosa.onset.onset_strength``) gives a
  coarse tempo from its autocorrelation tempogram (``librosa.feature.tempo``), which is refined by
  maximising the magnitude of the envelope's Fourier series at the first :data:`_HARMONICS`
  multiples of the beat frequency: a 10 s stem is measured to a few hundredths of a percent where
  the tempogram's lag grid alone is 2-3 % coarse. A reading that is half, double, 2/3, 3/2, a
  third or three times the target to within 10 % (:data:`_TEMPO_FACTORS`) is taken as that
  relation, so a 64 or 256 BPM reading of a 128 BPM part is not stretched; any other reading is
  stretched to the target as it is, or from the octave nearest to it.
* **Legato stems.** A stem whose onsets show no clear beat is also read on two note-change
  envelopes (:mod:`.novelty`), and the clearest reading is kept. One still below
  :data:`MIN_BEAT_CONFIDENCE` is used only when it folds to within 10 % of the target; its
  confidence is reported either way.
* **Reading against target.** A stem is left at its speed when the stretch would move its end
  by less than :data:`_MIN_DRIFT_S`, or when its beat is about as clear at the target tempo as
  at its reading (:data:`_TARGET_AGREEMENT`): the reading's error, not the stem, differs.
* **Beat grid.** The beat phase is the time within one beat where the envelope's harmonics add up
  best (a pulse train fitted to the onsets); each stem is delayed or advanced by at most half a
  beat so that its beats fall on the grid of one stem, the *reference* (``reference=`` or the most
  rhythmic stem), which is not shifted. Where either stem's tempo came from note changes, the
  phases compared are those of note starts (:func:`.novelty._rise_phase_s`), which do not lag
  by the attack. A stem at the grid stem's tempo already is moved only by an onset phase off
  the grid's 16ths (:func:`_on_grid_offset`).
* **Confidence.** The share of the onset envelope's variance that repeats every beat measures how
  clear a beat is. Below :data:`MIN_BEAT_CONFIDENCE` a stem is left alone on this axis and the
  report says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .common import ANALYSIS_SR, _pick
from .novelty import _note_starts, _novelties, _rise_phase_s

_HOP = 128            # onset envelope hop: 11.6 ms at ANALYSIS_SR
_ONSET_N_FFT = 512    # 46 ms: short enough that bass and clicks peak within ~2 ms of each other
_HARMONICS = 4        # beat-frequency harmonics in the tempo / phase fit

#: Share of the onset envelope's variance that must repeat every beat for a stem to count as
#: rhythmic. Drums, bass and chord stabs measure 0.35-0.85, syncopated leads 0.25-0.35,
#: sustained pads, drones and noise below 0.15.
MIN_BEAT_CONFIDENCE = 0.2
_MIN_TEMPO_DURATION_S = 4.0
#: Tempo ratios closer to 1 than this are left alone: 0.1 % drifts 30 ms over 30 s, less than the
#: measurement noise on real music, and a phase vocoder pass costs more than it gains.
_STRETCH_TOLERANCE = 1e-3
#: Shifts below 5 ms are left out: within measurement noise and below an audible flam.
_MIN_OFFSET_S = 0.005
# A stem's tempo reading times one of these that lands within _FOLD_TOLERANCE of the target is
# the same tempo read in half / double time or in a 2:3 / 3:2 relation (the bands do not
# overlap: neighbouring factors are >= 4/3 apart, more than 1.1 ** 2).
_TEMPO_FACTORS = (1.0, 2.0, 0.5, 1.5, 2.0 / 3.0, 3.0, 1.0 / 3.0)
_FOLD_TOLERANCE = 1.1
# Otherwise the reading is taken as it is or an octave (beat trackers' classic error) off.
_OCTAVE_FACTORS = (1.0, 2.0, 0.5, 4.0, 0.25)
# A low-confidence reading (below MIN_BEAT_CONFIDENCE) is folded onto the target with these
# only: a line of whole notes or one chord per bar reads a quarter of the tempo.
_LOW_CONFIDENCE_FACTORS = (1.0, 2.0, 0.5, 4.0, 0.25)
#: Beat confidence a low-confidence reading still needs to be used: noise and a drone measure
#: below 0.03, the legato lines of musicstems.testing 0.2-0.6 on their clearest envelope.
_MIN_LOW_CONFIDENCE = 0.05
#: Tolerances for tempo read from note changes, whose peaks are broader than onsets: those
#: lines rendered at the true tempo read within 0.15 % of it. Their beat phase comes from note
#: starts (:func:`.novelty._rise_phase_s`), which date attacks of 2-400 ms (plucked bass to
#: choir) within 35 ms of one another, bowed strings the latest: a shift smaller than 40 ms
#: cannot be told from the attack, and is left out, so such stems already on the grid stay
#: bit-identical and one off by more is moved to within the attack spread.
_CHANGES_STRETCH_TOLERANCE = 3e-3
_CHANGES_MIN_OFFSET_S = 0.04
#: How far from a whole number of 16ths an onset phase may read and still count as on the
#: grid: the sketch backend's swung house parts (8-10 % swing) read up to 17 ms off.
_GRID_SLACK_S = 0.02
#: A stretch that would move the stem's end by less than this is left out, whatever the ratio:
#: 8 s parts of the sketch backend, rendered at the exact tempo, read up to 0.22 % off (18 ms
#: over the stem); a part 0.5 % off drifts 40 ms over 8 s and is stretched.
_MIN_DRIFT_S = 0.025
#: A reading is stretched to only when the stem's beat is clearly less clear at the target
#: tempo: when its beat confidence at the target (:func:`_confidence_at_target`) is at least
#: this share of its confidence at its own reading, the reading cannot tell the two apart and
#: the stem is left alone. 8 s parts of the sketch backend, rendered at the target, measure
#: 0.70-2.5 (a chord part or pad read at 4/3, 5/4 or 9/8 of its tempo, its pattern repeating
#: per bar); parts 0.5 % off over 8 s 0.50-0.57, 1 % off 0.30-0.39, the test material 2-8 % off
#: 0.01-0.32.
_TARGET_AGREEMENT = 0.65


@dataclass
class _Rhythm:
    bpm: float          # refined tempo of the stem as it is
    confidence: float   # share of the envelope's variance repeating every beat
    envelope: np.ndarray
    source: str = "onsets"  # which envelope: "onsets", "chroma flux" or "chroma contrast"


@dataclass(frozen=True)
class TempoDecision:
    """What the tempo step measured and decided for one stem.

    ``rate`` is the speed factor to apply (> 1 faster), ``offset_s`` the shift in output time
    (> 0 later); ``source`` names the envelope the tempo was read from; ``reasons`` say why an
    axis was left alone, or how a low-confidence reading was used.
    """

    detected_bpm: float | None = None
    confidence: float | None = None
    source: str | None = None
    rate: float = 1.0
    offset_s: float = 0.0
    reasons: tuple[str, ...] = ()


def _beat_coefficients(envelope: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """Fourier coefficients of the (Hann-windowed, zero-mean) onset envelope at the first
    ``_HARMONICS`` multiples of each frequency: shape (len(freqs_hz), _HARMONICS)."""
    times_s = np.arange(len(envelope)) * (_HOP / ANALYSIS_SR)
    weighted = (envelope - envelope.mean()) * np.hanning(len(envelope))
    # exp(-2 pi i h f t) as the h-th power of exp(-2 pi i f t): one complex exponential per
    # frequency and frame instead of _HARMONICS (the same to 1e-13, twice as fast).
    fundamental = np.exp(-2j * np.pi * np.multiply.outer(np.atleast_1d(freqs_hz), times_s))
    shape = (len(fundamental), _HARMONICS, len(times_s))
    harmonics = np.cumprod(np.broadcast_to(fundamental[:, None, :], shape), axis=1)
    return harmonics @ weighted


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


def _mean_tempogram(envelope: np.ndarray) -> np.ndarray:
    """``librosa.feature.tempogram(onset_envelope=envelope, sr=ANALYSIS_SR, hop_length=_HOP,
    win_length=W).mean(axis=-1)`` for the window ``librosa.feature.tempo`` uses (W = 8 s of
    frames), equal to rounding: shape (W,), lag 0 first.

    The tempogram is the autocorrelation of every Hann-windowed 8 s stretch of the envelope,
    each divided by its largest value, which is its lag-0 value: the frame's energy. The
    autocorrelation is linear, so the mean of the normalised ones is the inverse FFT of the
    energy-weighted mean power spectrum: one inverse FFT instead of one per frame, and FFTs
    along contiguous rows (docs/performance.md has what it saves).
    """
    import librosa
    import scipy.fft
    import scipy.signal

    width = int(librosa.time_to_frames(8.0, sr=ANALYSIS_SR, hop_length=_HOP))
    frames = np.lib.stride_tricks.sliding_window_view(
        np.pad(envelope, width // 2, mode="linear_ramp", end_values=0), width)[:len(envelope)]
    frames = frames * scipy.signal.get_window("hann", width)
    n_fft = scipy.fft.next_fast_len(2 * width - 1, real=True)
    spectra = scipy.fft.rfft(frames, n=n_fft, axis=-1)
    power = spectra.real ** 2 + spectra.imag ** 2
    energy = np.einsum("ij,ij->i", frames, frames)
    energy[energy < np.finfo(energy.dtype).tiny] = 1.0  # librosa leaves all-zero frames as they are
    # einsum rather than a BLAS product: multi-threaded BLAS waits for all its threads on every
    # call, so it stalls whenever another process holds a core.
    mean_power = np.einsum("t,tk->k", 1.0 / energy, power)
    return scipy.fft.irfft(mean_power, n=n_fft)[:width] / len(envelope)


def _reading(envelope: np.ndarray, source: str) -> _Rhythm:
    import librosa

    if not np.any(envelope > 0):  # a steady tone: no onsets or changes at all
        return _Rhythm(bpm=float("nan"), confidence=0.0, envelope=envelope, source=source)
    # librosa.feature.tempo averages its tempogram over time before it weighs the lags; given
    # that average (one frame), it picks the same lag as from the envelope.
    coarse = float(librosa.feature.tempo(tg=_mean_tempogram(envelope)[:, None], sr=ANALYSIS_SR,
                                         hop_length=_HOP)[0])
    bpm = _refine_bpm(envelope, coarse)
    return _Rhythm(bpm=bpm, confidence=_beat_confidence(envelope, bpm), envelope=envelope,
                   source=source)


def _rhythm(mono: np.ndarray) -> _Rhythm:
    """The onset reading; for a stem without a clear beat in its onsets, the clearest of the
    onset and the note-change readings (:mod:`.novelty`)."""
    import librosa

    envelope = librosa.onset.onset_strength(y=mono, sr=ANALYSIS_SR, hop_length=_HOP,
                                            n_fft=_ONSET_N_FFT, n_mels=64)
    best = _reading(envelope, "onsets")
    if best.confidence >= MIN_BEAT_CONFIDENCE:
        return best
    for source, curve in _novelties(mono, _HOP).items():
        reading = _reading(curve[:len(envelope)], source)
        if reading.confidence > best.confidence:
            best = reading
    return best


def _confidence_at_target(rhythm: _Rhythm, target_bpm: float, factor: float) -> float:
    """Beat confidence of the stem's envelope, as it is, at the target tempo: as the reading
    folds onto it (``target / factor``), or at the target's beat, double, half, 16th or bar
    (``_OCTAVE_FACTORS``), whichever is clearest: a part at the target tempo has a clear beat
    at one of them, whatever its rhythm (one chord per bar, off-beat stabs, 3+3+2 figures)."""
    candidates = [target_bpm / factor] + [target_bpm * g for g in _OCTAVE_FACTORS]
    return max(_beat_confidence(rhythm.envelope, b) for b in candidates)


def _needed_rate(rhythm: _Rhythm, target_bpm: float, factor: float, duration_s: float
                 ) -> tuple[float, str | None]:
    """Speed factor that puts the stem, read as ``factor`` times its reading, at the target
    tempo; 1.0 when the difference is within what the reading can tell (and then, when the
    reading itself was far off, the reason)."""
    rate = target_bpm / (rhythm.bpm * factor)
    tolerance = _STRETCH_TOLERANCE if rhythm.source == "onsets" else _CHANGES_STRETCH_TOLERANCE
    if abs(rate - 1.0) < tolerance or duration_s * abs(1.0 / rate - 1.0) < _MIN_DRIFT_S:
        return 1.0, None
    at_target = _confidence_at_target(rhythm, target_bpm, factor)
    if at_target >= _TARGET_AGREEMENT * rhythm.confidence:
        # The stem is as much at the target tempo as at its reading: a reading error (a
        # pattern that repeats per bar, a dotted figure), not a tempo to stretch from.
        return 1.0, (f"tempo: reads {rhythm.bpm:.1f} BPM, but its beat is as clear at the "
                     f"target {target_bpm:.1f} BPM (confidence {at_target:.3f} against "
                     f"{rhythm.confidence:.3f}): the reading cannot tell them apart, left alone")
    return rate, None


def _fold(detected_bpm: float, target_bpm: float, factors=_TEMPO_FACTORS) -> float | None:
    """The factor of ``factors`` that brings ``detected_bpm`` within 10 % of ``target_bpm``, or
    None."""
    for factor in factors:
        if abs(math.log(detected_bpm * factor / target_bpm)) <= math.log(_FOLD_TOLERANCE):
            return factor
    return None


def _fold_or_octave(detected_bpm: float, target_bpm: float) -> float:
    """How to read ``detected_bpm`` against ``target_bpm``: the factor of _TEMPO_FACTORS that
    brings it within 10 % of the target, else the octave that brings it closest (a 100 BPM loop
    aimed at 128 BPM is sped up by 1.28, not read as 2:3 and slowed to 85.3)."""
    factor = _fold(detected_bpm, target_bpm)
    if factor is not None:
        return factor
    distances = [abs(math.log(detected_bpm * f / target_bpm)) for f in _OCTAVE_FACTORS]
    return _OCTAVE_FACTORS[int(np.argmin(distances))]


def _on_grid_offset(offset_s: float, beat_s: float, source: str, grid_source: str
                    ) -> tuple[float, str | None]:
    """The shift to apply to a stem that is at the grid stem's tempo already, given the shift
    its beat phase asks for; and the reason when that shift is not applied.

    Two stems at one tempo were most likely made on one grid, so the phase reading has to show
    more than its own error. A note-change phase does not: on chord parts and pads whose notes
    overlap and change once or twice a bar it is off by up to 100 ms. Neither does an onset
    phase a whole number of 16ths (to within :data:`_GRID_SLACK_S`) from the grid stem's: the
    stem's onsets then sit on the grid already, and a syncopated or off-beat part (a house
    bass, off-beat stabs) reads just that.
    """
    if source != "onsets" or grid_source != "onsets":
        if abs(offset_s) < _CHANGES_MIN_OFFSET_S:
            return offset_s, None
        return 0.0, (f"beat: at the grid's tempo already; its beat phase, read from note "
                     f"changes, is {offset_s * 1000:+.0f} ms from the grid's, within what note "
                     f"starts of overlapping notes are read to: left alone")
    sixteenth_s = beat_s / 4
    sixteenths = round(offset_s / sixteenth_s)
    if abs(offset_s - sixteenths * sixteenth_s) >= _GRID_SLACK_S:
        return offset_s, None
    if sixteenths == 0:
        return 0.0, None
    return 0.0, (f"beat: at the grid's tempo with its onsets on the grid's 16ths; its beat "
                 f"phase reads {sixteenths:+d} 16th(s) from the grid's, as a syncopated or "
                 f"off-beat part's does: left alone")


def _align_tempo(mono: dict[str, np.ndarray], durations_s: dict[str, float], bpm, reference,
                 stretch: bool, beat_offset: bool
                 ) -> tuple[float | None, str | None, dict[str, TempoDecision]]:
    """Measure every stem's tempo and beat phase and decide its speed factor and shift.

    Returns (target bpm, name of the grid stem, per-stem :class:`TempoDecision`).
    """
    rhythms: dict[str, _Rhythm] = {}
    notes: dict[str, list[str]] = {name: [] for name in mono}
    for name, y in mono.items():
        if durations_s[name] < _MIN_TEMPO_DURATION_S:
            notes[name].append(f"tempo: {durations_s[name]:.2f} s is too short to measure a "
                               f"tempo (needs {_MIN_TEMPO_DURATION_S:g} s)")
        else:
            rhythms[name] = _rhythm(y)
    clear = {name: r.confidence for name, r in rhythms.items()
             if r.confidence >= MIN_BEAT_CONFIDENCE}
    grid_stem, why = _pick(clear, reference, "beat")
    if why:
        notes[reference].append(why)
    # Without stretching, the grid can only follow the tempo the reference already has.
    target_bpm = bpm if bpm is not None and stretch else (
        rhythms[grid_stem].bpm if grid_stem is not None else None)

    moved: dict[str, tuple[float, float, _Rhythm]] = {}  # name -> (rate, phase bpm, reading)
    on_tempo: set[str] = set()  # stems already at the target tempo, whatever `stretch` says
    for name, rhythm in rhythms.items():
        low = f"no clear beat (beat confidence {rhythm.confidence:.3f} < {MIN_BEAT_CONFIDENCE})"
        if not math.isfinite(rhythm.bpm) or target_bpm is None:
            notes[name].append(f"tempo: {low}")
            continue
        if name in clear:
            factor = _fold_or_octave(rhythm.bpm, target_bpm)
        else:
            # A low-confidence reading is used only when it agrees with the target (a wrong
            # reading of noise agrees only by chance, and then within the tolerance below).
            factor = _fold(rhythm.bpm, target_bpm, _LOW_CONFIDENCE_FACTORS)
            if factor is None or rhythm.confidence < _MIN_LOW_CONFIDENCE:
                notes[name].append(f"tempo: {low}; its reading {rhythm.bpm:.1f} BPM "
                                   + ("is too unclear to use" if factor is not None else
                                      f"does not fold to within 10 % of {target_bpm:.1f}"))
                continue
            notes[name].append(f"tempo: {low}, read from {rhythm.source}; used, as it agrees "
                               f"with the target tempo to within 10 %")
        # Beat phase in the stem's own time, then in output time. Measured at the target beat,
        # except for a stem at 2/3 of the target tempo (factor 3/2): it pulses every 1.5 beats,
        # which no one-beat pulse train fits, so its own pulse is used.
        phase_bpm = rhythm.bpm * factor if factor <= 1.0 or factor.is_integer() else rhythm.bpm
        needed, why = _needed_rate(rhythm, target_bpm, factor, durations_s[name])
        if why:
            notes[name].append(why)
        if needed == 1.0:
            on_tempo.add(name)
            if factor <= 1.0 or factor.is_integer():
                phase_bpm = target_bpm
        rate = needed if stretch else 1.0
        moved[name] = (rate, phase_bpm, rhythm)

    offsets_s = {name: 0.0 for name in mono}
    if beat_offset and grid_stem is not None:
        beat_s = 60.0 / target_bpm
        grid_rate, grid_phase_bpm, grid_rhythm = moved[grid_stem]
        grid_onset_phase = _beat_phase_s(grid_rhythm.envelope, grid_phase_bpm) / grid_rate
        grid_start_phase = None  # the grid stem's note starts, measured when first needed
        for name, (rate, phase_bpm, rhythm) in moved.items():
            if name == grid_stem:
                continue
            if rhythm.source == "onsets" and grid_rhythm.source == "onsets":
                # Onsets date every attack alike: the pulse fit on both is compared.
                grid_phase = grid_onset_phase
                phase = _beat_phase_s(rhythm.envelope, phase_bpm) / rate
                least = _MIN_OFFSET_S
            else:
                # A note-change reading peaks late by the note's attack: note starts on both.
                if grid_start_phase is None:
                    grid_start_phase = _rise_phase_s(
                        _note_starts(mono[grid_stem], _HOP), grid_phase_bpm, _HOP) / grid_rate
                grid_phase = grid_start_phase
                phase = _rise_phase_s(_note_starts(mono[name], _HOP), phase_bpm, _HOP) / rate
                least = _CHANGES_MIN_OFFSET_S
            offset = (grid_phase - phase + beat_s / 2) % beat_s - beat_s / 2
            if name in on_tempo and grid_stem in on_tempo:
                offset, why = _on_grid_offset(offset, beat_s, rhythm.source,
                                              grid_rhythm.source)
                if why:
                    notes[name].append(why)
            offsets_s[name] = offset if abs(offset) >= least else 0.0
    decisions = {}
    for name in mono:
        rhythm = rhythms.get(name)
        rate = moved[name][0] if name in moved else 1.0
        decisions[name] = TempoDecision(
            detected_bpm=round(rhythm.bpm, 3) if rhythm and math.isfinite(rhythm.bpm) else None,
            confidence=round(rhythm.confidence, 3) if rhythm else None,
            source=rhythm.source if rhythm else None, rate=rate, offset_s=offsets_s[name],
            reasons=tuple(notes[name]))
    return target_bpm, grid_stem, decisions
