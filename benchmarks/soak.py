"""Memory over many songs in one process: does ``compose`` give back what it takes?

``python -m benchmarks.soak [--songs 100] [--precision int8] [--json PATH]``

Composes ``--songs`` short songs with the tiny random-weight MusicGen (the cached model is kept,
as in a notebook or a server that composes again and again) and prints the resident set size
(RSS, from /proc/self/statm) after the first song -- once the model, torch's kernels and librosa's
numba functions are loaded -- and every tenth song after, as a table. A leak grows with the songs;
allocator noise does not. Prints the growth per song over the second half of the run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time

from .machine import describe


def rss_mib() -> float:
    with open("/proc/self/statm", encoding="utf-8") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=100)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import warnings

    from musicstems import MusicStemsWarning, compose
    from musicstems.testing import tiny_musicgen

    # the random-weight model's noise never fits a plan: the warning would fill the table
    warnings.simplefilter("ignore", MusicStemsWarning)

    folder = tempfile.mkdtemp(prefix="soak-")
    model = str(tiny_musicgen(os.path.join(folder, "tiny")))
    stems = {"drums": "techno drums", "bass": "acid bass", "pads": "warm pads"}
    rows = []
    start = time.perf_counter()
    for song in range(1, args.songs + 1):
        result = compose(stems, bpm=124, key="A minor", duration_s=args.duration, seed=song,
                         model=model, device="cpu", precision=args.precision, progress=False)
        del result
        if song == 1 or song % 10 == 0:
            gc.collect()
            rows.append({"songs": song, "rss_mib": round(rss_mib(), 1),
                         "elapsed_s": round(time.perf_counter() - start, 1)})
            print(f"{song:>5} songs  RSS {rows[-1]['rss_mib']:8.1f} MiB", flush=True)
    half = [row for row in rows if row["songs"] >= args.songs // 2]
    growth = ((half[-1]["rss_mib"] - half[0]["rss_mib"])
              / max(half[-1]["songs"] - half[0]["songs"], 1)) if len(half) > 1 else 0.0
    summary = {"machine": describe(), "songs": args.songs, "precision": args.precision,
               "duration_s": args.duration, "rows": rows,
               "rss_first_mib": rows[0]["rss_mib"], "rss_last_mib": rows[-1]["rss_mib"],
               "growth_mib_per_song_second_half": round(growth, 3)}
    print("\n| songs | RSS MiB |\n|---:|---:|")
    for row in rows:
        print(f"| {row['songs']} | {row['rss_mib']} |")
    print(f"\nRSS after song 1: {summary['rss_first_mib']} MiB, after song {args.songs}: "
          f"{summary['rss_last_mib']} MiB; second half: {growth:+.3f} MiB per song")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(summary, file, indent=2)
    return summary


if __name__ == "__main__":
    main()
