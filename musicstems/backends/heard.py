"""What MusicGen hears of the plan besides the text, as the model takes it.

:func:`prepare_heard` renders the stems' primers and (for a melody model) their chromas from
the plan (``musicstems.conditioning``), and turns them into the model's inputs: the primers as
``input_values`` (batch, channels, samples), to be encoded to codes for the loop
(``primer.encode_primers``); the chromas as ``input_features`` (batch, frames, 12)
(``melody.melody_features``). :meth:`Heard.generate_kwargs` hands the same to ``generate``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Heard", "prepare_heard", "join_heard"]


@dataclass(frozen=True)
class Heard:
    """One batch's conditioning besides the text, and its report.

    Attributes
    ----------
    primer_samples : int
        The primer's length in samples (0: none), cut off the decoded audio.
    values : torch.Tensor [shape=(batch, channels, samples)] or None
        The primers as ``input_values``, in the codec's dtype.
    features : torch.Tensor [shape=(batch, frames, 12)] or None
        The chromas as ``input_features`` (of the first window), in the decoder's dtype.
    primers, harmony : dict
        Per stem, the manifest's entry (None: none).
    render_s : float
        Seconds spent rendering and shaping all of it.
    chromas : list of (np.ndarray [shape=(frames, 12)] or None), or None
        Every stem's chroma over the whole timeline (primer, then song), for the windows of
        a long song (``windows.py``); None without a melody model.
    """

    primer_samples: int = 0
    values: Any = None
    features: Any = None
    primers: dict | None = None
    harmony: dict | None = None
    render_s: float = 0.0
    chromas: list | None = None

    def row(self, index: int) -> "Heard":
        """The conditioning of the batch's stem ``index`` alone, a batch of one."""
        def one(value):
            return None if value is None else value[index:index + 1]

        return replace(self, values=one(self.values), features=one(self.features),
                       chromas=one(self.chromas))

    def take(self, indices) -> "Heard":
        """The conditioning of the batch's stems ``indices`` (in that order), one batch."""
        indices = list(indices)

        def rows(value):
            if value is None:
                return None
            return [value[i] for i in indices] if isinstance(value, list) else value[indices]

        return replace(self, values=rows(self.values), features=rows(self.features),
                       chromas=rows(self.chromas))

    def generate_kwargs(self, model) -> dict:
        """The same, as ``generate``'s arguments. A melody model's ``generate`` takes no
        ``input_values``: its primer goes in as the codes ``input_values`` would give."""
        from .melody import is_melody
        from .primer import encode_primers

        extra = {} if self.features is None else {"input_features": self.features}
        if self.values is not None and is_melody(model):
            extra["decoder_input_ids"] = encode_primers(model, self.values).flatten(0, 1)
        elif self.values is not None:
            extra["input_values"] = self.values
        return extra

    def report(self) -> dict:
        """The backend report's entries: only what there was, so a song of text alone
        reports as before."""
        out = {}
        if self.values is not None:
            out["primer"] = self.primers
        if self.features is not None:
            out["harmony"] = self.harmony
        if out:
            out["conditioning_render_s"] = round(self.render_s, 3)
        return out


def join_heard(heards) -> Heard:
    """Several batches' conditioning as one batch, their stems in order (songs sampled
    together: ``batches.py``). They must share the primer's length; the reports stay with
    each batch's own :class:`Heard`."""
    import torch

    heards = list(heards)
    if len({h.primer_samples for h in heards}) > 1:
        raise ValueError("batches with primers of different lengths cannot be joined")

    def joined(name):
        parts = [getattr(h, name) for h in heards]
        if all(p is None for p in parts):
            return None
        if any(p is None for p in parts):
            raise ValueError(f"some batches have {name} and some do not")
        return [x for p in parts for x in p] if name == "chromas" else torch.cat(parts)

    return Heard(heards[0].primer_samples, joined("values"), joined("features"),
                 render_s=sum(h.render_s for h in heards), chromas=joined("chromas"))


def prepare_heard(stems, plan, settings, model, sample_rate: int, num_samples: int) -> Heard:
    """The stems' primers (``settings.primer``) and, for a melody model, their chromas
    (``settings.harmony``, ``Stem.melody``), rendered from ``plan`` (made from ``settings``
    when None)."""
    from ..conditioning import melodies, render_primers
    from ..plan import make_plan
    from .melody import is_melody, melody_features
    from .primer import primer_values

    start = time.perf_counter()
    plan = plan if plan is not None else make_plan(settings)
    names = [s.name for s in stems]
    primer_samples, values, primed, audio = 0, None, dict.fromkeys(names), None
    if settings.primer is not None:
        hop = math.prod(model.config.audio_encoder.upsampling_ratios)
        made = render_primers(plan, names, sample_rate, hop)
        audio = {name: made[name].audio for name in names}
        primer_samples = made[names[0]].audio.shape[-1]
        values = primer_values(model, [audio[name] for name in names])
        primed = {name: made[name].report(sample_rate) for name in names}
    features, harmony, chromas = None, dict.fromkeys(names), None
    if is_melody(model):
        heard = melodies(plan, stems, settings.harmony, sample_rate, num_samples, audio)
        chromas = [heard[name].chroma for name in names]
        features = melody_features(model, chromas)
        harmony = {name: heard[name].report() for name in names}
    return Heard(primer_samples, values, features, primed, harmony,
                 time.perf_counter() - start, chromas)
