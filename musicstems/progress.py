"""One progress display over a song's stages, and the callback's one event shape.

Every stage of the pipeline (plan, generate with its decoder steps, align, fit, loudness, mix,
analyze, save) reports to a :class:`SongProgress`, whatever the backend. It draws one bar -- a
widget in Jupyter when ipywidgets is installed, text otherwise (in a terminal, or in a notebook
without ipywidgets, with no warning) -- and sends the user's callback one kind of event::

    {"stage": "generate", "step": 120, "total": 503, "fraction": 0.23}

``stage`` is the stage's name (:data:`STAGES`); ``step`` and ``total`` count the stage's own
work (decoder steps while generating; a stage starts at step 0, with ``total`` None where
it has no steps, and ends with ``step == total``); ``fraction`` is how much of the whole song is done, in [0, 1], never decreasing.
tqdm is imported only when a bar is shown.
"""

from __future__ import annotations

import time
from typing import Any, Callable

__all__ = ["SongProgress", "Laps", "STAGES", "progress_bar_class"]

# The bar shows once a song has run this long: a refusal or a song made in an instant leaves
# nothing on screen, anything longer (a model load, numba compiling) is never silent.
BAR_DELAY_S = 0.5

STAGES = ("plan", "generate", "align", "fit", "loudness", "mix", "analyze", "save")


def progress_bar_class():
    """tqdm's notebook bar in a Jupyter kernel that has ipywidgets, else its text bar.

    tqdm.auto picks the notebook bar in any kernel and, without ipywidgets, warns
    ("IProgress not found") before falling back; the text bar needs no widgets and shows in a
    notebook's output as well.
    """
    try:
        from IPython import get_ipython

        shell = get_ipython()
        in_kernel = shell is not None and "IPKernelApp" in getattr(shell, "config", {})
    except ImportError:
        in_kernel = False
    if in_kernel:
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm

            return tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm

    return tqdm


class SongProgress:
    """The song's progress: one bar and the callback's events.

    Parameters
    ----------
    show : bool
        Draw the bar (``compose(progress=...)``, the CLI's ``--quiet``).
    callback : callable, optional
        Called with every event (the module's docstring has their shape).
    stages : sequence of str
        The stages this song runs, in order (a song saved at the end has ``"save"``).
    """

    def __init__(self, *, show: bool, callback: Callable[[dict], None] | None = None,
                 stages: tuple[str, ...] = STAGES):
        self.callback = callback
        self.stages = tuple(stages)
        self.steps = 0  # decoder steps, once the generate stage says how many
        self.done_units = 0
        self.fraction = 0.0
        self.bar = None
        if show:
            self.bar = progress_bar_class()(total=self._total_units(), desc="musicstems",
                                            unit="step", leave=False, delay=BAR_DELAY_S)

    def _total_units(self) -> int:
        return sum(self._size(stage) for stage in self.stages)

    def _size(self, stage: str) -> int:
        # the decoder's steps take the place of the generate stage's one unit
        return max(self.steps, 1) if stage == "generate" else 1

    def _offset(self, stage: str) -> int:
        return sum(self._size(s) for s in self.stages[:self.stages.index(stage)])

    def _emit(self, stage: str, step: int, total: int | None) -> None:
        if self.bar is not None:
            self.bar.total = self._total_units()
            self.bar.set_description(f"musicstems: {stage}", refresh=False)
            if self.done_units > self.bar.n:
                self.bar.update(self.done_units - self.bar.n)  # shown once past its delay
            elif time.time() >= self.bar.start_t + self.bar.delay:
                self.bar.refresh()  # a new stage's name, while its work runs
        if self.callback is not None:
            # an estimate until generate says its steps; kept from going back when it does
            fraction = max(min(self.done_units / self._total_units(), 1.0), self.fraction)
            self.fraction = fraction
            self.callback({"stage": stage, "step": step, "total": total,
                           "fraction": round(fraction, 4)})

    def _check(self, stage: str) -> None:
        if stage not in self.stages:
            raise ValueError(f"stage {stage!r} is not one of {self.stages}")

    def start(self, stage: str, total: int | None = None) -> None:
        """A stage begins (``total``: its steps, when known)."""
        self._check(stage)
        self.done_units = max(self.done_units, self._offset(stage))
        self._emit(stage, 0, total)

    def step(self, event: dict[str, Any]) -> None:
        """A backend's step event ``{"stage": "generate", "step": n, "total": steps}``."""
        self._check("generate")
        total = event.get("total")
        if total:
            self.steps = int(total)
        step = int(event.get("step") or 0)
        self.done_units = max(self.done_units, self._offset("generate") + step)
        self._emit("generate", step, total)

    def end(self, stage: str) -> None:
        """A stage is done: the bar moves to the start of the next."""
        self._check(stage)
        self.done_units = max(self.done_units, self._offset(stage) + self._size(stage))
        size = self._size(stage)
        self._emit(stage, size, size)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Laps:
    """Seconds per stage, as the manifest's ``timings_s`` records them, and the song's one
    progress display (:class:`~musicstems.progress.SongProgress`) told where it is."""

    def __init__(self, progress: SongProgress | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.progress = progress
        self._clock = time.perf_counter()

    def begin(self, stage: str) -> None:
        if self.progress is not None:
            self.progress.start(stage)

    def step(self, event: dict) -> None:
        """A backend's decoder-step event, for the display and the user's callback."""
        if self.progress is not None:
            self.progress.step(event)

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._clock, 4)
        self._clock = now
        if self.progress is not None:
            self.progress.end(stage)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
