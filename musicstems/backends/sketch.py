"""The offline sketch backend: renders the song's plan with a small numpy synthesizer.

No model and no download: every stem's notes come from the shared
:class:`~musicstems.plan.Plan` (so bass, pads and melody agree on chords, and drums on the
meter), and :mod:`musicstems.synth` turns them into audio. A 30 s stem takes well under a second
of CPU. The output is a pure function of the spec: the same seed gives bit-identical stems.

Why a synthesizer and not a General MIDI SoundFont player: see docs/backends.md (no SoundFont
renderer installs from PyPI alone on every platform we support).
"""

from __future__ import annotations

import time

from ..errors import MusicStemsError
from . import Generated, ProgressCallback, fit_length

__all__ = ["SketchBackend", "SAMPLE_RATE"]

# MusicGen's rate, so both backends feed the same pipeline with the same numbers; it keeps
# everything up to 16 kHz, which is all the sketch's voices produce.
SAMPLE_RATE = 32000


class SketchBackend:
    """Render each stem's part of the plan to stereo float32 audio at :data:`SAMPLE_RATE`."""

    name = "sketch"
    samples = False  # renders the plan: the same inputs give the same audio, no chance in it

    def generate(self, stems, plan, settings, *, callback: ProgressCallback | None = None
                 ) -> Generated:
        """Render ``stems`` from ``plan``.

        Parameters
        ----------
        stems : tuple of Stem
        plan : Plan
            From :func:`musicstems.plan.make_plan`; when None it is made here from ``settings``.
        settings : SongSpec
            Reads ``duration_s`` (and the rest through the plan).
        callback : callable, optional
            Called with ``{"stage": "generate", "step": i, "total": n, "stem": name}`` after
            each stem.

        Returns
        -------
        Generated
            ``stems``: name -> ``(2, round(duration_s * 32000))`` float32.
        """
        from ..synth.render import render_part

        if plan is None:
            from ..plan import make_plan
            plan = make_plan(settings)
        missing = [s.name for s in stems if s.name not in plan.parts]
        if missing:
            raise MusicStemsError(f"the plan has no part for stem(s) {missing}; make the plan "
                                  "from the same spec as the stems (musicstems.plan.make_plan).")
        num_samples = round(settings.duration_s * SAMPLE_RATE)
        out, seconds = {}, {}
        for index, stem in enumerate(stems):
            start = time.perf_counter()
            audio = render_part(plan.parts[stem.name], plan, SAMPLE_RATE, num_samples)
            out[stem.name] = fit_length(audio, num_samples)
            seconds[stem.name] = round(time.perf_counter() - start, 3)
            if callback is not None:
                callback({"stage": "generate", "step": index + 1, "total": len(stems),
                          "stem": stem.name})
        report = {
            "renderer": "musicstems.synth (numpy)", "sample_rate": SAMPLE_RATE,
            "bpm": plan.bpm, "key": plan.key.name, "genre": plan.genre,
            "roles": {name: f"{p.role} ({p.sound}, {p.style.texture})"
                      for name, p in plan.parts.items() if name in out},
            "render_s": seconds,
        }
        return Generated(stems=out, sample_rate=SAMPLE_RATE, report=report)
