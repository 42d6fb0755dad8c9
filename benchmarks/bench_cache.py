"""``python -m benchmarks.bench_cache``: what a stem cache hit costs next to generating.

The generate stage (``pipeline.generate_stems``) of one song, three ways, alternately in one
process after a warm-up (so all three meet the same load on a shared machine), medians of
``--repeats``:

- **generate**: ``cache=False``, the backend alone;
- **miss + store**: the cache on, an empty folder: the lookups fail, the backend generates and
  every stem is stored (what the cache adds to a first song);
- **hit**: every stem in the cache: keys, reads, checksums, nothing generated.

For the sketch backend and the tiny random-weight MusicGen (``musicstems.testing``; real models
generate far slower, so their hit ratio is much larger still). Each row also gives this process's
CPU seconds, which other processes disturb less than the wall clock.

``--markdown PATH`` appends the table to PATH (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from .machine import CpuShare, describe

STEMS = {"drums": "punchy four on the floor techno drums", "bass": "deep rolling acid bassline",
         "pads": "warm evolving analog pads", "lead": "bright lead synth melody"}
SONG = {"style": "dark berlin techno", "bpm": 128.0, "key": "A minor", "seed": 7,
        "align": False, "progress": False}


def _stage(spec, plan) -> tuple[float, float, dict]:
    from musicstems.pipeline import generate_stems

    start, cpu = time.perf_counter(), time.process_time()
    generated = generate_stems(spec.stems, plan, spec)
    return time.perf_counter() - start, time.process_time() - cpu, generated.report


def measure(backend: str, duration_s: float, repeats: int, model: str | None) -> dict:
    """Median wall and CPU seconds of the three ways, and the hit's own lookup time."""
    from musicstems.plan import make_plan
    from musicstems.spec import build_prompts, validate_compose_args

    extra = {"model": model, "device": "cpu"} if backend == "musicgen" else {}
    spec = validate_compose_args(STEMS, **SONG, duration_s=duration_s, backend=backend,
                                 cache=False, **extra)
    plan = make_plan(spec)
    spec = replace(spec, prompts=build_prompts(spec, bpm=plan.bpm, key=plan.key))
    _stage(spec, plan)  # warm-up: imports, model load
    rows: dict[str, list[tuple[float, float]]] = {"generate": [], "miss + store": [], "hit": []}
    # the stage's own clock of what the cache added: lookups and stores on the miss
    added: list[float] = []
    share = CpuShare()
    with tempfile.TemporaryDirectory() as root:
        for index in range(repeats):
            folder = str(Path(root) / f"cache-{index}")
            cached = replace(spec, cache=True, cache_dir=folder)
            rows["generate"].append(_stage(spec, plan)[:2])
            wall, cpu, report = _stage(cached, plan)
            rows["miss + store"].append((wall, cpu))
            added.append(report["cache"]["lookup_s"] + report["cache"]["store_s"])
            wall, cpu, report = _stage(cached, plan)
            assert report["cache"]["hits"] == list(STEMS), report["cache"]
            rows["hit"].append((wall, cpu))
    medians = {way: (statistics.median(w for w, _ in values),
                     statistics.median(c for _, c in values)) for way, values in rows.items()}
    return {"backend": backend, "duration_s": duration_s, "repeats": repeats,
            "medians": medians, "miss_added_s": statistics.median(added),
            "busy": share.others()}


def markdown(results: list[dict], machine: dict) -> str:
    lines = ["", f"## The stem cache: a hit against generating (issue 19, "
             f"{time.strftime('%Y-%m-%d')})", "",
             "`python -m benchmarks.bench_cache`: the generate stage of one song of 4 stems, "
             "three ways alternately in one process, medians; wall s (this process's CPU s). "
             f"{machine.get('cpu')}, {machine.get('cores')} cores shared with other processes.",
             "'added on a miss' is the stage's own clock of its lookups and stores; the ratio "
             "is of CPU seconds, which other processes disturb less.",
             "", "| backend | song | generate | miss + store | added on a miss | hit | "
             "generate / hit (CPU) | busy |", "|---|---|---|---|---|---|---|---|"]
    for result in results:
        m = result["medians"]
        cell = {way: f"{w:.3f} ({c:.3f})" for way, (w, c) in m.items()}
        ratio = m["generate"][1] / max(m["hit"][1], 1e-9)
        busy = "" if result["busy"] is None else f"{result['busy']:.0%}"
        lines.append(f"| {result['backend']} | {result['duration_s']:g} s x {len(STEMS)} | "
                     f"{cell['generate']} | {cell['miss + store']} | "
                     f"{result['miss_added_s']:.3f} | {cell['hit']} | {ratio:.0f}x | {busy} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_cache",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="song length, s")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--markdown", metavar="PATH", help="append the table to PATH")
    args = parser.parse_args(argv)
    from musicstems.testing import tiny_musicgen

    with tempfile.TemporaryDirectory() as folder:
        model = str(tiny_musicgen(Path(folder) / "tiny"))
        results = [measure("sketch", args.duration, args.repeats, None),
                   measure("musicgen", args.duration, args.repeats, model)]
    text = markdown(results, describe())
    print(text)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as file:
            file.write(text)


if __name__ == "__main__":
    main()
