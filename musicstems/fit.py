"""Fit: how well each stem agrees with the song's shared plan, measured on its audio.

Two axes, each measured only where it means something, for every backend:

* **Rhythm** (rhythmic stems): the share of the stem's detected onsets that land on the plan's
  16th-note grid (with the genre's swing), within a window of :data:`WINDOW_BEATS` of a beat.
  Against the grid, not against the plan's notes: a MusicGen stem plays its own pattern on the
  song's grid, and that fits. Not an F-measure: a stem plays a few of the grid's steps, so the
  share of steps it plays (the recall) says nothing about fit. Onsets scattered at random land
  on the grid by chance with probability ``2 x window / step`` (reported as ``chance``); a stem
  fits when its share reaches :data:`MIN_GRID_LIFT` times that.
* **Harmony** (tonal stems): per bar, the share of the stem's pitch-class energy (chroma) that
  lies on the tones of that bar's planned chord, averaged over the bars in which the stem
  sounds. A flat
  chroma (noise) scores the chance level, 3/12 for a triad and 4/12 for a seventh chord; a
  stem playing only chord tones approaches 1. A stem fits when its share reaches
  :data:`MIN_CHORD_LIFT` times chance.

The bars, measured here on sketch songs of eight genres (80-174 bpm, five stems each) and on
the tiny random-weight MusicGen's noise (three seeds), as multiples of chance: rhythm, sketch
2.0-4.0 and noise 1.2-1.4, bar 1.6; harmony, sketch 1.16-3.0 and noise 0.9-1.04, bar 1.1.
The harmony bar sits close to both: the sketch's lowest are fast leads and walking basses,
whose passing tones are off the chord by design, and a chord-tone share cannot tell a passing
tone from a wrong note. No MusicGen stem has been measured (no weights here).

A stem below the bar on an axis it is measured on does not fit: :func:`measure_fit` names it in
one :class:`~musicstems.errors.MusicStemsWarning` and its report has ``fits=False`` with the
reasons. It measures agreement with the plan, not musical quality. A stem shifted by whole
16ths is still on the grid (the beat's phase is alignment's job, reported there); MusicGen
stems follow the plan's key, not its chords, unless a melody model hears them
(``harmony="plan"``), so their harmony scores sit lower than the sketch's.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

# the mono copy at alignment's analysis rate: onsets and chroma below 5.5 kHz are all we need
from .align.common import ANALYSIS_SR, _analysis_copy
from .checks import check_audio, check_sample_rate
from .errors import MusicStemsError, MusicStemsWarning

__all__ = ["measure_fit", "grid_s", "MIN_GRID_LIFT", "MIN_CHORD_LIFT", "WINDOW_BEATS",
           "ANALYSIS_SR"]

# Onset envelope: 46 ms frames every 5.8 ms. 186 ms frames (librosa's default n_fft at this rate)
# blur a 16th at 174 bpm (86 ms) and put onsets 13-24 ms late on the sketch's voices; 46 ms ones
# put them within ~10 ms. lag=2 with a 3-band maximum filter (SuperFlux, Boeck & Widmer 2013)
# keeps vibrato and filter movement from reading as onsets.
_ONSET_N_FFT = 512
_ONSET_HOP = 64
_ONSET_LAG = 2
_ONSET_MAX_SIZE = 3
_ONSET_DELTA = 0.05
# A constant lag, from one window early to 25 ms late, is searched out before onsets are
# matched: the detector places a hard attack about 5 ms late and a chord's or a soft attack's
# up to 16 ms late, more than the window at fast tempi. Late more than early: detection is
# never early, so an early lag of more than a window would only let a stem late by a 32nd
# match the next step.
_MAX_LATE_S = 0.025
_LAG_STEP_S = 0.0025
_CHROMA_HOP = 512

#: Widest matching window, s: mir_eval's onset evaluation window.
MAX_WINDOW_S = 0.05
#: The window either side of a grid step, as a share of a beat: an eighth of the grid's 16th
#: step, so a stem a 32nd off the grid misses every step while chance stays at a quarter
#: (a quarter-step window would put chance at one half, too close to a fitting stem to tell
#: them apart). 15 ms at 128 bpm, 11 ms at 174 bpm: the onset detector below places the
#: sketch's attacks within about 10 ms, and a constant lag of up to one window is searched.
WINDOW_BEATS = 1 / 32
#: Onsets per bar the plan must give a stem for its rhythm to be measured: one a bar (a held
#: chord, a whole-note bass) is a handful of events in a short song, too few for a share.
MIN_ONSETS_PER_BAR = 2.0
#: Textures whose notes are not where they are heard: held chords fade in and their filters move.
_NOT_RHYTHMIC = ("sustain",)
#: Roles with no pitch to compare with a chord.
_NOT_TONAL = ("drums",)

#: A rhythmic stem fits when its share of onsets on the grid reaches this many times chance.
MIN_GRID_LIFT = 1.6
#: A tonal stem fits when its chord-tone share reaches this many times chance.
MIN_CHORD_LIFT = 1.1


def grid_s(plan) -> np.ndarray:
    """Times of every 16th step of the plan, s, with the genre's swing on the off-beat 16ths
    (the grid every planned note starts on), up to the song's end."""
    from .plan.genres import GENRES
    from .plan.score import STEP

    swing_ticks = round(GENRES.get(plan.genre, GENRES["default"]).swing * STEP)
    steps = np.arange(int(np.ceil(plan.end_tick / STEP)) + 1)
    ticks = steps * STEP + np.where(steps % 2 == 1, swing_ticks, 0)
    ticks = ticks[ticks < plan.end_tick]
    return ticks * plan.beat_s / plan.ticks_per_beat


def _planned_onsets_s(plan, name: str, merge_s: float) -> np.ndarray:
    """Start times of the stem's planned notes, s; starts within ``merge_s`` of the previous
    onset (a chord's notes, a strum's strings) are one onset."""
    starts = sorted({plan.seconds(n.start) for n in plan.parts[name].notes})
    onsets: list[float] = []
    for start in starts:
        if start >= plan.duration_s:
            break
        if not onsets or start - onsets[-1] > merge_s:
            onsets.append(start)
    return np.array(onsets)


def _on_grid(onsets_s: np.ndarray, grid: np.ndarray, window_s: float) -> np.ndarray:
    """Signed distance of each onset to its nearest grid step, s, where within ``window_s``;
    NaN where not."""
    right = np.clip(np.searchsorted(grid, onsets_s), 1, grid.size - 1)
    before, after = onsets_s - grid[right - 1], onsets_s - grid[right]
    nearest = np.where(np.abs(before) <= np.abs(after), before, after)
    return np.where(np.abs(nearest) <= window_s, nearest, np.nan)


def _detected_onsets_s(mono: np.ndarray) -> np.ndarray:
    import librosa

    envelope = librosa.onset.onset_strength(y=mono, sr=ANALYSIS_SR, hop_length=_ONSET_HOP,
                                            n_fft=_ONSET_N_FFT, lag=_ONSET_LAG,
                                            max_size=_ONSET_MAX_SIZE)
    return librosa.onset.onset_detect(onset_envelope=envelope, sr=ANALYSIS_SR,
                                      hop_length=_ONSET_HOP, units="time", delta=_ONSET_DELTA)


def _rhythm(detected: np.ndarray, grid: np.ndarray, window_s: float, step_s: float
            ) -> dict[str, Any]:
    """The share of onsets on the grid at the best constant lag (a soft attack peaks late, a
    detector has its latency: neither is a misfit), the smallest lag on a tie."""
    chance = min(1.0, 2 * window_s / step_s)
    entry: dict[str, Any] = {"on_grid": 0.0, "chance": round(chance, 3), "lag_s": 0.0,
                             "offset_s": None, "window_s": round(window_s, 4),
                             "onsets": int(detected.size)}
    if detected.size == 0:
        return entry
    best = None
    lags_s = np.arange(-window_s, _MAX_LATE_S + _LAG_STEP_S / 2, _LAG_STEP_S)
    for lag_s in sorted(lags_s, key=abs):
        deviations = _on_grid(detected - lag_s, grid, window_s)
        share = float(np.mean(~np.isnan(deviations)))
        if best is None or share > best[1]:
            best = (lag_s, share, deviations)
    lag_s, share, deviations = best
    matched = deviations[~np.isnan(deviations)]
    entry.update(on_grid=round(share, 3), lag_s=round(float(lag_s), 4),
                 offset_s=round(float(lag_s + np.median(matched)), 4) if matched.size else None)
    return entry


def _bar_chroma(mono: np.ndarray, plan) -> np.ndarray:
    """Pitch-class energy per bar: shape (num_bars, 12), C first, unnormalised."""
    import librosa

    # Constant-Q from C1 with three bins a semitone: a bass line's fundamentals (41-100 Hz)
    # are resolved and weighted like any other octave. An STFT chroma blurs them and its
    # default octave weighting favours their upper partials (an A1's fifth harmonic reads as
    # C#). Tuning is the plan's A440.
    with warnings.catch_warnings():
        # The lowest octaves are filtered on a copy downsampled by up to 64: in a song of a
        # few seconds it is shorter than their FFT, which librosa pads, and says so.
        warnings.filterwarnings("ignore", message="n_fft=.* is too large", category=UserWarning)
        chroma = librosa.feature.chroma_cqt(y=mono, sr=ANALYSIS_SR, hop_length=_CHROMA_HOP,
                                            fmin=librosa.note_to_hz("C1"), n_octaves=7,
                                            bins_per_octave=36, norm=None, tuning=0.0)
    times = librosa.frames_to_time(np.arange(chroma.shape[1]), sr=ANALYSIS_SR,
                                   hop_length=_CHROMA_HOP)
    bars = np.minimum((times // plan.bar_s).astype(int), plan.num_bars - 1)
    out = np.zeros((plan.num_bars, 12))
    np.add.at(out, bars, chroma.T)
    return out


def _chord_share(chroma_bars: np.ndarray, plan) -> dict[str, Any] | None:
    """Mean share of each sounding bar's chroma on its planned chord's tones."""
    energy = chroma_bars.sum(axis=1)
    # A bar with under 1 % of the loudest bar's energy is a rest (or a reverb tail): no
    # chord to agree with.
    sounding = energy > 0.01 * energy.max() if energy.max() > 0 else np.zeros(len(energy), bool)
    shares, chance = [], []
    for bar in np.flatnonzero(sounding):
        tones = list(plan.chords[bar].pitch_classes)
        shares.append(chroma_bars[bar, tones].sum() / energy[bar])
        chance.append(len(set(tones)) / 12)
    if not shares:
        return None
    return {"chord_tone_share": round(float(np.mean(shares)), 3),
            "chance": round(float(np.mean(chance)), 3), "bars": len(shares)}


def _is_rhythmic(part, plan, onsets_s: np.ndarray) -> bool:
    if part.role == "drums":
        return True
    return (part.style.texture not in _NOT_RHYTHMIC
            and onsets_s.size >= MIN_ONSETS_PER_BAR * plan.duration_s / plan.bar_s)


def measure_fit(stems: Mapping[str, np.ndarray], sample_rate: int, plan, *, warn: bool = True
                ) -> dict[str, dict[str, Any]]:
    """Measure how well every stem agrees with the plan's beat grid and chords.

    Parameters
    ----------
    stems : dict of str -> np.ndarray [shape=(channels, samples) or (samples,)]
        The stems, aligned, starting at the plan's bar 1. Every name must have a part in ``plan``.
    sample_rate : int > 0, Hz
    plan : Plan
        The song's plan (:func:`musicstems.plan.make_plan`).
    warn : bool
        Issue one :class:`~musicstems.errors.MusicStemsWarning` naming the stems that do not fit.

    Returns
    -------
    dict of str -> dict
        Per stem: ``role``; ``rhythm`` (``None`` for a stem that is not rhythmic, else
        ``on_grid`` (share of onsets on the grid), ``chance``, ``lag_s`` (the constant lag
        searched out), ``offset_s`` (median deviation of the onsets on the grid, > 0 is late),
        ``window_s`` and ``onsets``, the number detected);
        ``harmony`` (``None`` for drums or a silent stem, else ``chord_tone_share``, ``chance``,
        ``bars``); ``fits`` (bool) and ``reasons`` (why not, empty when it fits). A song
        shorter than one bar is not measured: both axes ``None``, ``fits`` True and
        ``measured`` says why.

    Raises
    ------
    MusicStemsError
        For a stem the plan has no part for.

    Examples
    --------
    >>> from musicstems import compose
    >>> song = compose({"bass": "deep rolling acid bassline"}, style="techno", duration_s=4,
    ...                seed=1, backend="sketch", progress=False)
    >>> report = measure_fit(song.stems, song.sample_rate, song.plan)
    >>> report["bass"]["fits"], report["bass"]["rhythm"]["on_grid"] > 0.9
    (True, True)
    """
    from .plan import Plan

    if not isinstance(plan, Plan):
        raise MusicStemsError(f"plan={plan!r} is not a musicstems Plan; pass the song's "
                              "plan, e.g. song.plan.", arguments={"plan": plan})
    if not isinstance(stems, Mapping):
        raise MusicStemsError(f"stems={stems!r} is not a dict; pass {{name: audio}}, e.g. "
                              "song.stems.", arguments={"stems": stems})
    missing = [name for name in stems if name not in plan.parts]
    if missing:
        raise MusicStemsError(f"stems {missing} have no part in the plan; measure the stems "
                              "against the plan they were composed from.")
    sample_rate = check_sample_rate(sample_rate)
    stems = {name: check_audio(audio, f"stems[{name!r}]") for name, audio in stems.items()}
    window_s = min(MAX_WINDOW_S, WINDOW_BEATS * plan.beat_s)
    step_s = plan.beat_s / 4
    grid = grid_s(plan)
    report: dict[str, dict[str, Any]] = {}
    for name, audio in stems.items():
        part = plan.parts[name]
        entry: dict[str, Any] = {"role": part.role, "rhythm": None, "harmony": None}
        if np.shape(audio)[-1] < plan.bar_s * sample_rate:
            # under a bar there is no chord to agree with and too few onsets for a share
            report[name] = {**entry, "fits": True, "reasons": [],
                            "measured": "no: shorter than one bar"}
            continue
        mono = _analysis_copy(np.atleast_2d(np.asarray(audio, dtype=np.float32)),
                              int(sample_rate))
        planned = _planned_onsets_s(plan, name, merge_s=plan.beat_s / 8)
        reasons = []
        if _is_rhythmic(part, plan, planned):
            rhythm = _rhythm(_detected_onsets_s(mono), grid, window_s, step_s)
            entry["rhythm"] = rhythm
            if rhythm["on_grid"] < MIN_GRID_LIFT * rhythm["chance"]:
                reasons.append(f"rhythm: {rhythm['on_grid']:.2f} of its onsets on the plan's "
                               f"16th grid < {MIN_GRID_LIFT:g} x chance ({rhythm['chance']:.2f})")
        if part.role not in _NOT_TONAL and part.notes:
            entry["harmony"] = _chord_share(_bar_chroma(mono, plan), plan)
            harmony = entry["harmony"] or {"chord_tone_share": 0.0, "chance": 1.0}
            if harmony["chord_tone_share"] < MIN_CHORD_LIFT * harmony["chance"]:
                reasons.append(f"harmony: {harmony['chord_tone_share']:.2f} of its pitch energy "
                               f"on the planned chords' tones < {MIN_CHORD_LIFT} x chance "
                               f"({harmony['chance']:.2f})")
        entry["fits"] = not reasons
        entry["reasons"] = reasons
        report[name] = entry
    misfits = [name for name, entry in report.items() if not entry["fits"]]
    if warn and misfits:
        details = "; ".join(f"{name!r}: {', '.join(report[name]['reasons'])}" for name in misfits)
        warnings.warn(f"stem(s) {misfits} do not fit the song's plan ({details}). They are mixed "
                      "as they are; listen to them, or regenerate them with another seed.",
                      MusicStemsWarning, stacklevel=2)
    return report
