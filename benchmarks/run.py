"""``python -m benchmarks``: speed, memory and fidelity of musicstems against the plain loop.

Builds MusicGen's published architectures with random weights (musicgen-small; musicgen-medium
with ``--medium``), saves them to a folder and loads them through ``from_pretrained`` as any hub
model. Then, every measurement in its own process (its own peak RSS), in one run so that ratios
are comparable:

1. the plain loop -- ``from_pretrained`` in fp32, one ``generate`` per stem (CFG 3.0);
2. ``compose()`` with default settings (``precision="auto"``) and with every CPU precision;
3. fidelity of every precision against fp32 (benchmarks/fidelity.py);
4. ``benchmarks/bench_align.py`` when it is there.

It prints the tables (and writes them as Markdown with ``--markdown PATH``). The machine is
shared: every row says how much CPU other processes took while it ran (``busy``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .machine import describe, read_bandwidth_gbs

STEMS = {"drums": "punchy four on the floor techno drums", "bass": "deep rolling acid bassline",
         "pads": "warm evolving analog pads", "lead": "bright lead synth melody"}
SONG = {"style": "dark berlin techno", "bpm": 128.0, "key": "A minor"}
CPU_PRECISIONS = ("fp32", "bf16", "int8")
# auto only takes a precision whose drift is below these (docs/performance.md says why)
THRESHOLDS = {"kl": 0.01, "kl_p99": 0.03, "top250": 0.95, "codec_snr_db": 30.0}


def _child(case: dict, log) -> dict | None:
    """Run one case of benchmarks/cases.py in a fresh interpreter."""
    cmd = [sys.executable, "-m", "benchmarks.cases", json.dumps(case)]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    log(f"  case {case['kind']} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return None


def _best(case: dict, repeats: int, log) -> dict | None:
    """The least disturbed of ``repeats`` runs (lowest share of CPU taken by others)."""
    results = [r for r in (_child(case, log) for _ in range(repeats)) if r]
    return min(results, key=lambda r: r.get("others_cpu") or 0.0) if results else None


def bytes_per_step(config, precision: str, stems: int, steps: int, kv_bytes: int) -> dict:
    """What one decoder step must read from memory: the decoder weights it uses (not the
    cross-attention key/value projections, computed once, nor the embeddings, a lookup) and
    the self-attention KV cache at its mean length over the song."""
    d = config.decoder
    h, layers, ffn = d.hidden_size, d.num_hidden_layers, d.ffn_dim
    linear = layers * (6 * h * h + 2 * h * ffn)  # self q,k,v,o + cross q,o + fc1, fc2
    heads = d.num_codebooks * h * d.vocab_size
    weight_bytes = {"fp32": 4 * (linear + heads), "bf16": 2 * (linear + heads),
                    "fp16": 2 * (linear + heads), "int8": linear + 4 * heads}[precision]
    rows = 2 * stems  # classifier-free guidance doubles the batch
    kv = layers * 2 * rows * h * kv_bytes * (steps + 1) / 2
    return {"weights": weight_bytes, "kv": kv, "total": weight_bytes + kv}


def _kv_bytes(result: dict) -> int:
    """Bytes per KV-cache value: the recipe's ``kv_cache`` where it names one (the int8 and
    CPU bf16 recipes keep it in bf16 or fp32 by the CPU), else the activations'."""
    cache = (result.get("recipe") or {}).get("kv_cache")
    if cache is not None:
        return 2 if cache == "bf16" else 4
    return 2 if result["precision"] in ("bf16", "fp16") else 4


def _fmt(value, spec: str, missing: str = "-") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def run_size(size: str, folder: Path, args, log) -> dict:
    from transformers import MusicgenConfig

    config = MusicgenConfig.from_pretrained(folder)
    stems = dict(list(STEMS.items())[:args.stems])
    duration = args.duration
    out = {"size": size, "stems": len(stems), "duration_s": duration, "rows": [],
           "fidelity": []}

    log(f"[{size}] fidelity against fp32 ({args.fidelity_duration:g} s teacher-forced)")
    fidelity = _child({"kind": "fidelity", "model": str(args.fidelity_model or folder),
                       "precisions": ["bf16", "int8", "fp16"],
                       "duration_s": args.fidelity_duration}, log)
    out["fidelity"] = fidelity["rows"] if fidelity else []
    for f in out["fidelity"]:
        log(f"  {f['precision']}: KL {f['kl']:.4f} (p99 {f['kl_p99']:.4f}), top-1 "
            f"{f['top1']:.3f}, top-250 {f['top250']:.3f}, codec "
            f"{_fmt(f['codec_snr_db'], '.1f', 'exact')} dB")

    from musicstems import make_plan, validate_compose_args
    from musicstems.spec import build_prompts

    # the texts compose sends: built from the plan's tempo and key, as render builds them
    spec = validate_compose_args(stems, duration_s=duration, seed=0, **SONG)
    plan = make_plan(spec)
    prompts = list(build_prompts(spec, bpm=plan.bpm, key=plan.key).values())
    measure = None if (size == "small" or args.full_baseline) else 1
    log(f"[{size}] plain loop: fp32, one generate per stem"
        + (f" ({measure} of {len(prompts)} stems measured, scaled)" if measure else ""))
    plain = _best({"kind": "plain", "model": str(folder), "prompts": prompts,
                   "duration_s": duration, "measure": measure}, args.repeats, log)
    if plain:
        out["rows"].append(plain)
        log(f"  {plain['wall_s']:.1f} s, {plain['ms_per_step']:.1f} ms/step (batch 2), "
            f"peak RSS {plain['peak_rss_gb']:.2f} GB, busy {100 * plain['others_cpu']:.0f} %")
    done = set()
    for precision in ("auto", *CPU_PRECISIONS):
        if precision in done:
            continue
        log(f"[{size}] compose precision={precision}")
        # the default song also measures a second song's post-processing, in one process
        row = _best({"kind": "compose", "model": str(folder), "stems": stems,
                     "duration_s": duration, "precision": precision, **SONG,
                     "again": precision == "auto"}, args.repeats, log)
        if row is None:
            continue
        if precision == "auto":
            row["label"] = f"auto -> {row['precision']} (default)"
            done.add(row["precision"])
        out["rows"].append(row)
        log(f"  {row['wall_s']:.1f} s, {row['ms_per_step']:.1f} ms/step, decode "
            f"{row['decode_s']:.1f} s, post {100 * row['post_share']:.1f} %, peak RSS "
            f"{row['peak_rss_gb']:.2f} GB, busy {100 * row['others_cpu']:.0f} %"
            + (f"; second song {row['second_song']['wall_s']:.1f} s, post "
               f"{100 * row['second_song']['post_share']:.1f} %, process peak RSS "
               f"{row['second_song']['process_peak_rss_gb']:.2f} GB"
               if row.get("second_song") else "")
            + (f" [align failed: {row['align_error']}]" if row.get("align_error") else ""))
    bandwidth = args.bandwidth_gbs
    for row in out["rows"]:
        kv = 4 if row["kind"] == "plain" else _kv_bytes(row)
        rows_stems = 1 if row["kind"] == "plain" else row["stems"]
        need = bytes_per_step(config, row["precision"], rows_stems, row["steps"], kv)
        row["bytes_per_step"] = need
        row["floor_ms"] = 1000 * need["total"] / (bandwidth * 1e9)
        row["weights_floor_ms"] = 1000 * need["weights"] / (bandwidth * 1e9)
    return out


def tables(result: dict) -> str:
    machine = result["machine"]
    lines = [f"Machine: {machine['cpu']}, {machine['cores']} cores "
             f"(torch threads {machine['torch_threads']}), "
             f"{_fmt(machine['memory_gib'], '.0f')} GiB, read bandwidth "
             f"{machine['read_bandwidth_gbs']:.1f} GB/s at the start (best of 7 sums of 1 GiB; "
             f"the floors divide by it), {_fmt(machine.get('read_bandwidth_end_gbs'), '.1f')} "
             f"GB/s at the end, flags "
             f"{' '.join(machine['flags'])}; torch {machine['torch']}, transformers "
             f"{machine['transformers']}, Python {machine['python']}.", ""]
    for size in result["sizes"]:
        fid = {f["precision"]: f for f in size["fidelity"]}
        plain = next((r for r in size["rows"] if r["kind"] == "plain"), None)
        lines += [f"### musicgen-{size['size']}: {size['stems']} stems x "
                  f"{size['duration_s']:g} s, guidance 3.0", "",
                  "| run | precision | wall s | ms/step | x real time | speed-up | "
                  "peak RSS GB | KL / top-250 | post-proc | busy |",
                  "|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
        for row in size["rows"]:
            name = ("plain loop" + (f" ({row['measured_stems']} stem measured)"
                                    if row["measured_stems"] < row["stems"] else "")
                    if row["kind"] == "plain" else "compose " + row.get("label", row["requested"]))
            f = fid.get(row["precision"], {})
            fidelity = ("reference" if row["precision"] == "fp32"
                        else f"{f['kl']:.4f} / {f['top250']:.3f}" if f else "-")
            speedup = plain["wall_s"] / row["wall_s"] if plain else None
            post = f"{100 * row['post_share']:.1f} %" if row["kind"] == "compose" else "-"
            peak = f"{row['peak_rss_gb']:.2f}"
            if row.get("second_song"):  # the same process's next song: imports done
                post += f" (next song {100 * row['second_song']['post_share']:.1f} %)"
                peak += f" ({row['second_song']['process_peak_rss_gb']:.2f} with it)"
            lines.append(
                f"| {name} | {row['precision']} | {row['wall_s']:.1f} | "
                f"{row['ms_per_step']:.1f} | {size['duration_s'] / row['wall_s']:.3f} | "
                f"{_fmt(speedup, '.2f')}x | {peak} | {fidelity} | {post} | "
                f"{100 * (row['others_cpu'] or 0):.0f} % |")
        lines += ["", "Per decoder step against the memory-bandwidth floor (bytes the step "
                  "must read / read bandwidth; KV cache at its mean length):", "",
                  "| run | precision | batch rows | weights MB | KV MB | floor ms "
                  "(weights only) | measured ms | x floor |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for row in size["rows"]:
            b = row["bytes_per_step"]
            rows = 2 if row["kind"] == "plain" else 2 * row["stems"]
            lines.append(
                f"| {row['kind']} | {row['precision']} | {rows} | {b['weights'] / 1e6:.0f} | "
                f"{b['kv'] / 1e6:.0f} | {row['floor_ms']:.1f} ({row['weights_floor_ms']:.1f}) | "
                f"{row['ms_per_step']:.1f} | {row['ms_per_step'] / row['floor_ms']:.2f} |")
        compose_rows = [r for r in size["rows"] if r["kind"] == "compose"]
        if compose_rows:
            lines += ["", "Time inside compose (s): generate = text encoder + decoder loop + "
                      "batched EnCodec decode; post = align + loudness + mix + analysis + "
                      "save:", "",
                      "| precision | generate | encode | decode | align | loudness | mix | "
                      "analyze | save | post share |",
                      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for row in compose_rows:
                t = row["timings"]
                lines.append(
                    f"| {row.get('label', row['precision'])} | {t.get('generate', 0):.2f} | "
                    f"{_fmt(row.get('encode_s'), '.2f')} | {_fmt(row.get('decode_s'), '.2f')} | "
                    f"{t.get('align', 0):.2f} | {t.get('loudness', 0):.2f} | "
                    f"{t.get('mix', 0):.2f} | {t.get('analyze', 0):.2f} | "
                    f"{row['save_s']:.2f} | {100 * row['post_share']:.1f} % |")
        lines += ["", "Fidelity against fp32 (teacher forcing, guided next-token "
                  "distributions; codec: EnCodec decode SNR):", "",
                  "| precision | KL nat | KL p99 | top-1 | top-250 | codec dB | "
                  "below thresholds |", "|---|---:|---:|---:|---:|---:|---|"]
        for f in size["fidelity"]:
            snr = math.inf if f["codec_snr_db"] is None else f["codec_snr_db"]
            ok = (f["kl"] <= THRESHOLDS["kl"] and f["kl_p99"] <= THRESHOLDS["kl_p99"]
                  and f["top250"] >= THRESHOLDS["top250"]
                  and snr >= THRESHOLDS["codec_snr_db"])
            lines.append(f"| {f['precision']} | {f['kl']:.4f} | {f['kl_p99']:.4f} | "
                         f"{f['top1']:.3f} | {f['top250']:.3f} | "
                         f"{_fmt(f['codec_snr_db'], '.1f', 'exact')} | "
                         f"{'reference' if f['precision'] == 'fp32' else 'yes' if ok else 'no'} |")
        ref = fid.get("fp32")
        if ref:
            lines += ["", f"fp32 guided entropy {ref['entropy']:.2f} nat over "
                      f"{ref['positions']} positions; for scale, sampling at temperature "
                      f"1.02 / 1.05 / 1.10 instead of 1.00 is a KL of "
                      f"{ref['kl_temp_2pct']:.4f} / {ref['kl_temp_5pct']:.4f} / "
                      f"{ref['kl_temp_10pct']:.4f}."]
        lines.append("")
    if result.get("align"):
        a = result["align"]
        lines += ["### Alignment (benchmarks/bench_align.py)", "",
                  "| " + " | ".join(str(k) for k in a) + " |",
                  "|" + "---|" * len(a),
                  "| " + " | ".join(_fmt(v, ".3f") if isinstance(v, float) else str(v)
                                    for v in a.values()) + " |", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a short run: 3 s songs, 1 s of teacher forcing")
    parser.add_argument("--medium", action="store_true",
                        help="also musicgen-medium (its plain loop measures 1 stem, scaled)")
    parser.add_argument("--stems", type=int, default=4)
    parser.add_argument("--duration", type=float, default=None,
                        help="song length in s (default 10, 3 with --quick)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run each case N times and keep the least disturbed")
    parser.add_argument("--full-baseline", action="store_true",
                        help="measure every stem of the plain loop for medium too")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="keep the built models here and reuse them (default: temporary)")
    parser.add_argument("--fidelity-model", type=Path, default=None,
                        help="measure fidelity on this model folder instead (e.g. real weights)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    args = parser.parse_args(argv)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.fidelity_duration = 1.0 if args.quick else 3.0

    def log(message: str) -> None:
        print(message, flush=True)

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    args.bandwidth_gbs = read_bandwidth_gbs()
    result = {"machine": describe(args.bandwidth_gbs), "sizes": []}
    log(f"machine: {json.dumps(result['machine'])}")
    sizes = ["small"] + (["medium"] if args.medium else [])
    with tempfile.TemporaryDirectory(prefix="musicstems-bench-") as tmp:
        root = args.models_dir or Path(tmp)
        for size in sizes:
            log(f"[{size}] building the architecture with random weights")
            built = _child({"kind": "build", "size": size,
                            "folder": str(root / f"musicgen-{size}")}, log)
            if built is None:
                continue
            result["sizes"].append(run_size(size, Path(built["folder"]), args, log))
    # A shared VM's bandwidth moves with its neighbours (docs/performance.md, *Machines*): the
    # second reading shows how far it moved while the rows ran.
    result["machine"]["read_bandwidth_end_gbs"] = read_bandwidth_gbs()
    log(f"read bandwidth at the end: {result['machine']['read_bandwidth_end_gbs']:.1f} GB/s")
    if (Path(__file__).with_name("bench_align.py")).is_file():
        log("alignment: benchmarks/bench_align.py run(duration_s=30.0, n_stems=4)")
        result["align"] = _child({"kind": "align", "duration_s": 30.0, "n_stems": 4}, log)
    text = tables(result)
    print("\n" + text)
    print(f"(benchmark took {(time.perf_counter() - start) / 60:.1f} min)")
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
