"""Cost of ``align_stems``: four perturbed 30 s stems at MusicGen's 32 kHz, stereo.

The stems are synthesised here (kick/snare/hat drums, a bass line, chord stabs, a pad) at 124 BPM
in A minor and then re-rendered off tempo (+-6 %), off the grid (up to 0.4 beat) and out of key
(up to 3 semitones), so alignment does its full work: every rhythmic stem is stretched and
shifted, every tonal one transposed.

``run()`` returns one row; ``python benchmarks/bench_align.py`` prints it. The first call in a
process also pays for librosa's lazy imports and caches and is reported on its own
(``first_call_s``); ``wall_s`` is a second call on the same stems. Shares are of the song's
duration (``duration_s``) and of all stem audio (``n_stems * duration_s``).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

SAMPLE_RATE = 32000
BPM = 124.0
# kind -> (tempo factor, offset in beats, semitones)
_PERTURBATIONS = {"drums": (1.06, 0.0, 0), "bass": (0.95, 0.4, 2), "chords": (1.04, -0.3, -3),
                  "pad": (1.0, 0.0, 1)}


def render(kind: str, duration_s: float, *, bpm: float = BPM, offset_beats: float = 0.0,
           semitones: int = 0, seed: int = 0, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One stereo part in A minor (+ ``semitones``), beat k at (k + offset_beats) * 60 / bpm:
    :func:`musicstems.testing.render_stem`, the right channel at 0.8 of the left."""
    from musicstems.testing import render_stem

    mono = render_stem(kind, bpm=bpm, offset_beats=offset_beats, semitones=semitones,
                       duration_s=duration_s, sr=sr, seed=seed)[0]
    return np.stack([mono, 0.8 * mono])


def run(duration_s: float = 30.0, n_stems: int = 4) -> dict:
    """Time ``align_stems`` on ``n_stems`` perturbed stems of ``duration_s`` seconds each.

    Returns
    -------
    dict
        ``benchmark``, ``n_stems``, ``duration_s``, ``sample_rate``, ``first_call_s`` (includes
        librosa's one-off import and cache costs in a fresh process), ``wall_s`` (a second call),
        ``cpu_s`` (CPU time of that call in this process: the cost without other processes'
        load, which on a shared 2-core machine can double ``wall_s``), ``share_of_song`` (``wall_s / duration_s``), ``share_of_audio``
        (``wall_s / (n_stems * duration_s)``), ``stems_changed`` and the machine
        (``cpu_count``, ``machine``).
    """
    from musicstems import align_stems

    kinds = list(_PERTURBATIONS)
    stems = {}
    for i in range(n_stems):
        kind = kinds[i % len(kinds)]
        factor, offset_beats, semitones = _PERTURBATIONS[kind]
        stems[f"{kind}_{i}"] = render(kind, duration_s, bpm=BPM * factor,
                                      offset_beats=offset_beats, semitones=semitones, seed=i)
    reference = "drums_0" if "drums_0" in stems else None
    start = time.perf_counter()
    align_stems(stems, SAMPLE_RATE, bpm=BPM, key="A minor", reference=reference)
    first_call_s = time.perf_counter() - start
    start, start_cpu = time.perf_counter(), time.process_time()
    aligned = align_stems(stems, SAMPLE_RATE, bpm=BPM, key="A minor", reference=reference)
    wall_s = time.perf_counter() - start
    cpu_s = time.process_time() - start_cpu
    changed = sum(1 for entry in aligned.report.values() if entry["engine"] is not None
                  or entry["offset_s"] != 0.0)
    return {
        "benchmark": "align_stems", "n_stems": n_stems, "duration_s": duration_s,
        "sample_rate": SAMPLE_RATE, "first_call_s": round(first_call_s, 3),
        "wall_s": round(wall_s, 3), "cpu_s": round(cpu_s, 3), "share_of_song": round(wall_s / duration_s, 4),
        "share_of_audio": round(wall_s / (n_stems * duration_s), 4), "stems_changed": changed,
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
    }


def main() -> None:
    row = run()
    columns = list(row)
    widths = [max(len(c), len(str(row[c]))) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
