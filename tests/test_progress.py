"""The song's one progress display and the callback's one event shape."""

from __future__ import annotations

import io
import warnings

import pytest

from musicstems.progress import STAGES, SongProgress, progress_bar_class


def run_song(progress: SongProgress, steps: int) -> None:
    for stage in progress.stages:
        progress.start(stage, total=steps if stage == "generate" else None)
        if stage == "generate":
            for step in range(1, steps + 1):
                progress.step({"stage": "generate", "step": step, "total": steps})
        progress.end(stage)
    progress.close()


@pytest.mark.parametrize("steps", [0, 1, 50])
def test_events_have_one_shape_and_the_fraction_only_grows(steps):
    events = []
    run_song(SongProgress(show=False, callback=events.append), steps)
    assert all(set(event) == {"stage", "step", "total", "fraction"} for event in events)
    assert [e["stage"] for e in events if e["step"] == 0] == list(STAGES)
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert 0 <= fractions[0] < 1
    generated = [e["step"] for e in events if e["stage"] == "generate" and e["step"]]
    # every decoder step once, then the stage's end (step == total), or one unit without steps
    assert generated == (list(range(1, steps + 1)) + [steps] if steps else [1])
    last_of_stage = {e["stage"]: e for e in events}
    assert all(e["step"] == e["total"] >= 1 for e in last_of_stage.values())


def test_a_bar_over_every_stage_ends_full(monkeypatch):
    out = io.StringIO()
    bar_class = progress_bar_class()
    monkeypatch.setattr("musicstems.progress.progress_bar_class",
                        lambda: lambda **kw: bar_class(file=out, mininterval=0,
                                                       **{**kw, "delay": 0}))
    progress = SongProgress(show=True)
    bar = progress.bar
    run_song(progress, 20)
    assert bar.n == bar.total == len(STAGES) - 1 + 20
    assert "musicstems: save" in out.getvalue()


def test_outside_a_kernel_the_text_bar_and_no_warning():
    from tqdm.std import tqdm

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert progress_bar_class() is tqdm


def test_an_unknown_stage_is_a_programming_error():
    with pytest.raises(ValueError, match="'mastering'"):
        SongProgress(show=False).start("mastering")
