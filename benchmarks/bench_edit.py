"""``python -m benchmarks.bench_edit``: what a remix costs, and what the bounded true peak saves.

A 30 s four-stem sketch song (no model) is composed once and mixed; then, alternately in one
process so each meets the same load: the mix's true peak and the limiter's peak envelope as
``master`` computes them (oversampling only the blocks whose exact bound can reach the level
that matters, :class:`musicstems.loudness._PeakEnvelope`) beside the same with every sample
oversampled (the references the tests hold them equal to), ``master`` itself, and a whole
``song.remix(gain_db=..., pan=..., mute=...)``. Times are this process's CPU seconds (less
disturbed by other processes than the wall clock), the best of ``--repeats``; the ratio is
taken from the same run.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

STEMS = {"drums": "punchy four on the floor techno drums", "bass": "deep rolling acid bassline",
         "pads": "warm evolving analog pads", "lead": "hypnotic plucked synth lead melody"}


def _cpu(call) -> float:
    start = time.process_time()
    call()
    return time.process_time() - start


def main(argv=None) -> None:
    from musicstems import compose, loudness
    from musicstems.mix import mix_stems

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_edit")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        song = compose(STEMS, style="dark berlin techno", bpm=128, key="A minor",
                       duration_s=args.duration, seed=7, backend="sketch", progress=False,
                       align=False)
    mixed, _ = mix_stems(song.stems, song.sample_rate)
    gain = 10 ** (1.0 / 20)  # about what master adds to a sketch mix before limiting
    level = 10 ** (-1.0 / 20) / gain  # the -1 dBFS ceiling, before that gain
    assert loudness._true_peak_linear(mixed) == loudness._true_peak_full(mixed)
    rows = {name: [] for name in ("true peak (bounded)", "true peak (oversample all)",
                                  "peak envelope (bounded)", "peak envelope (oversample all)",
                                  "master", "remix")}
    for _ in range(args.repeats):
        rows["true peak (bounded)"].append(_cpu(lambda: loudness._true_peak_linear(mixed)))
        rows["true peak (oversample all)"].append(_cpu(lambda: loudness._true_peak_full(mixed)))
        rows["peak envelope (bounded)"].append(
            _cpu(lambda: loudness._PeakEnvelope(mixed).reaching(level)))
        rows["peak envelope (oversample all)"].append(
            _cpu(lambda: loudness._peak_envelope(mixed)))
        rows["master"].append(_cpu(lambda: loudness.master(mixed, song.sample_rate)))
        rows["remix"].append(_cpu(lambda: song.remix(gain_db={"drums": -3}, pan={"pads": -0.3},
                                                     mute=["lead"])))
    best = {name: min(times) for name, times in rows.items()}
    print(f"| {args.duration:g} s song, 4 stems | CPU s (best of {args.repeats}) |")
    print("|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.3f} |")
    for what in ("true peak", "peak envelope"):
        ratio = best[f"{what} (bounded)"] / best[f"{what} (oversample all)"]
        print(f"| {what}: bounded / all | {ratio:.2f} |")


if __name__ == "__main__":
    main()
