"""The measurements behind the design decisions, reproducible (docs/performance.md quotes them).

``python -m benchmarks.experiments linear``
    One decoder step's worth of musicgen-small Linear layers (24 x [6 x 1024^2, 1024x4096,
    4096x1024] = 353 M weights) at 8 rows (4 stems x CFG), in every kernel family: fp32, bf16,
    both with their weights packed for oneDNN once (musicstems' bf16 recipe); torch.ao dynamic
    int8 with 7-bit (stock) and 8-bit activations, packed for torch's default engine and for
    oneDNN; torch's weight-only int8 and int4 kernels; and -- when torchao is installed --
    torchao's int8 configs, eager and under ``torch.compile``.

``python -m benchmarks.experiments step --model DIR``
    musicstems' decoder step in int8 and bf16, its Linear layers packed for oneDNN or not, its
    KV cache in bf16 or fp32, at KV-cache lengths 1, 250 and 500 (4 stems under guidance).

``python -m benchmarks.experiments attention``
    The step's self-attention alone: SDPA over 24 layers' KV caches of 8 rows (musicgen-small,
    4 stems under guidance) in fp32, bf16 and fp16, at 250 and 500 cached steps -- what decides
    the cache's dtype (``precision.fast_bf16_attention``) -- and, for scale, the fp32 cache read
    by a plain streaming kernel (numba; not used by musicstems).

``python -m benchmarks.experiments contention --model DIR``
    The int8 decoder step while another process keeps one core busy: torch's default OpenMP
    settings, ``OMP_WAIT_POLICY=PASSIVE``, one thread.

``python -m benchmarks.experiments cache --model DIR [--steps 250]``
    The decoder loop of a saved model (``python -m benchmarks --models-dir DIR`` leaves one) with
    transformers' ``generate`` with its DynamicCache, with a StaticCache, and with a StaticCache
    and ``torch.compile`` (transformers' own compiled decoding), against musicstems' own loop
    (its in-place cache), in fp32 and int8.

``python -m benchmarks.experiments headroom --model DIR``
    What issue 6's "within 2x of the memory-bandwidth floor" leaves for self-attention, in one
    process: the read bandwidth, the decoder step (int8 and bf16, as ``load_model`` sets them up
    on this CPU) with one cached position -- every cost but reading the KV cache -- and at the
    mean and last positions of a 4 stem x 10 s song (best of 3 runs of 20 steps), the mean over
    the song's steps one after the other, bare and in the song's loop (sampling included, as the
    benchmark's ms/step), the floor at the mean (as the benchmark computes it), and the time and
    read speed self-attention would need for 2x.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time


def _best(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _packing_engine(name):
    """Pack quantized weights for ``name``'s kernels (``None``: torch's current engine)."""
    from musicstems.backends.int8 import packing_engine as engine

    return contextlib.nullcontext() if name is None else engine(name)


def _fused_qkv(stack, engine):
    """``linear``'s int8 stack with each layer's first three products (q, k, v) packed as one
    (``fuse_int8_linears``, as ``quantize_decoder_int8`` does), and the input widths."""
    import torch

    from musicstems.backends.int8 import fuse_int8_linears

    class Fused(torch.nn.Module):
        def __init__(self, packed):
            super().__init__()
            self.packed = packed

        def forward(self, x):
            return torch.ops.quantized.linear_dynamic(x, self.packed, False)

    fused, widths = torch.nn.ModuleList(), []
    for start in range(0, len(stack), 8):
        layer = list(stack[start:start + 8])
        with _packing_engine(engine):
            fused.append(Fused(fuse_int8_linears(layer[:3])))
        fused.extend(layer[3:])
        widths += [layer[0].in_features] + [m.in_features for m in layer[3:]]
    return fused, widths


def linear(rows: int = 8) -> None:
    import torch

    from musicstems.backends.cpu import quiet_ao_deprecation as _quiet_ao_deprecation
    from musicstems.backends.int8 import full_range_linear as _full_range_linear

    torch.manual_seed(0)
    layers = torch.nn.ModuleList()
    for _ in range(24):
        # the decoder's layers have no biases
        layers.extend([torch.nn.Linear(1024, 1024, bias=False) for _ in range(6)])
        layers.extend([torch.nn.Linear(1024, 4096, bias=False),
                       torch.nn.Linear(4096, 1024, bias=False)])
    widths = [layer.in_features for layer in layers]
    weights = sum(layer.weight.numel() for layer in layers)

    def report(name, stack, dtype, bytes_per_weight, compiled=False, stack_widths=None):
        xs = {w: torch.randn(rows, w, dtype=dtype) for w in (1024, 4096)}

        def step():
            total = 0.0
            with torch.no_grad():  # not inference_mode: torch.compile refuses its tensors
                for layer, width in zip(stack, stack_widths or widths):
                    total = total + layer(xs[width])[:, 0]  # used: the compiler keeps it
            return total
        if compiled:
            step = torch.compile(step)
            start = time.perf_counter()
            step()
            name += f" (compile {time.perf_counter() - start:.0f} s)"
        seconds = _best(step)
        print(f"{name:44s} {1000 * seconds:7.1f} ms  "
              f"{weights * bytes_per_weight / seconds / 1e9:5.1f} GB/s of weights", flush=True)

    from musicstems.backends.onednn import pack_linears_onednn

    report("fp32", layers, torch.float32, 4)
    report("bf16", copy.deepcopy(layers).to(torch.bfloat16), torch.bfloat16, 2)
    for dtype, size in ((torch.float32, 4), (torch.bfloat16, 2)):
        stack = copy.deepcopy(layers).to(dtype)
        if pack_linears_onednn(stack):
            report(f"{str(dtype).removeprefix('torch.')} packed for oneDNN "
                   f"{'(musicstems bf16)' if size == 2 else '(int8 heads)'}", stack, dtype, size)
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    full_range = {torch.nn.Linear: _full_range_linear()}
    for name, mapping, engine in (
            ("torch.ao dynamic int8, 7-bit activations", None, None),
            ("torch.ao dynamic int8, 8-bit activations", full_range, None),
            ("  the same, packed for oneDNN (musicstems' int8 with AMX)", full_range,
             "onednn")):
        if engine is not None and engine not in torch.backends.quantized.supported_engines:
            continue
        with _quiet_ao_deprecation(), _packing_engine(engine):
            stack = quantize_dynamic(copy.deepcopy(layers),
                                     {torch.nn.Linear: per_channel_dynamic_qconfig},
                                     dtype=torch.qint8, mapping=mapping)
        report(name, stack, torch.float32, 1)
        if engine is not None:
            fused, fused_widths = _fused_qkv(stack, engine)
            report("  the same, q|k|v as one product (musicstems' int8)", fused,
                   torch.float32, 1, stack_widths=fused_widths)
    # torch's own CPU kernels for weight-only quantization (the ones gpt-fast and torchao's
    # CPU layouts call): int8 weights per channel and int4 weights in groups, bf16 activations
    class WeightOnlyInt8(torch.nn.Module):
        def __init__(self, linear):
            super().__init__()
            w = linear.weight.detach()
            scales = w.abs().amax(dim=1) / 127
            self.weight = (w / scales[:, None]).round().clamp(-128, 127).to(torch.int8)
            self.scales = scales.to(torch.bfloat16)

        def forward(self, x):
            return torch._weight_int8pack_mm(x, self.weight, self.scales)

    class WeightOnlyInt4(torch.nn.Module):
        def __init__(self, linear, group: int = 64):
            super().__init__()
            w = linear.weight.detach()
            out_features, in_features = w.shape
            grouped = w.view(out_features, in_features // group, group)
            low = grouped.amin(-1, keepdim=True)
            scale = ((grouped.amax(-1, keepdim=True) - low) / 15).clamp(min=1e-6)
            q = ((grouped - low) / scale).round().clamp(0, 15).to(torch.int32)
            self.packed = torch._convert_weight_to_int4pack_for_cpu(
                q.view(out_features, in_features), 1)
            zero = low + 8 * scale  # the kernel's zero point sits at code 8
            self.scales_zeros = torch.stack([scale.squeeze(-1), zero.squeeze(-1)], -1) \
                .transpose(0, 1).contiguous().to(torch.bfloat16)
            self.group = group

        def forward(self, x):
            return torch._weight_int4pack_mm_for_cpu(x, self.packed, self.group,
                                                     self.scales_zeros)

    for name, module in (("torch weight-only int8 (_weight_int8pack_mm), bf16", WeightOnlyInt8),
                         ("torch weight-only int4, groups of 64, bf16", WeightOnlyInt4)):
        try:
            stack = torch.nn.ModuleList(module(layer) for layer in layers)
        except (AttributeError, RuntimeError) as exc:  # kernel missing in this build
            print(f"{name}: not available ({type(exc).__name__})")
            continue
        report(name, stack, torch.bfloat16, 1 if "int8" in name else 0.5)
    try:
        import torchao.quantization as tq
    except ImportError:
        print("torchao is not installed: pip install torchao (with torch pinned) to compare it")
        return
    for name, config, dtype in (
            ("torchao Int8DynamicActivationInt8Weight", tq.Int8DynamicActivationInt8WeightConfig(),
             torch.float32),
            ("torchao Int8WeightOnly, bf16", tq.Int8WeightOnlyConfig(), torch.bfloat16)):
        for compiled in (False, True):
            stack = copy.deepcopy(layers).to(dtype)
            tq.quantize_(stack, config)
            report(name + (" compiled" if compiled else ""), stack, dtype, 1, compiled)


def cache(model_dir: str, steps: int = 250) -> None:
    import torch
    from transformers import (AutoProcessor, CompileConfig, StoppingCriteria,
                              StoppingCriteriaList)
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache, StaticCache

    from musicstems.backends.decoding import SamplingSettings, sample_codes
    from musicstems.backends.musicgen import load_model, release_models

    processor = AutoProcessor.from_pretrained(model_dir)
    prompts = ["punchy techno drums", "deep acid bassline", "warm analog pads", "lead synth"]
    inputs = processor(text=prompts, padding=True, return_tensors="pt")

    class Timer(StoppingCriteria):
        def __init__(self):
            self.times = []

        def __call__(self, input_ids, scores, **kwargs):
            self.times.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    for precision in ("fp32", "int8"):
        loaded = load_model(model_dir, device="cpu", precision=precision, quiet=True)
        model = loaded.model
        variants = {
            "DynamicCache (transformers default)": lambda: {},
            "musicstems loop (in-place cache)": None,
            "StaticCache": lambda: {"cache": EncoderDecoderCache(
                StaticCache(config=model.config.decoder, max_cache_len=steps + 1),
                DynamicCache()), "disable_compile": True},
        }
        compile_config = CompileConfig(fullgraph=False)
        compile_config._compile_all_devices = True  # transformers compiles on GPUs only
        variants["StaticCache + torch.compile"] = lambda: {
            "cache": EncoderDecoderCache(
                StaticCache(config=model.config.decoder, max_cache_len=steps + 1),
                DynamicCache()), "compile_config": compile_config}
        for name, extra in variants.items():
            for attempt in ("first", "second") if "compile" in name else ("only",):
                timer = Timer()
                start = time.perf_counter()
                try:
                    with torch.inference_mode():
                        if extra is None:  # what compose() runs
                            sample_codes(model, inputs["input_ids"], inputs["attention_mask"],
                                         SamplingSettings(steps, 3.0),
                                         prepared=loaded.prepared,
                                         on_step=lambda step: timer.times.append(
                                             time.perf_counter()))
                        else:
                            model.generate(**inputs, do_sample=True, guidance_scale=3.0,
                                           max_new_tokens=steps,
                                           stopping_criteria=StoppingCriteriaList([timer]),
                                           **extra())
                except Exception as exc:  # report and go on: this is an experiment
                    print(f"{precision} {name}: failed, {type(exc).__name__}: {exc}"[:300])
                    break
                steps_ms = [1000 * (b - a) for a, b in zip(timer.times, timer.times[1:])]
                print(f"{precision:5s} {name:38s} {attempt:6s} wall "
                      f"{time.perf_counter() - start:6.1f} s  mean "
                      f"{statistics.mean(steps_ms):6.1f} ms/step  last "
                      f"{statistics.mean(steps_ms[-10:]):6.1f} ms/step", flush=True)
        del model, loaded
        release_models()


def attention(lengths=(250, 500)) -> None:
    """SDPA as the decoder step runs it -- one query row per stem and guidance half over each
    layer's cache, a view of a buffer allocated for the song -- for musicgen-small's 24 layers
    of 16 heads x 64 at 8 rows, with the cache in each dtype: ms, and GB/s of cache read."""
    import torch
    import torch.nn.functional as F

    rows, heads, head_dim, layers = 8, 16, 64, 24
    capacity = max(lengths) + 4
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
                print(f"cache {str(dtype).removeprefix('torch.'):9s} at {length}: "
                      f"{1000 * seconds:6.1f} ms  {cache_bytes / seconds / 1e9:5.1f} GB/s",
                      flush=True)
            if dtype == torch.float32:
                _streaming_attention_rows(query, keys, values, lengths)
            del keys, values


def _streaming_attention_rows(query, keys, values, lengths) -> None:
    """The same attention through a plain kernel that streams each (row, head)'s keys and
    values once (numba, both cores; not used by musicstems): how far SDPA's q_len=1 kernel is
    from what this CPU can do, and how far its numbers move."""
    try:
        import numba
    except ImportError:
        print("numba is not installed: no streaming-kernel row")
        return
    import numpy as np
    import torch
    import torch.nn.functional as F

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
        print(f"streaming float32 at {length}: {1000 * seconds:6.1f} ms  "
              f"{cache_bytes / seconds / 1e9:5.1f} GB/s  (max |difference| from SDPA "
              f"{error:.1e})", flush=True)


_PROMPTS = ("punchy techno drums", "deep acid bassline", "warm analog pads", "lead synth",
            "shimmering arpeggio", "vocal chops", "string section", "noise sweeps")


def _step_ms_at(decoder_step, codes, lengths, steps: int = 20) -> list[float]:
    """Mean ms of ``decoder_step`` at each cache length: the best of 3 runs of ``steps`` steps
    after one to warm up. The cache must be filled first (unwritten pages read as zeros)."""
    times = []
    for length in lengths:
        def run(length=length):
            for _ in range(steps):
                decoder_step.length = length
                decoder_step(codes)
        run()
        times.append(1000 * _best(run, 3) / steps)
    return times


def step(model_dir: str, lengths=(1, 250, 500)) -> None:
    """musicstems' decoder step (``DecoderStep``, 4 stems under guidance = 8 rows) in int8 and
    bf16, with and without the Linear layers packed for oneDNN, with the KV cache in bf16 and
    in fp32, at a few KV-cache lengths: mean ms over 20 steps, the cache filled first
    (unwritten pages would read as zeros)."""
    import torch
    from transformers import AutoProcessor

    from dataclasses import replace

    from musicstems.backends import onednn
    from musicstems.backends.decoding import DecoderStep, encode_text
    from musicstems.backends.musicgen import load_model, release_models

    processor = AutoProcessor.from_pretrained(model_dir)
    prompts = list(_PROMPTS[:4])
    inputs = processor(text=prompts, padding=True, return_tensors="pt")
    capacity = max(lengths) + 1
    packing = onednn.pack_linears_onednn
    for precision, packed in (("int8", True), ("int8", False), ("bf16", True),
                              ("bf16", False)):
        onednn.pack_linears_onednn = packing if packed else (lambda module: 0)
        try:
            loaded = load_model(model_dir, device="cpu", precision=precision, quiet=True)
        finally:
            onednn.pack_linears_onednn = packing
        with torch.inference_mode():  # the text states: one per model, for both caches
            states, mask = encode_text(loaded.model, inputs["input_ids"],
                                       inputs["attention_mask"], guided=True)
        for kv_dtype in (torch.bfloat16, torch.float32):
            with torch.inference_mode():
                decoder_step = DecoderStep(loaded.model, 2 * len(prompts), capacity,
                                           replace(loaded.prepared, kv_dtype=kv_dtype))
                decoder_step.set_encoder(states, mask)
                codes = torch.zeros(2 * len(prompts), loaded.model.decoder.num_codebooks,
                                    dtype=torch.long)
                for _ in range(capacity):
                    decoder_step(codes)
                times = _step_ms_at(decoder_step, codes, lengths)
            label = (f"{precision} {'packed for oneDNN' if packed else 'F.linear'}, cache "
                     f"{str(kv_dtype).removeprefix('torch.')}")
            print(f"{label:46s} " + "  ".join(f"at {n}: {t:5.1f} ms" for n, t in
                                               zip(lengths, times)), flush=True)
            del decoder_step
        del loaded, states
        release_models()


def headroom(model_dir: str, duration_s: float = 10.0, stems: int = 4) -> None:
    """The decoder step at 1, mean and last cached positions of a ``stems`` x ``duration_s``
    song against the bandwidth floor at the mean (``run.bytes_per_step``), all in one process,
    and what is left for self-attention under 2x the floor."""
    import math

    import torch
    from transformers import AutoProcessor, MusicgenConfig

    from musicstems.backends.decoding import (DecoderStep, SamplingSettings, encode_text,
                                              sample_codes)
    from musicstems.backends.musicgen import load_model, release_models

    from .machine import read_bandwidth_gbs
    from .run import bytes_per_step

    config = MusicgenConfig.from_pretrained(model_dir)
    codebooks = config.decoder.num_codebooks
    steps = math.ceil(duration_s * config.audio_encoder.frame_rate) + codebooks - 1
    mean = (steps + 1) // 2
    processor = AutoProcessor.from_pretrained(model_dir)
    prompts = list(_PROMPTS[:stems])
    inputs = processor(text=prompts, padding=True, return_tensors="pt")
    bandwidth = read_bandwidth_gbs()
    print(f"read bandwidth {bandwidth:.1f} GB/s; {stems} stems x {duration_s:g} s = {steps} "
          f"steps, mean cached positions {mean}", flush=True)
    for precision in ("int8", "bf16"):
        loaded = load_model(model_dir, device="cpu", precision=precision, quiet=True)
        cache_dtype = loaded.prepared.kv_dtype or loaded.model.dtype  # None: the activations'
        kv_bytes = torch.tensor([], dtype=cache_dtype).element_size()
        with torch.inference_mode():
            states, mask = encode_text(loaded.model, inputs["input_ids"],
                                       inputs["attention_mask"], guided=True)
            decoder_step = DecoderStep(loaded.model, 2 * stems, steps + 1,
                                       loaded.prepared)
            decoder_step.set_encoder(states, mask)
            codes = torch.zeros(2 * stems, codebooks, dtype=torch.long)
            start = time.perf_counter()
            for _ in range(steps):  # unwritten cache pages would read as zeros
                decoder_step(codes)
            steps_ms = 1000 * (time.perf_counter() - start) / steps  # the song's steps, bare
            decoder_step(codes)
            ms = dict(zip((1, mean, steps), _step_ms_at(decoder_step, codes, (1, mean, steps))))
            del decoder_step
            # the song's loop, sampling included: what the benchmark's ms/step measures
            clock = []
            torch.manual_seed(0)
            sample_codes(loaded.model, inputs["input_ids"], inputs["attention_mask"],
                         SamplingSettings(max_new_tokens=steps, guidance_scale=3.0),
                         prepared=loaded.prepared,
                         on_step=lambda step: clock.append(time.perf_counter()))
            loop_ms = 1000 * (clock[-1] - clock[0]) / (steps - 1)
        need = bytes_per_step(config, precision, stems, steps, kv_bytes)
        floor_ms = 1000 * need["total"] / (bandwidth * 1e9)
        attention_ms = ms[mean] - ms[1]
        budget_ms = 2 * floor_ms - ms[1]
        # a busy host can make the step at 1 position the slower one: no reading then
        read = (f"{need['kv'] / attention_ms / 1e6:.1f} GB/s" if attention_ms > 0 else "-")
        needed = (f"{need['kv'] / budget_ms / 1e6:.1f} GB/s, "
                  f"{100 * need['kv'] / budget_ms / 1e6 / bandwidth:.0f} % of the bandwidth"
                  if budget_ms > 0 else "impossible: the rest of the step alone is over 2x")
        print(f"{precision} (KV cache {str(cache_dtype).removeprefix('torch.')}): step at 1 / "
              f"{mean} / {steps} cached positions {ms[1]:.1f} / {ms[mean]:.1f} / "
              f"{ms[steps]:.1f} ms; the song's {steps} steps {steps_ms:.1f} ms each, its loop "
              f"(with sampling) {loop_ms:.1f} ms per step; floor at {mean} "
              f"{floor_ms:.1f} ms ({need['weights'] / 1e6:.0f} MB weights + "
              f"{need['kv'] / 1e6:.0f} MB cache): step {ms[mean] / floor_ms:.2f}x, loop "
              f"{loop_ms / floor_ms:.2f}x; self-attention at {mean} about {attention_ms:.1f} ms "
              f"({read}); for a 2x step it would have "
              f"{budget_ms:.1f} ms: {needed}", flush=True)
        del loaded, states
        release_models()


_CONTENTION_CHILD = """
import sys, time, torch
from musicstems.backends.decoding import DecoderStep, encode_text
from musicstems.backends.musicgen import load_model
from transformers import AutoProcessor
if len(sys.argv) > 2:
    torch.set_num_threads(int(sys.argv[2]))
loaded = load_model(sys.argv[1], device="cpu", precision="int8", quiet=True)
inputs = AutoProcessor.from_pretrained(sys.argv[1])(text=["drums", "bass", "pads", "lead"],
                                                   padding=True, return_tensors="pt")
with torch.inference_mode():
    states, mask = encode_text(loaded.model, inputs["input_ids"], inputs["attention_mask"],
                               guided=True)
    step = DecoderStep(loaded.model, 8, 200, loaded.prepared)
    step.set_encoder(states, mask)
    codes = torch.zeros(8, loaded.model.decoder.num_codebooks, dtype=torch.long)
    for _ in range(20):
        step(codes)
    start = time.perf_counter()
    for _ in range(100):
        step(codes)
print(1000 * (time.perf_counter() - start) / 100)
"""


def contention(model_dir: str) -> None:
    """A song's int8 decoder step (steps 20-120) while another process keeps one core busy,
    with torch's default OpenMP settings, with ``OMP_WAIT_POLICY=PASSIVE`` and with
    ``torch.set_num_threads(1)`` -- each in a fresh process, as the variables must be set
    before torch starts."""
    import os
    import subprocess
    import sys

    def child(env=None, threads=None):
        args = [sys.executable, "-c", _CONTENTION_CHILD, model_dir]
        if threads:
            args.append(str(threads))
        out = subprocess.run(args, capture_output=True, text=True, check=True,
                             env={**os.environ, **(env or {})})
        return float(out.stdout.strip().splitlines()[-1])

    cases = [("default", {}, None), ("OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"},
                                      None), ("1 thread", {}, 1)]
    for busy in (False, True):
        burner = None
        if busy:  # one core taken by another program
            burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for name, env, threads in cases:
                print(f"{'one core busy' if busy else 'quiet':14s} {name:26s} "
                      f"{child(env, threads):6.1f} ms/step", flush=True)
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=("linear", "attention", "cache", "step", "contention",
                                          "headroom"))
    parser.add_argument("--model", help="a saved model folder (for 'cache', 'step', "
                        "'contention' and 'headroom')")
    parser.add_argument("--steps", type=int, default=250)
    args = parser.parse_args(argv)
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    if args.which == "linear":
        linear()
    elif args.which == "attention":
        attention()
    elif not args.model:
        parser.error(f"{args.which} needs --model DIR")
    elif args.which == "cache":
        cache(args.model, args.steps)
    elif args.which == "contention":
        contention(args.model)
    elif args.which == "headroom":
        headroom(args.model)
    else:
        step(args.model)


if __name__ == "__main__":
    main()
