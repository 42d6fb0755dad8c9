"""Songs per hour: a loop of ``compose`` against ``compose_many`` here and on a LocalCluster.

``python -m benchmarks.bench_many [--songs 4] [--duration 5] [--size small|tiny]
[--batch-stems 1 2 4 8] [--cluster-batch-stems 4] [--markdown F]``

The same songs (2 stems each) several ways, in one run: a plain loop of ``compose`` with the
model kept loaded; ``compose_many`` in this process with each ``max_batch_stems`` given (1:
each song alone, as the loop; more: that many stems of several songs in one sampling loop);
and ``compose_many`` on a Dask LocalCluster of 2 single-threaded worker processes (each loads
the model once), whose chunks of ``--cluster-batch-stems`` are spread over the workers. ``--size small`` is
musicgen-small's architecture with random weights (benchmarks/models.py; speed does not depend on
weight values), ``tiny`` the test model. Wall-clock seconds, songs per hour, and whether every
way wrote the same audio as the loop (a batch of another size may round differently:
docs/backends.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from .machine import describe


def songs_for(count: int) -> list[dict]:
    return [{"name": f"song_{i:03d}", "stems": {"drums": "punchy techno drums",
                                                 "bass": f"deep bassline, variation {i}"},
             "bpm": 124, "key": "A minor", "seed": 100 + i} for i in range(count)]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_many")
    parser.add_argument("--songs", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--size", choices=("small", "tiny"), default="small")
    parser.add_argument("--models", default=str(Path(tempfile.gettempdir())
                                               / "musicstems-bench-models"))
    parser.add_argument("--batch-stems", type=int, nargs="+", default=[1, 2, 4, 8],
                        metavar="N", help="compose_many's max_batch_stems here, one row each")
    parser.add_argument("--cluster-batch-stems", type=int, default=4, metavar="N")
    parser.add_argument("--markdown", help="append the table to this file")
    args = parser.parse_args(argv)

    import warnings

    from distributed import Client, LocalCluster

    from musicstems import Composition, MusicStemsWarning, compose
    from musicstems.many import compose_many

    warnings.simplefilter("ignore", MusicStemsWarning)  # random weights never fit a plan
    if args.size == "small":
        from .models import build_model

        model = str(build_model("small", Path(args.models) / "small"))
    else:
        from musicstems.testing import tiny_musicgen

        model = str(tiny_musicgen(Path(tempfile.mkdtemp()) / "tiny"))
    # no stem cache: every way generates every stem
    settings = dict(model=model, device="cpu", duration_s=args.duration, cache=False)
    songs = songs_for(args.songs)
    out = Path(tempfile.mkdtemp(prefix="bench-many-"))
    rows, mixes = [], {}

    # the model is loaded before each way's clock starts (workers: by a warm-up song)
    compose(songs[0]["stems"], progress=False, **{**settings, "duration_s": 1.0})
    start = time.perf_counter()
    loop = [compose(s["stems"], bpm=s["bpm"], key=s["key"], seed=s["seed"], progress=False,
                    **settings)
            for s in songs]
    rows.append(("loop of compose()", time.perf_counter() - start))
    mixes["loop of compose()"] = [song.mix for song in loop]

    for batch in args.batch_stems:
        name = f"compose_many, this process, max_batch_stems={batch}"
        start = time.perf_counter()
        compose_many(songs, out / f"here-{batch}", progress=False, max_batch_stems=batch,
                     **settings)
        rows.append((name, time.perf_counter() - start))
        mixes[name] = [Composition.load(out / f"here-{batch}" / s["name"]).mix for s in songs]

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        warm = [{"name": f"warm_{i}", "stems": {"drums": "drums"}} for i in range(2)]
        compose_many(warm, out / "warm", client=client, progress=False, max_batch_stems=1,
                     **{**settings, "duration_s": 1.0})
        name = (f"compose_many, LocalCluster (2 workers x 1 thread), max_batch_stems="
                f"{args.cluster_batch_stems}")
        start = time.perf_counter()
        compose_many(songs, out / "cluster", client=client, progress=False,
                     max_batch_stems=args.cluster_batch_stems, **settings)
        rows.append((name, time.perf_counter() - start))
    mixes[name] = [Composition.load(out / "cluster" / s["name"]).mix for s in songs]

    same = {name: all(np.array_equal(a, b) for a, b in zip(mixes[name], mixes[rows[0][0]]))
            for name, _ in rows}
    machine = describe()
    lines = [f"`python -m benchmarks.bench_many --songs {args.songs} --duration "
             f"{args.duration:g} --size {args.size}`: {args.songs} songs of 2 stems x "
             f"{args.duration:g} s, {machine['cpu']}, {machine['cores']} cores, torch "
             f"{machine['torch']}, transformers {machine['transformers']}.", "",
             "| way | wall s | songs per hour | vs loop | same audio as the loop |",
             "|---|---:|---:|---:|---|"]
    base = rows[0][1]
    for name, seconds in rows:
        lines.append(f"| {name} | {seconds:.1f} | {3600 * args.songs / seconds:.0f} | "
                     f"{base / seconds:.2f}x | {'yes' if same[name] else 'no'} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as file:
            file.write("\n" + text + "\n")
    return {"rows": rows, "same": same}


if __name__ == "__main__":
    main()
