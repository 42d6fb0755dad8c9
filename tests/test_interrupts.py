"""Ctrl-C during generation: KeyboardInterrupt within one decoder step, no files written, and the
model the process keeps loaded gives the uninterrupted song on the next call.

The interrupt is a real SIGINT sent by another thread while the main thread is inside the
decoder loop, as a terminal's Ctrl-C arrives. It runs in a child process so that a signal that
came late could never stop the test run itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent("""
    import json, os, signal, sys, threading, time
    from pathlib import Path
    import numpy as np
    from musicstems import compose

    model, out = sys.argv[1], Path(sys.argv[2])
    kwargs = dict(bpm=120, key="A minor", duration_s=3.0, seed=5, model=model,
                  device="cpu", precision=sys.argv[3], align=False, progress=False)
    stems = {"drums": "techno drums", "bass": "acid bass"}
    events, sent = [], []

    def interrupt():
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    def callback(event):
        if event.get("stage") == "generate" and event.get("step"):
            events.append((event["step"], time.perf_counter()))
            if event["step"] == 10:  # from another thread, while the next step runs
                threading.Thread(target=interrupt).start()

    result = {"interrupted": False}
    try:
        compose(stems, callback=callback, save=out, **kwargs)
    except KeyboardInterrupt:
        result["interrupted"] = True
    result["steps_after_signal"] = sum(1 for _, t in events if sent and t > sent[0])
    result["total_steps"] = events[-1][0] if events else 0
    result["out_exists"] = out.exists()
    # the same process, the same cached model: the uninterrupted song
    again = compose(stems, **kwargs)
    np.save(out.parent / "again.npy", again.mix)
    print(json.dumps(result))
""")


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_ctrl_c_stops_within_a_step_and_the_model_still_works(tiny_model, tmp_path, precision):
    import numpy as np

    from musicstems import compose

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    run = subprocess.run([sys.executable, "-c", CHILD, tiny_model, str(tmp_path / "song"),
                          precision], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["interrupted"], result
    # the step running when the signal came may finish; no further one starts
    assert result["steps_after_signal"] <= 1, result
    assert not result["out_exists"]  # nothing of the song was saved
    fresh = compose({"drums": "techno drums", "bass": "acid bass"}, bpm=120, key="A minor",
                    duration_s=3.0, seed=5, model=tiny_model, device="cpu",
                    precision=precision, align=False, progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), fresh.mix)
