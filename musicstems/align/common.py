"""What tempo and key analysis share: the mono copy every measurement is made on, and how the
stem to follow is chosen."""

from __future__ import annotations

import numpy as np

#: Rate of the mono copy every measurement is made on, Hz. Onsets and chroma below 5.5 kHz are
#: all the analysis needs, and a quarter of the samples of 44.1 kHz costs a quarter of the time.
ANALYSIS_SR = 11025


def _analysis_copy(y: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono mix at ANALYSIS_SR, float32 (lower rates are upsampled: no new content, but one
    analysis setup for every input)."""
    import librosa

    mono = y.mean(axis=0)
    if sample_rate == ANALYSIS_SR:
        return mono
    return librosa.resample(mono, orig_sr=sample_rate, target_sr=ANALYSIS_SR,
                            res_type="soxr_mq")


def _pick(candidates: dict[str, float], reference: str | None, what: str
          ) -> tuple[str | None, str | None]:
    """The reference if it qualifies, else the candidate with the highest score; and, when the
    reference was passed over, the reason to report on it."""
    if reference is not None and reference in candidates:
        return reference, None
    choice = max(candidates, key=candidates.get) if candidates else None
    if reference is not None and choice is not None:
        return choice, f"reference has no clear {what}; {choice!r} was followed"
    return choice, None
