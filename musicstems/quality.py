"""Bad generated audio, caught before it is mixed: NaN or infinite samples, silence, clipping.

A sampled model can return a stem that is unusable: a numeric overflow (NaN/inf, seen with
half precision), a stem that stays silent, or one that sits at full scale with flat tops. Each
is found by :func:`stem_problem`; the pipeline generates such a stem once more with a seed
derived from its own (:func:`retry_seed`, recorded in the manifest) and refuses the song with
:class:`BadStemError` if the retry is bad too, so no bad stem is ever mixed in silently.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

from .errors import MusicStemsError, MusicStemsWarning

__all__ = ["stem_problem", "retry_seed", "BadStemError", "CheckedBackend", "SILENCE_DBFS",
           "CLIP_LEVEL", "MAX_CLIPPED_SHARE"]

# A peak below -70 dBFS is nothing a listener hears at any sane monitoring level; it is also
# where BS.1770's absolute gate treats a signal as silence.
SILENCE_DBFS = -70.0
# Hard clipping leaves runs of samples stuck at full scale.
CLIP_LEVEL = 0.999
CLIP_RUN = 3  # samples in a row: one sample at full scale is a peak, three are a flat top
# Beyond 0.1 % of the samples in flat tops, clipping is audible as distortion.
MAX_CLIPPED_SHARE = 1e-3


class BadStemError(MusicStemsError):
    """A generated stem stayed unusable (NaN/inf, silent or clipped) after its retry."""


def stem_problem(audio: np.ndarray) -> str | None:
    """What is wrong with a generated stem, or None when it can be mixed.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples)], float

    Returns
    -------
    str or None
        ``"non-finite: ..."``, ``"silent: ..."`` or ``"clipped: ..."`` with the measured
        figure, for the manifest and the error message.
    """
    audio = np.atleast_2d(np.asarray(audio))
    finite = np.isfinite(audio)
    if not finite.all():
        return f"non-finite: {int(audio.size - finite.sum())} NaN or infinite samples"
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 10 ** (SILENCE_DBFS / 20):
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.1f}"
        return f"silent: peak {level} dBFS, at or below {SILENCE_DBFS:g} dBFS"
    share = _clipped_share(audio)
    if share > MAX_CLIPPED_SHARE:
        return (f"clipped: {100 * share:.2f} % of samples in flat tops at full scale "
                f"(more than {100 * MAX_CLIPPED_SHARE:g} %)")
    return None


def _clipped_share(audio: np.ndarray) -> float:
    """The share of samples in runs of at least :data:`CLIP_RUN` equal samples at or above
    :data:`CLIP_LEVEL` in magnitude (flat tops), over all channels."""
    clipped = 0
    for channel in audio:
        at_top = np.abs(channel) >= CLIP_LEVEL
        # links[i]: sample i+1 repeats sample i at full scale; a run of n links is n+1 samples
        links = (channel[1:] == channel[:-1]) & at_top[1:]
        edges = np.diff(np.concatenate([[0], links.astype(np.int8), [0]]))
        lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1) + 1
        clipped += int(lengths[lengths >= CLIP_RUN].sum())
    return clipped / audio.size


def retry_seed(seed: int, attempt: int = 1) -> int:
    """The seed of a stem's ``attempt``-th retry, derived from its own seed (32 bits)."""
    from .stems import derive_seed

    return derive_seed(int(seed), "retry", int(attempt))


class CheckedBackend:
    """A backend whose every stem is checked (:func:`stem_problem`) before anyone sees it.

    A bad stem of a sampling backend (``backend.samples``, True unless it says otherwise) is
    generated once more, alone, on :func:`retry_seed` of its own seed and the same plan; the report's ``retry`` says, per stem, what was wrong and the seed that
    replaced it (None: nothing was). A stem bad twice stops the song with
    :class:`BadStemError`. A backend that renders the plan without chance (the sketch:
    ``samples = False``) is silent where its plan rests, which is no fault; NaN/inf from it
    stops the song at once. The retry is a pure function of the inputs, so the same song made
    again retries the same way and gives the same audio. The stem cache stores checked stems
    only (it wraps this).
    """

    def __init__(self, backend):
        self.backend = backend
        self.name = backend.name

    def generate(self, stems, plan, settings, *, callback=None):
        generated = self.backend.generate(stems, plan, settings, callback=callback)
        return self._checked(generated, stems, plan, settings)

    def generate_many(self, requests, *, max_batch=None, callback=None):
        """Several songs' stems (``backends.batches.Request``) from the backend in one call
        (``cache.stage.generate_requests``), every stem checked as :meth:`generate` checks
        it."""
        from .cache.stage import generate_requests

        made = generate_requests(self.backend, requests, max_batch=max_batch,
                                 callback=callback)
        return [self._checked(generated, r.stems, r.plan, r.settings)
                for generated, r in zip(made, requests)]

    def _checked(self, generated, stems, plan, settings):
        from .stems import stem_seed

        retry = dict.fromkeys((s.name for s in stems), None)
        sampled = getattr(self.backend, "samples", True)
        for stem in stems:
            problem = stem_problem(generated.stems[stem.name])
            if problem is None or (not sampled and not problem.startswith("non-finite")):
                # a backend that renders the plan (sketch) is silent where the plan rests
                # and a retake would be the same audio: only NaN/inf is wrong there
                continue
            if not sampled:
                raise BadStemError(
                    f"stem {stem.name!r} came out {problem} from the {self.name} backend, "
                    "which renders the plan without chance, so a retake cannot help; please "
                    "report it with the manifest's settings.", arguments={"stems": stem.name})
            first_seed = stem_seed(settings.seed, stem)
            seed = retry_seed(first_seed)
            again = self.backend.generate((replace(stem, seed=seed),), plan, settings)
            second = stem_problem(again.stems[stem.name])
            if second is not None:
                raise BadStemError(
                    f"stem {stem.name!r} came out unusable twice ({problem} with seed "
                    f"{first_seed}; {second} with seed {seed}); nothing was mixed or saved. "
                    f"Give it another prompt or seed (Stem({stem.name!r}, ..., seed=N)), or "
                    "check the model and precision (fp16 can overflow; try precision='fp32').",
                    arguments={"stems": stem.name})
            generated.stems[stem.name] = again.stems[stem.name]
            retry[stem.name] = {"problem": problem, "first_seed": first_seed, "seed": seed}
            warnings.warn(MusicStemsWarning(
                f"stem {stem.name!r} came out {problem.split(':')[0]} with seed {first_seed} "
                f"and was generated again with seed {seed} (recorded in the manifest)."),
                stacklevel=2)
        generated.report["retry"] = retry
        return generated
