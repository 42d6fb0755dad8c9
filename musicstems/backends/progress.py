"""Counting decoder steps: a progress bar, the user's callback, and the clock of the steps.

Both samplers report through one counter: musicstems' loop calls it after each step, and
``generate`` through :meth:`StepProgress.as_stopping_criterion`. tqdm, torch and transformers
are imported on first use.
"""

from __future__ import annotations

import time

from . import ProgressCallback

__all__ = ["StepProgress"]


class StepProgress:
    """Counts decoder steps: advances a tqdm bar and the user's callback, and remembers when the
    first and the last step ended (the loop's speed, for the report)."""

    def __init__(self, total: int, *, show: bool, callback: ProgressCallback | None):
        self.total = total
        self.callback = callback
        self.step = 0
        self.first_s = self.last_s = 0.0  # perf_counter after the first and the last step
        self.bar = None
        if show:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc="musicstems: generating", unit="step",
                            leave=False)

    def __call__(self, step: int | None = None) -> None:
        self.step += 1
        now = time.perf_counter()
        self.first_s = self.first_s or now
        self.last_s = now
        if self.bar is not None:
            self.bar.update(1)
        if self.callback is not None:
            self.callback({"stage": "generate", "step": self.step, "total": self.total})

    def extend(self, steps: int) -> None:
        """``steps`` more to come (a batch split in two runs once more)."""
        self.total += steps
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    def as_stopping_criterion(self):
        """The same counter as a stopping criterion that never stops, for ``generate``: the
        one per-step hook of every transformers release (MusicGen's ``generate`` does not
        forward its ``streamer`` to the sampling loop in transformers 5)."""
        import torch
        from transformers import StoppingCriteria

        progress = self

        class Count(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                progress()
                return torch.zeros(input_ids.shape[0], dtype=torch.bool,
                                   device=input_ids.device)

        return Count()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
