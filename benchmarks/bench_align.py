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
_PROGRESSION = [(45, (57, 60, 64)), (41, (53, 57, 60)), (48, (55, 60, 64)), (43, (55, 59, 62))]


def _notes(midis, length_s, attack_s, decay_s, rng, sr):
    t = np.arange(int(length_s * sr)) / sr
    env = np.minimum(t / attack_s, 1.0) * np.exp(-t / decay_s) * np.minimum(
        1.0, (length_s - t) / 0.02)
    freqs = [440.0 * 2 ** ((m - 69) / 12) * k for m in midis for k in range(1, 6)]
    return env * sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) / (i % 5 + 1)
                     for i, f in enumerate(freqs) if f < sr / 2)


def render(kind: str, duration_s: float, *, bpm: float = BPM, offset_beats: float = 0.0,
           semitones: int = 0, seed: int = 0, sr: int = SAMPLE_RATE) -> np.ndarray:
    """One stereo part in A minor (+ ``semitones``), beat k at (k + offset_beats) * 60 / bpm."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sr))
    out = np.zeros(n)
    beat_s = 60.0 / bpm
    t_kick = np.arange(int(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * np.cumsum(45 + 80 * np.exp(-t_kick / 0.03)) / sr) \
        * np.exp(-t_kick / 0.08)
    for beat in range(-2, int(duration_s / beat_s) + 2):
        bar, pos = divmod(beat, 4)
        root, chord = _PROGRESSION[bar % 4]
        sounds = []
        if kind == "drums":
            hat = np.diff(rng.standard_normal(int(0.05 * sr) + 1)) * 0.15
            sounds = [(0.0, 0.9 * kick), (0.0, hat), (0.5, hat)]
            if pos in (1, 3):
                sounds.append((0.0, 0.4 * rng.standard_normal(int(0.15 * sr))
                               * np.exp(-np.arange(int(0.15 * sr)) / sr / 0.05)))
        elif kind == "bass":
            note = root + semitones + (0, 0, 7, 3 if bar % 4 == 0 else 4)[pos]
            sounds = [(0.0, 0.5 * _notes([note], 0.9 * beat_s, 0.005, 0.25, rng, sr))]
        elif kind == "chords":
            sounds = [(0.0, 0.2 * _notes([m + semitones for m in chord], 0.35 * beat_s, 0.005,
                                         0.12, rng, sr))]
        elif kind == "pad" and pos == 0:
            sounds = [(0.0, 0.1 * _notes([m + semitones for m in chord], 4 * beat_s + 0.5, 0.6,
                                         8.0, rng, sr))]
        for at_beats, sound in sounds:
            i = int(round((beat + offset_beats + at_beats) * beat_s * sr))
            if i < 0:
                sound, i = sound[-i:], 0
            m = max(0, min(len(sound), n - i))
            out[i:i + m] += sound[:m]
    return np.stack([out, 0.8 * out]).astype(np.float32)


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
