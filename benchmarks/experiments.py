"""The measurements behind decisions the code still makes (docs/performance.md quotes them).

``python -m benchmarks.experiments attention [--lengths 250 500]``
    The decoder step's self-attention alone: SDPA over 24 layers' KV caches of 8 rows
    (musicgen-small, 4 stems under guidance) with the cache in fp32, bf16 and fp16 -- what the
    cache's dtype is chosen by (``fast_bf16_attention``: bf16 only where SDPA reads it fast) --
    and, for scale, the fp32 cache read by a plain streaming kernel (numba, when installed; not
    used by musicstems: what SDPA leaves on the table, and why SDPA stays).

``python -m benchmarks.experiments step --model DIR [--lengths 1 250 500]``
    musicstems' decoder step (``DecoderStep``, 4 stems under guidance) in int8 and bf16, as
    ``load_model`` sets them up on this CPU, with the KV cache in bf16 and in fp32, at a few
    cache lengths: the bf16-or-fp32 cache rule measured in the whole step.

``python -m benchmarks.experiments headroom --model DIR [--duration 10] [--stems 4]``
    Issue 6's "within 2x of the memory-bandwidth floor", in one process: the read bandwidth;
    the decoder step (int8 and bf16, as ``load_model`` sets them up) with one cached position --
    every cost but reading the KV cache -- and at the mean and last positions of the song; the
    song's steps one after the other, bare and in the sampling loop (``sample_codes``, the
    benchmark's ms/step); the floor at the mean (``benchmarks.run.bytes_per_step``); and the
    time and read speed self-attention would need for 2x.

``python -m benchmarks.experiments contention --model DIR``
    The int8 decoder step while another process keeps one core busy: torch's default OpenMP
    settings, ``OMP_WAIT_POLICY=PASSIVE``, one thread -- why musicstems leaves the thread count
    to the user (docs/guide.md).

Every experiment prints its table as it goes; ``--json PATH`` also writes the run's rows, its
settings and the machine (``benchmarks.machine.describe``) to PATH, a new file per run.
Experiments removed since (``linear``: kernel families; ``cache``: transformers' caches and
``torch.compile`` against musicstems' loop) are in git history; docs/performance.md says which
of its figures came from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

# Everything this file takes from musicstems, all of it public: when a module moves, fix the
# paths here and nowhere else.
from musicstems.backends.decoding import DecoderStep, SamplingSettings, encode_text, sample_codes
from musicstems.backends.musicgen import load_model, release_models
from musicstems.backends.device import resolve_precision

from .machine import describe, read_bandwidth_gbs
from .run import bytes_per_step

PROMPTS = ("punchy techno drums", "deep acid bassline", "warm analog pads", "lead synth",
           "shimmering arpeggio", "vocal chops", "string section", "noise sweeps")
# musicgen-small's self-attention: 24 layers of 16 heads x 64, 8 rows (4 stems x guidance)
SMALL_ATTENTION = {"rows": 8, "heads": 16, "head_dim": 64, "layers": 24}


def _best(fn, repeats: int = 5) -> float:
    """The least of ``repeats`` wall times of ``fn()``, in seconds: the least disturbed run."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _prompt_inputs(loaded, stems: int) -> dict:
    return loaded.processor(text=list(PROMPTS[:stems]), padding=True, return_tensors="pt")


def _filled_step(loaded, inputs, capacity: int, kv_dtype):
    """A ``DecoderStep`` for ``inputs`` under guidance, its cache written ``capacity`` times
    (unwritten pages of a fresh buffer read as zeros, faster than a song's cache), the codes it
    is called with, and the ms each of those calls took."""
    states, mask = encode_text(loaded.model, inputs["input_ids"], inputs["attention_mask"],
                               guided=True)
    rows = states.shape[0]
    prepared = dataclasses.replace(loaded.prepared, kv_dtype=kv_dtype)
    decoder_step = DecoderStep(loaded.model, rows, capacity, prepared=prepared)
    decoder_step.set_encoder(states, mask)
    codes = torch.zeros(rows, loaded.model.config.decoder.num_codebooks, dtype=torch.long)
    durations_ms = []
    for _ in range(capacity):
        start = time.perf_counter()
        decoder_step(codes)
        durations_ms.append(1000 * (time.perf_counter() - start))
    return decoder_step, codes, durations_ms


def _step_ms_at(decoder_step, codes, lengths, steps: int = 20) -> list[float]:
    """Mean ms of one call of a filled ``decoder_step`` at each cache length: the best of 3
    runs of ``steps`` steps after one to warm up (``length`` is rewound before every call)."""
    times = []
    for length in lengths:
        def run(length=length):
            for _ in range(steps):
                decoder_step.length = length
                decoder_step(codes)
        run()
        times.append(1000 * _best(run, 3) / steps)
    return times


# --- attention -------------------------------------------------------------------------------

def attention(lengths=(250, 500)) -> list[dict]:
    """SDPA as the decoder step runs it -- one query row per stem and guidance half over each
    layer's cache, a view of a buffer allocated for the song -- at musicgen-small's sizes, with
    the cache in each dtype: ms, and GB/s of cache read."""
    rows, heads, head_dim, layers = SMALL_ATTENTION.values()
    capacity = max(lengths) + 4
    results = []
    torch.manual_seed(0)
    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            keys = [torch.randn(rows, heads, capacity, head_dim).to(dtype) for _ in range(layers)]
            values = [torch.randn_like(k) for k in keys]
            query = torch.randn(rows, heads, 1, head_dim).to(dtype)
            for length in lengths:
                def run(length=length):
                    for k, v in zip(keys, values):
                        F.scaled_dot_product_attention(query, k[:, :, :length],
                                                       v[:, :, :length], scale=0.125)
                run()
                seconds = _best(run)
                cache_bytes = 2 * layers * rows * heads * length * head_dim * keys[0].itemsize
                row = {"kernel": "sdpa", "cache": _dtype_name(dtype), "cached_steps": length,
                       "ms": 1000 * seconds, "cache_read_gbs": cache_bytes / seconds / 1e9}
                results.append(row)
                print(f"SDPA, cache {row['cache']:9s} at {length}: {row['ms']:6.1f} ms  "
                      f"{row['cache_read_gbs']:5.1f} GB/s", flush=True)
            if dtype == torch.float32:
                results += _streaming_attention_rows(query, keys, values, lengths)
            del keys, values
    return results


def _streaming_attention_rows(query, keys, values, lengths) -> list[dict]:
    """The same attention through a plain kernel that streams each (row, head)'s keys and
    values once (numba, every core; not used by musicstems): how far SDPA's q_len=1 kernel is
    from what this CPU can do."""
    try:
        import numba
    except ImportError:
        print("numba is not installed: no streaming-kernel rows")
        return []
    import numpy as np

    @numba.njit(parallel=True, fastmath=True)
    def attend(q, k, v, length, scale, out):
        for p in numba.prange(k.shape[0]):
            scores = np.empty(length, np.float32)
            top = np.float32(-np.inf)
            for t in range(length):
                dot = np.float32(0)
                for d in range(k.shape[2]):
                    dot += q[p, d] * k[p, t, d]
                scores[t] = dot * np.float32(scale)
                top = max(top, scores[t])
            total = np.float32(0)
            for t in range(length):
                scores[t] = np.exp(scores[t] - top)
                total += scores[t]
            acc = np.zeros(k.shape[2], np.float32)
            for t in range(length):
                for d in range(k.shape[2]):
                    acc[d] += scores[t] * v[p, t, d]
            for d in range(k.shape[2]):
                out[p, d] = acc[d] / total

    rows, heads, capacity, head_dim = keys[0].shape
    flat_q = query.reshape(rows * heads, head_dim).numpy()
    flat_k = [k.reshape(rows * heads, capacity, head_dim).numpy() for k in keys]
    flat_v = [v.reshape(rows * heads, capacity, head_dim).numpy() for v in values]
    out = np.empty((rows * heads, head_dim), np.float32)
    start = time.perf_counter()
    attend(flat_q, flat_k[0], flat_v[0], 1, 0.125, out)
    print(f"streaming kernel (numba): compiled in {time.perf_counter() - start:.1f} s")
    results = []
    for length in lengths:
        def run(length=length):
            for k, v in zip(flat_k, flat_v):
                attend(flat_q, k, v, length, 0.125, out)
        run()
        seconds = _best(run)
        cache_bytes = 2 * len(keys) * rows * heads * length * head_dim * 4
        reference = F.scaled_dot_product_attention(query, keys[-1][:, :, :length],
                                                   values[-1][:, :, :length], scale=0.125)
        error = float((torch.from_numpy(out).view_as(reference) - reference).abs().max())
        row = {"kernel": "streaming (numba)", "cache": "float32", "cached_steps": length,
               "ms": 1000 * seconds, "cache_read_gbs": cache_bytes / seconds / 1e9,
               "max_abs_difference_from_sdpa": error}
        results.append(row)
        print(f"streaming, cache float32 at {length}: {row['ms']:6.1f} ms  "
              f"{row['cache_read_gbs']:5.1f} GB/s  (max |difference| from SDPA {error:.1e})",
              flush=True)
    return results


# --- step ------------------------------------------------------------------------------------

def step(model_dir: str, lengths=(1, 250, 500), stems: int = 4) -> list[dict]:
    """musicstems' decoder step in int8 and bf16 (as ``load_model`` sets them up) with the KV
    cache in bf16 and in fp32, at a few cache lengths: mean ms over 20 steps."""
    results = []
    for precision in ("int8", "bf16"):
        loaded = load_model(model_dir, device="cpu", precision=precision, quiet=True)
        chosen = _dtype_name(loaded.prepared.kv_dtype or loaded.model.dtype)
        inputs = _prompt_inputs(loaded, stems)
        for kv_dtype in (torch.bfloat16, torch.float32):
            with torch.inference_mode():
                decoder_step, codes, _ = _filled_step(loaded, inputs, max(lengths) + 1,
                                                      kv_dtype)
                times = _step_ms_at(decoder_step, codes, lengths)
            del decoder_step
            cache = _dtype_name(kv_dtype)
            results += [{"precision": precision, "cache": cache, "load_model_cache": chosen,
                         "cached_steps": n, "ms": t} for n, t in zip(lengths, times)]
            label = f"{precision}, cache {cache}{' (load_model)' if cache == chosen else ''}"
            print(f"{label:34s} " + "  ".join(f"at {n}: {t:6.1f} ms"
                                              for n, t in zip(lengths, times)), flush=True)
        del loaded, inputs
        release_models()
    return results


# --- headroom --------------------------------------------------------------------------------

def headroom(model_dir: str, duration_s: float = 10.0, stems: int = 4) -> list[dict]:
    """The decoder step at 1, mean and last cached positions of a ``stems`` x ``duration_s``
    song against the bandwidth floor at the mean, all in one process, and what is left for
    self-attention under 2x the floor."""
    bandwidth = read_bandwidth_gbs()
    results = []
    for precision in ("int8", "bf16"):
        loaded = load_model(model_dir, device="cpu", precision=precision, quiet=True)
        config = loaded.model.config
        steps = math.ceil(duration_s * loaded.frame_rate) + config.decoder.num_codebooks - 1
        mean = (steps + 1) // 2
        if precision == "int8":
            print(f"read bandwidth {bandwidth:.1f} GB/s; {stems} stems x {duration_s:g} s = "
                  f"{steps} steps, mean cached positions {mean}", flush=True)
        cache_dtype = loaded.prepared.kv_dtype or loaded.model.dtype  # None: the activations'
        inputs = _prompt_inputs(loaded, stems)
        with torch.inference_mode():
            decoder_step, codes, fill_ms = _filled_step(loaded, inputs, steps + 1,
                                                        loaded.prepared.kv_dtype)
            bare_ms = statistics.mean(fill_ms[:steps])  # the song's steps, bare
            ms = dict(zip((1, mean, steps), _step_ms_at(decoder_step, codes, (1, mean, steps))))
            del decoder_step
            # the song's loop, sampling included: what the benchmark's ms/step measures
            clock = []
            torch.manual_seed(0)
            sample_codes(loaded.model, inputs["input_ids"], inputs["attention_mask"],
                         SamplingSettings(max_new_tokens=steps, guidance_scale=3.0),
                         prepared=loaded.prepared,
                         on_step=lambda _: clock.append(time.perf_counter()))
            loop_ms = 1000 * (clock[-1] - clock[0]) / (steps - 1)
        need = bytes_per_step(config, precision, stems, steps, cache_dtype.itemsize)
        floor_ms = 1000 * need["total"] / (bandwidth * 1e9)
        attention_ms = ms[mean] - ms[1]
        budget_ms = 2 * floor_ms - ms[1]
        row = {"precision": precision, "cache": _dtype_name(cache_dtype), "steps": steps,
               "mean_cached_positions": mean, "read_bandwidth_gbs": bandwidth,
               "step_ms_at_1": ms[1], "step_ms_at_mean": ms[mean], "step_ms_at_last": ms[steps],
               "bare_steps_ms": bare_ms, "loop_ms": loop_ms, "floor_ms": floor_ms,
               "weights_bytes": need["weights"], "kv_bytes_at_mean": need["kv"],
               "step_x_floor": ms[mean] / floor_ms, "loop_x_floor": loop_ms / floor_ms,
               "attention_ms_at_mean": attention_ms,
               # a busy host can make the step at 1 position the slower one: no reading then
               "attention_read_gbs": need["kv"] / attention_ms / 1e6 if attention_ms > 0 else None,
               "attention_budget_ms_for_2x": budget_ms,
               "attention_read_gbs_for_2x": (need["kv"] / budget_ms / 1e6 if budget_ms > 0
                                             else None)}
        results.append(row)
        _print_headroom(row)
        del loaded, inputs
        release_models()
    return results


def _print_headroom(row: dict) -> None:
    mean, steps = row["mean_cached_positions"], row["steps"]
    read = (f"{row['attention_read_gbs']:.1f} GB/s" if row["attention_read_gbs"] else "-")
    needed = (f"{row['attention_read_gbs_for_2x']:.1f} GB/s, "
              f"{100 * row['attention_read_gbs_for_2x'] / row['read_bandwidth_gbs']:.0f} % of "
              f"the bandwidth" if row["attention_read_gbs_for_2x"]
              else "impossible: the rest of the step alone is over 2x")
    print(f"{row['precision']} (KV cache {row['cache']}): step at 1 / {mean} / {steps} "
          f"cached positions {row['step_ms_at_1']:.1f} / {row['step_ms_at_mean']:.1f} / "
          f"{row['step_ms_at_last']:.1f} ms; the song's {steps} steps {row['bare_steps_ms']:.1f}"
          f" ms each, its loop (with sampling) {row['loop_ms']:.1f} ms per step\n"
          f"  floor at {mean}: {row['floor_ms']:.1f} ms ({row['weights_bytes'] / 1e6:.0f} MB "
          f"weights + {row['kv_bytes_at_mean'] / 1e6:.0f} MB cache): step "
          f"{row['step_x_floor']:.2f}x, loop {row['loop_x_floor']:.2f}x\n"
          f"  self-attention at {mean} about {row['attention_ms_at_mean']:.1f} ms ({read}); for "
          f"a 2x step it would have {row['attention_budget_ms_for_2x']:.1f} ms: {needed}",
          flush=True)


# --- contention ------------------------------------------------------------------------------

def _contention_child(model_dir: str, threads: int | None) -> float:
    """Mean ms of the int8 decoder step of 4 stems over steps 20-120, in this process."""
    if threads:
        torch.set_num_threads(threads)
    loaded = load_model(model_dir, device="cpu", precision="int8", quiet=True)
    inputs = _prompt_inputs(loaded, 4)
    with torch.inference_mode():
        decoder_step, codes, _ = _filled_step(loaded, inputs, 200, loaded.prepared.kv_dtype)
        decoder_step.length = 20
        start = time.perf_counter()
        for _ in range(100):
            decoder_step(codes)
    return 1000 * (time.perf_counter() - start) / 100


def contention(model_dir: str) -> list[dict]:
    """The int8 decoder step while another process keeps one core busy, with torch's default
    OpenMP settings, ``OMP_WAIT_POLICY=PASSIVE`` and ``torch.set_num_threads(1)`` -- each in a
    fresh process, as the variables must be set before torch starts."""
    def child(env, threads):
        code = ("import sys; from benchmarks.experiments import _contention_child; "
                "print(_contention_child(sys.argv[1], int(sys.argv[2]) or None))")
        out = subprocess.run([sys.executable, "-c", code, model_dir, str(threads or 0)],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, **env})
        return float(out.stdout.strip().splitlines()[-1])

    cases = [("default", {}, None), ("OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"},
                                      None), ("1 thread", {}, 1)]
    results = []
    for busy in (False, True):
        burner = None
        if busy:  # one core taken by another program
            burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for name, env, threads in cases:
                row = {"load": "one core busy" if busy else "quiet", "setting": name,
                       "ms_per_step": child(env, threads)}
                results.append(row)
                print(f"{row['load']:14s} {name:26s} {row['ms_per_step']:6.1f} ms/step",
                      flush=True)
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
    return results


# --- command ---------------------------------------------------------------------------------

def _write_json(path: Path, result: dict) -> None:
    """``result`` to ``path``, a new file: written beside it, then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    partial.replace(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=("attention", "step", "headroom", "contention"))
    parser.add_argument("--model", help="a saved model folder (for 'step', 'headroom' and "
                        "'contention'; `python -m benchmarks --models-dir DIR` leaves some)")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write the results to PATH, which must not exist yet")
    parser.add_argument("--lengths", type=int, nargs="+", metavar="N",
                        help="cache lengths ('attention': 250 500; 'step': 1 250 500)")
    parser.add_argument("--duration", type=float, default=10.0, metavar="S",
                        help="'headroom': the song's seconds (default %(default)s)")
    parser.add_argument("--stems", type=int, default=4, choices=range(1, len(PROMPTS) + 1),
                        metavar="N", help="'step', 'headroom': stems (default %(default)s)")
    args = parser.parse_args(argv)
    if args.which != "attention" and not args.model:
        parser.error(f"{args.which} needs --model DIR")
    if args.json is not None and args.json.exists():
        parser.error(f"--json {args.json} exists already: give each run a file of its own")
    if args.lengths is not None and min(args.lengths) < 1:
        parser.error(f"--lengths {args.lengths}: every length must be at least 1")
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    settings = {"model": args.model, "device": "cpu",
                "default_precision": resolve_precision("auto", "cpu")}
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if args.which == "attention":
        settings["lengths"] = args.lengths or [250, 500]
        settings.update(SMALL_ATTENTION)
        rows = attention(tuple(settings["lengths"]))
    elif args.which == "step":
        settings.update(lengths=args.lengths or [1, 250, 500], stems=args.stems)
        rows = step(args.model, tuple(settings["lengths"]), args.stems)
    elif args.which == "headroom":
        settings.update(duration_s=args.duration, stems=args.stems)
        rows = headroom(args.model, args.duration, args.stems)
    else:
        rows = contention(args.model)
    if args.json is not None:
        _write_json(args.json, {
            "experiment": args.which, "argv": sys.argv[1:] if argv is None else list(argv),
            "started_utc": started,
            "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "settings": settings, "machine": describe(), "rows": rows})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
