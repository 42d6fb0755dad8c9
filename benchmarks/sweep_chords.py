"""Sweep: does a chord reference move in-key stems, and does it restore transposed ones?

Sketch songs (genres x seeds, 4-5 stems) are rendered from their plans; every tonal stem is
aligned with ``chords=`` the plan's chords in three ways: as rendered (in key: any shift is a
false move), and with bass, keys and lead transposed by +2 / -3 semitones (restored when the
applied shift is exactly the opposite). Prints one line per song and the totals; and the
largest margin (best rotation over no shift) in any untransposed song.

    python -m benchmarks.sweep_chords [--songs 42]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

STEMS = {"drums": "punchy drums", "bass": "deep rolling bassline",
         "keys": "chord stabs on electric piano", "lead": "lead synth melody",
         "pads": "warm pads"}
SR = 32000
MOVED = ("bass", "keys", "lead")


def _render(plan, spec, shifts):
    from musicstems.synth.render import render_part

    out = {}
    for name in plan.parts:
        part = plan.parts[name]
        step = 0 if part.role == "drums" else shifts.get(name, 0)
        notes = tuple(n._replace(pitch=n.pitch + step) for n in part.notes)
        out[name] = render_part(dataclasses.replace(part, notes=notes), plan, SR,
                                int(round(spec.duration_s * SR)))
    return out


def main(argv=None):
    from musicstems import align_stems
    from musicstems.align import chords as chords_module
    from musicstems.plan import make_plan
    from musicstems.plan.genres import GENRES
    from musicstems.spec import validate_compose_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--songs", type=int, default=42)
    args = parser.parse_args(argv)
    margins = {"in_key": [], "restored": []}
    real = chords_module.decide_by_chords

    calls = []

    def spy(scores):  # every decision's margin of the best rotation over no shift
        calls.append(float(np.max(scores) - scores[len(scores) // 2]))
        return real(scores)

    import musicstems.align.key as key_module
    key_module.decide_by_chords = spy
    genres = list(GENRES)
    totals = {"in_key": 0, "in_key_shifted": 0, "transposed": 0, "restored": 0}
    failures = []
    for i in range(args.songs):
        genre, seed = genres[i % len(genres)], 100 + i
        stems = STEMS if i % 2 == 0 else {n: p for n, p in STEMS.items() if n != "pads"}
        spec = validate_compose_args(stems, style=genre, duration_s=8, seed=seed,
                                     backend="sketch")
        plan = make_plan(spec)
        chords = [c.pitch_classes for c in plan.chords]
        line = [f"{genre:>14} seed {seed}:"]
        for shifts in ({}, {"bass": 2, "keys": -3, "lead": 2}, {"bass": -3, "keys": 2, "lead": -3}):
            audio = _render(plan, spec, shifts)
            calls.clear()
            aligned = align_stems(audio, SR, bpm=plan.bpm, key=plan.key,
                                  reference=plan.reference_stem, chords=chords,
                                  bar_s=plan.bar_s)
            for name, entry in aligned.report.items():
                applied = entry["semitones"]
                if plan.parts[name].role == "drums":
                    if applied != 0:
                        failures.append((genre, seed, name, "drums, shifted", applied))
                    continue
                if shifts.get(name, 0) == 0:
                    if shifts:
                        continue  # counted once, in the untransposed render
                    totals["in_key"] += 1
                    if applied != 0:
                        totals["in_key_shifted"] += 1
                        failures.append((genre, seed, name, "in key, shifted", applied))
                else:
                    totals["transposed"] += 1
                    if applied == -shifts[name]:
                        totals["restored"] += 1
                    else:
                        failures.append((genre, seed, name, f"{shifts[name]:+d}", applied))
                line.append(f"{name}{shifts.get(name, 0):+d}->{applied:+d}")
            # untransposed: every stem's margin (drums included) is one a false move would need
            (margins["in_key"] if not shifts else margins["restored"]).append(max(calls))
        print(" ".join(line), flush=True)
    print(totals)
    print(f"largest margin in an untransposed song: {max(margins['in_key']):.3f}; "
          f"largest margin per transposed render, smallest: {min(margins['restored']):.3f}")
    for failure in failures:
        print("FAIL", failure)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
