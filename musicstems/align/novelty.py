"""Envelopes of note and chord changes, for stems without percussive onsets.

A legato line (a bowed or sung melody, a sub bass holding one note per bar, a flute) has its
tempo in its changes of pitch, not in onsets: its onset-strength envelope (log-mel spectral flux)
barely moves, and its beat confidence reads 0.01-0.1 where the line's tempo is plain to hear.
Two novelty curves on the same 11.6 ms frames as the onset envelope see those changes:

* **chroma flux**: the half-wave rectified rise of log-compressed chroma over 93 ms (8 frames),
  summed over pitch classes: a new note adds energy to a new pitch class. It is centred (the
  rise is dated half-way through the lag), so its beat phase is not late.
* **chroma contrast** (Foote's checkerboard novelty, reduced to two windows): one minus the
  cosine similarity of the mean chroma in the 140 ms before and after each frame. Slow attacks
  and vibrato, which smear the flux of strings and voices, move it little; a change of note
  moves it fully.

:func:`_novelties` returns both; the tempo step reads each like the onset envelope and keeps
the clearest.

Neither curve dates a note's *start* the same way for every attack: their peaks come where the
new note has taken over, 100-250 ms after the start of a bowed or sung note and near the start
of a plucked one. The beat phase of such a stem is read instead from :func:`_note_starts`, a
chroma flux so strongly compressed (60 dB below the loudest chroma bin) that a new note counts
as soon as it sounds at all, and from where that rise *begins* within the beat-folded curve
(:func:`_rise_phase_s`), not from its peak: on the synth's voices, attacks from 2 ms (bass,
plucks) to 400 ms (choir) are dated within 30 ms of one another (docs/alignment.md).
"""

from __future__ import annotations

import numpy as np

from .common import ANALYSIS_SR

_N_FFT = 2048          # 186 ms: two bins per semitone from about 100 Hz up
_FLUX_LAG = 8          # frames (93 ms): longer than vibrato's half-period, shorter than a 16th
_CONTRAST_FRAMES = 12  # frames each side (140 ms)
#: Compression of the note-start flux: log1p(1e6 * chroma / peak) rises as soon as a pitch
#: class gains energy 60 dB below the loudest, so a slow attack is seen at its start.
_START_COMPRESSION = 1e6
_START_LAG = 2         # frames (23 ms): the rise is dated within a frame or two
#: Where the rise begins: the point before the folded curve's peak where it first exceeds this
#: share of the way from its minimum to its peak (0.1-0.2 spread 2-400 ms attacks least).
_RISE_SHARE = 0.2
_PHASE_BINS = 48       # of one beat: 12.5 ms at 100 BPM


def _chroma(mono: np.ndarray, hop: int) -> np.ndarray:
    """Unnormalised STFT chroma at A440 (tuning is irrelevant to *changes*): (12, frames)."""
    import librosa

    power = np.abs(librosa.stft(mono, n_fft=_N_FFT, hop_length=hop)) ** 2
    return librosa.feature.chroma_stft(S=power, sr=ANALYSIS_SR, n_fft=_N_FFT, norm=None,
                                       tuning=0.0)


def _chroma_flux(chroma: np.ndarray) -> np.ndarray:
    peak = float(chroma.max())
    if peak <= 0.0:
        return np.zeros(chroma.shape[-1])
    logged = np.log1p(100.0 * chroma / peak)
    rise = np.maximum(0.0, logged[:, _FLUX_LAG:] - logged[:, :-_FLUX_LAG]).sum(axis=0)
    half = _FLUX_LAG // 2
    return np.concatenate([np.zeros(half), rise, np.zeros(_FLUX_LAG - half)])


def _chroma_contrast(chroma: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(chroma, axis=0)
    if float(norms.max()) <= 0.0:
        return np.zeros(chroma.shape[-1])
    # Each frame to unit length, except near-silent ones (below 1e-3 of the loudest frame),
    # which stay small so that the noise of a fade-out reads as no change.
    unit = chroma / (norms + 1e-3 * norms.max())
    sums = np.concatenate([np.zeros((12, 1)), np.cumsum(unit, axis=1)], axis=1)
    frames = unit.shape[-1]
    t = np.arange(frames)
    before = sums[:, t] - sums[:, np.clip(t - _CONTRAST_FRAMES, 0, frames)]
    after = sums[:, np.clip(t + _CONTRAST_FRAMES, 0, frames)] - sums[:, t]
    size_before, size_after = np.linalg.norm(before, axis=0), np.linalg.norm(after, axis=0)
    cosine = np.einsum("ct,ct->t", before, after) / (size_before * size_after + 1e-12)
    # Weigh by how much sound there is, so silence on one side (a first note) counts fully
    # only when the other side is loud.
    level = size_before + size_after
    return (1.0 - cosine) * np.minimum(1.0, 4.0 * level / max(float(level.max()), 1e-12))


def _novelties(mono: np.ndarray, hop: int) -> dict[str, np.ndarray]:
    """``{"chroma flux": ..., "chroma contrast": ...}``, each (frames,) at ``hop`` samples."""
    chroma = _chroma(mono, hop)
    return {"chroma flux": _chroma_flux(chroma), "chroma contrast": _chroma_contrast(chroma)}


def _note_starts(mono: np.ndarray, hop: int) -> np.ndarray:
    """Strongly compressed chroma flux (:data:`_START_COMPRESSION`), centred: (frames,)."""
    chroma = _chroma(mono, hop)
    peak = float(chroma.max())
    if peak <= 0.0:
        return np.zeros(chroma.shape[-1])
    logged = np.log1p(_START_COMPRESSION * chroma / peak)
    rise = np.maximum(0.0, logged[:, _START_LAG:] - logged[:, :-_START_LAG]).sum(axis=0)
    half = _START_LAG // 2
    return np.concatenate([np.zeros(half), rise, np.zeros(_START_LAG - half)])


def _rise_phase_s(curve: np.ndarray, bpm: float, hop: int) -> float:
    """Time in [0, 60/bpm) s at which the beat-folded ``curve`` begins its rise to its peak:
    the last crossing of :data:`_RISE_SHARE` of the way from its minimum to its peak before
    the peak, interpolated between bins."""
    beat_s = 60.0 / bpm
    times_s = np.arange(len(curve)) * (hop / ANALYSIS_SR)
    which = np.minimum((np.mod(times_s / beat_s, 1.0) * _PHASE_BINS).astype(int),
                       _PHASE_BINS - 1)
    pattern = np.bincount(which, curve, _PHASE_BINS) / np.maximum(
        np.bincount(which, None, _PHASE_BINS), 1)
    peak = int(np.argmax(pattern))
    threshold = pattern.min() + _RISE_SHARE * (pattern[peak] - pattern.min())
    i = peak
    while pattern[(i - 1) % _PHASE_BINS] > threshold and peak - i < _PHASE_BINS // 2:
        i -= 1
    below, above = pattern[(i - 1) % _PHASE_BINS], pattern[i % _PHASE_BINS]
    x = i - 1 + ((threshold - below) / (above - below) if above > below else 1.0)
    # Bin b holds times [b, b + 1) / _PHASE_BINS of a beat: its value is dated at its middle.
    return float(((x + 0.5) / _PHASE_BINS) % 1.0 * beat_s)
