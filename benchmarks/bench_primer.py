"""``python -m benchmarks.bench_primer``: what the audio primer costs per song.

The primer (``compose(..., primer="plan")``, the default) adds work in four places: rendering
the count-in from the plan, encoding it with the model's EnCodec, one batched decoder pass over
its ~94 frames (the prefill), and decoding those frames with the song before they are cut off;
every later step also attends over ~94 more cached positions. This measures the whole of it the
way a user meets it: the same song (musicgen-small's architecture with random weights, built
by benchmarks/models.py and loaded through ``from_pretrained``; 4 stems; ``precision="auto"``)
composed with ``primer="plan"`` and with ``primer=None``, alternately, in one process after one
warm-up song, so the two are measured under the same conditions. The machine is shared: each
song's row says how much CPU other processes took meanwhile (``busy``), and the cost is taken
from the pair of runs that were least disturbed.

Results go to benchmarks/RESULTS.md (``--markdown``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .machine import CpuShare, describe
from .models import build_model

STEMS = {"drums": "punchy four on the floor techno drums", "bass": "deep rolling acid bassline",
         "pads": "warm evolving analog pads", "lead": "bright lead synth melody"}
SONG = {"style": "dark berlin techno", "bpm": 128.0, "key": "A minor"}


def one_song(model: str, duration_s: float, primer, seed: int) -> dict:
    """One song's wall time and the backend's own breakdown of it."""
    from musicstems import compose

    share = CpuShare()
    start, cpu = time.perf_counter(), time.process_time()
    song = compose(STEMS, **SONG, duration_s=duration_s, seed=seed, model=model,
                   align=False, progress=False, primer=primer)
    wall = time.perf_counter() - start
    # this process's CPU seconds: less disturbed by other processes than the wall clock
    cpu = time.process_time() - cpu
    backend = song.manifest["backend"]
    return {"primer": primer, "wall_s": wall, "cpu_s": cpu, "generate_s": backend["generate_s"],
            "render_s": backend.get("conditioning_render_s", 0.0),
            "encode_s": backend["encode_s"], "ms_per_step": backend["ms_per_step"],
            "decode_s": backend["decode_s"], "steps": backend["decoder_steps"],
            "precision": backend["precision"], "sampler": backend["sampler"],
            "primer_s": (song.manifest["stems"]["bass"]["primer"] or {}).get("seconds"),
            "busy": share.others()}


def measure(model: str, duration_s: float, pairs: int, log=print) -> list[dict]:
    from musicstems.backends.musicgen import load_model

    load_model(model, device="auto", precision="auto", quiet=True)
    one_song(model, duration_s, "plan", seed=100)  # warm-up: first-call costs of torch/librosa
    rows = []
    for pair in range(pairs):
        for primer in ("plan", None):
            row = one_song(model, duration_s, primer, seed=pair)
            row["pair"] = pair
            log(f"  pair {pair} primer={primer!s:5} generate {row['generate_s']:.1f} s "
                f"(render {row['render_s']:.2f}, encode+first step {row['encode_s']:.2f}, "
                f"{row['ms_per_step']:.1f} ms/step, decode {row['decode_s']:.2f}; song "
                f"{row['wall_s']:.1f} s, CPU {row['cpu_s']:.1f} s) busy {row['busy'] or 0:.0%}")
            rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    """The cost from the least disturbed pair: the primed song's generation time (with the
    primer's rendering, which runs before the backend's clock starts) over the plain one's,
    and where the difference went."""
    pairs = {}
    for row in rows:
        pairs.setdefault(row["pair"], {})[row["primer"]] = row
    calm = min(pairs.values(), key=lambda p: max(p["plan"]["busy"] or 0, p[None]["busy"] or 0))
    primed, plain = calm["plan"], calm[None]
    cost = (primed["generate_s"] + primed["render_s"]) / plain["generate_s"] - 1
    return {"cost": cost, "primed": primed,
            "plain": plain,
            "parts_s": {part: primed[part] - plain[part]
                        for part in ("render_s", "encode_s", "decode_s")},
            "steps_s": (primed["ms_per_step"] - plain["ms_per_step"]) * plain["steps"] / 1000}


def markdown(rows: list[dict], result: dict, machine: dict, duration_s: float) -> str:
    lines = [f"## The audio primer's cost per song ({time.strftime('%Y-%m-%d')})", "",
             f"`python -m benchmarks.bench_primer --duration {duration_s:g}`: musicgen-small's "
             f"architecture (random weights), {len(STEMS)} stems of {duration_s:g} s, "
             f"precision auto ({rows[0]['precision']}), sampler {rows[0]['sampler']}; "
             f"{machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, "
             f"transformers {machine['transformers']}. Songs alternate with and without the "
             "primer in one process after a warm-up song; `busy` is the share of the machine "
             "other processes took meanwhile.", "",
             "| pair | primer | generate s | render s | encode + first step s | ms/step "
             "| decode s | song CPU s | busy |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['pair']} | {r['primer'] or 'None'} ({r['primer_s'] or 0:.2f} s) "
                     f"| {r['generate_s']:.2f} | {r['render_s']:.2f} | {r['encode_s']:.2f} "
                     f"| {r['ms_per_step']:.1f} | {r['decode_s']:.2f} | {r['cpu_s']:.1f} "
                     f"| {r['busy'] or 0:.0%} |")
    parts = result["parts_s"]
    cpu = result["primed"]["cpu_s"] / result["plain"]["cpu_s"] - 1
    lines += ["", f"Least disturbed pair: the primer costs **{result['cost']:+.1%}** of "
              f"generation ({result['primed']['generate_s'] + parts['render_s']:.1f} s against "
              f"{result['plain']['generate_s']:.1f} s): rendering {parts['render_s']:+.2f} s, "
              f"encoding + prefill + first step {parts['encode_s']:+.2f} s, the steps' longer "
              f"attention {result['steps_s']:+.2f} s, decoding the primer's frames "
              f"{parts['decode_s']:+.2f} s. In this process's CPU time the whole song costs "
              f"{cpu:+.1%} more.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_primer")
    parser.add_argument("--duration", type=float, default=10.0, help="song length, s")
    parser.add_argument("--pairs", type=int, default=2, help="songs with and without")
    parser.add_argument("--models", default=str(Path(tempfile.gettempdir())
                                               / "musicstems-bench-models"))
    parser.add_argument("--markdown", help="append the table to this file")
    args = parser.parse_args(argv)
    model = str(build_model("small", Path(args.models) / "small"))
    rows = measure(model, args.duration, args.pairs)
    result = summary(rows)
    text = markdown(rows, result, describe(), args.duration)
    print(text)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as file:
            file.write(text + "\n")


if __name__ == "__main__":
    main()
