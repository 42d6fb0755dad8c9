"""``python -m benchmarks.runtimes [--model DIR] [--lengths 1 250 500] [--json PATH]``

The musicgen-small decoder step -- 8 rows (4 stems under guidance), its KV cache at 1, 250 and
500 cached positions -- in every runtime issue 23 names, all in ONE process on the same inputs:
the runtimes are built first, then timed interleaved (for each length, round after round, every
runtime runs ``--steps`` steps in turn; the best round counts), so that the ratios of one run
compare like with like on a shared machine. Then each runtime's teacher-forced fidelity against
fp32 (``benchmarks/fidelity.py``'s KL and top-250 agreement, 4 prompts x 3 s of codes sampled by
fp32 ``generate``). On the random-weight benchmark model (``benchmarks/models.py``) speed is what
it would be with real weights; the fidelity is a weaker proxy than on real weights (its heads are
calibrated to a trained model's entropy, but its errors are not a trained model's).

Rows (``kv`` is the KV cache's precision):

``torch int8 (load_model)``
    Today's ``precision="int8"``: ``load_model`` as ``compose`` runs it (dynamic int8 Linear
    layers, 8-bit activations with VNNI, fused q|k|v, fbgemm, TorchScript layers), its cache
    dtype as the recipe chooses it on this CPU; the same step with the other cache dtype.
``torchao int8 weight-only`` / ``torchao int8 dyn-act`` / ``torchao int4 weight-only``
    torchao's ``quantize_`` on the decoder layers' Linear layers (heads stay fp32, as today's),
    run by musicstems' ``DecoderStep`` eagerly (torchao tensors are not TorchScript-able).
``openvino int8/int4 weights``
    ``runtime_step.ExportStep`` (the same step as one torch module, cache in and out) through
    ``openvino.convert_model``, weights compressed by ``nncf.compress_weights`` (int8: per
    channel; int4: symmetric groups of 128, NNCF's default int8 backup for the embeddings), the
    four output heads left fp32 (as today's), then made stateful
    (``apply_make_stateful_transformation``: the cache lives inside the runtime, which fuses the
    concat into its own SDPA). ``f32 compute`` sets ``INFERENCE_PRECISION_HINT=f32`` (the CPU
    plugin otherwise runs bf16 where the CPU has AVX512-BF16); ``kv`` is
    ``KV_CACHE_PRECISION``.
``onnxruntime int8``
    The same module exported by ``torch.onnx.export`` and quantized by
    ``onnxruntime.quantization.quantize_dynamic`` (int8 per channel, MatMul only, heads left
    fp32); the cache goes in and comes out each step (past / present), as optimum exports
    decoders -- ORT has no stateful cache, so each step copies it once more.

Columns: ms per step at each length; ``x floor``: ms at the 10 s song's mean length (250
positions) over the bandwidth floor there (weights in the runtime's format + the cache in its
dtype, read once at ``machine.read_bandwidth_gbs``); KL and top-250 against fp32; ``MB``: the
process's resident memory added by building the runtime (its converted model; the process's
peak RSS is printed under the table). A runtime that cannot be built or run says why in its row.
Needs ``pip install musicstems[openvino,onnx,torchao]`` for the rows beyond torch; the rest
print their error. Building every row holds the fp32 reference and each conversion's copies of
the fp32 decoder (over 20 GB at peak for musicgen-small); ``--only`` builds a subset, e.g.
``--only "torch int8" openvino``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import resource
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from musicstems.backends.decoding import DecoderStep, encode_text
from musicstems.backends.musicgen import load_model

from .fidelity import _compare, sample_codes
from .machine import describe, read_bandwidth_gbs
from .runtime_step import ExportStep, cross_keys_values, input_names, output_names
from .run import STEMS

PROMPTS = tuple(STEMS.values())  # 4 stems: 8 rows under guidance
GUIDANCE = 3.0


def _why(exc: BaseException) -> str:
    """An error as one line for a table row: its type and its message's last lines (a
    runtime's C++ exceptions say where first and what last)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {' '.join(lines[-2:])[-240:]}"


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2 ** 20


# --- runners: set_encoder(states, mask), set_length(n), __call__(codes) -> logits ---------

class TorchRunner:
    """``DecoderStep`` on a model prepared in torch; ``set_length`` rewinds its cache."""

    def __init__(self, model, prepared, capacity: int):
        self.model, self.prepared, self.capacity = model, prepared, capacity
        self.step = None

    def set_encoder(self, states, mask):
        self.step = DecoderStep(self.model, states.shape[0], self.capacity, self.prepared)
        for buffer in (*self.step.keys, *self.step.values):
            buffer.zero_()
        self.step.set_encoder(states, mask)

    def set_length(self, n: int):
        self.step.length = n

    def __call__(self, codes):
        return self.step(codes)


class OpenVINORunner:
    """A compiled stateful OpenVINO step; the cache is the request's state."""

    def __init__(self, compiled, model, layers: int):
        self.request = compiled.create_infer_request()
        self.model, self.layers = model, layers
        self.length = 0

    def set_encoder(self, states, mask):
        import openvino as ov

        rows = states.shape[0]
        self.text_rows = rows // 2
        cross = cross_keys_values(self.model, states, self.text_rows)
        self.feeds = {"cross_mask": mask[:self.text_rows].bool()[:, None, None, :].numpy()}
        names = input_names(self.layers)[3:3 + 2 * self.layers]
        self.feeds.update({n: t.numpy() for n, t in zip(names, cross)})
        self.feeds["beam_idx"] = np.arange(rows, dtype=np.int32)
        for name, value in self.feeds.items():
            self.request.set_tensor(name, ov.Tensor(np.ascontiguousarray(value)))
        self.shape = (rows, self.model.config.decoder.num_attention_heads, 0,
                      self.model.config.decoder.hidden_size
                      // self.model.config.decoder.num_attention_heads)
        self.set_length(0)

    def set_length(self, n: int):
        import openvino as ov

        # explicit zeros, also for an empty cache: the states have no initializer
        zeros = np.zeros(self.shape[:2] + (n,) + self.shape[3:], np.float32)
        for state in self.request.query_state():
            state.state = ov.Tensor(zeros)
        self.length = n

    def __call__(self, codes):
        import openvino as ov

        self.request.set_tensor("codes", ov.Tensor(codes.numpy()))
        self.request.set_tensor("position", ov.Tensor(np.array([self.length], np.int64)))
        self.request.infer()
        self.length += 1
        return torch.from_numpy(self.request.get_tensor("logits").data.copy())


class OnnxRunner:
    """An ONNX Runtime session; the cache goes in as past and comes back as present."""

    def __init__(self, session, model, layers: int):
        self.session, self.model, self.layers = session, model, layers

    def set_encoder(self, states, mask):
        rows = states.shape[0]
        self.text_rows = rows // 2
        cross = cross_keys_values(self.model, states, self.text_rows)
        self.feeds = {"cross_mask": mask[:self.text_rows].bool()[:, None, None, :].numpy()}
        self.feeds.update({n: t.numpy() for n, t in
                           zip(input_names(self.layers)[3:3 + 2 * self.layers], cross)})
        config = self.model.config.decoder
        self.shape = (rows, config.num_attention_heads, 0,
                      config.hidden_size // config.num_attention_heads)
        self.set_length(0)

    def set_length(self, n: int):
        zeros = np.zeros(self.shape[:2] + (n,) + self.shape[3:], np.float32)
        self.past = [zeros] * (2 * self.layers)
        self.length = n

    def __call__(self, codes):
        names = input_names(self.layers)
        feeds = dict(self.feeds, codes=codes.numpy(),
                     position=np.array([self.length], np.int64))
        feeds.update(zip(names[3 + 2 * self.layers:], self.past))
        logits, *self.past = self.session.run(None, feeds)
        self.length += 1
        return torch.from_numpy(logits)


# --- builders ----------------------------------------------------------------------------

def _example_inputs(model, rows: int, tokens: int, past: int = 3):
    config = model.config.decoder
    heads, dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    n, layers = rows // 2, config.num_hidden_layers
    cross = [torch.zeros(n, heads, tokens, dim) for _ in range(2 * layers)]
    cache = [torch.zeros(rows, heads, past, dim) for _ in range(2 * layers)]
    return (torch.zeros(rows, config.num_codebooks, dtype=torch.long),
            torch.tensor([past]), torch.ones(n, 1, 1, tokens, dtype=torch.bool), *cross, *cache)


def build_openvino(fp32, rows, tokens, workdir: Path, variants):
    """{label: runner} for each (weights, kv, f32 compute) variant; one conversion."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedCompressionParameters
    from openvino._offline_transformations import apply_make_stateful_transformation

    layers = fp32.config.decoder.num_hidden_layers
    module = ExportStep(fp32, rows, rows // 2).eval()
    with torch.inference_mode(False), torch.no_grad():
        converted = ov.convert_model(module, example_input=_example_inputs(fp32, rows, tokens))
    for port, name in zip(converted.inputs, input_names(layers)):
        port.get_tensor().set_names({name})
    for port, name in zip(converted.outputs, output_names(layers)):
        port.get_tensor().set_names({name})
    # the cache's length is the only dynamic dimension
    shapes = {p.get_any_name(): p.get_partial_shape() for p in converted.inputs}
    for name in input_names(layers)[3 + 2 * layers:]:
        shape = shapes[name]
        shape[2] = ov.Dimension()
        shapes[name] = shape
    converted.reshape(shapes)
    path = workdir / "openvino_fp32.xml"
    ov.save_model(converted, path, compress_to_fp16=False)
    del converted, module
    gc.collect()
    heads = nncf.IgnoredScope(patterns=[".*lm_heads.*"], validate=False)
    core = ov.Core()
    modes = {"int8": dict(mode=nncf.CompressWeightsMode.INT8_SYM),
             "int4": dict(mode=nncf.CompressWeightsMode.INT4_SYM, group_size=128, ratio=1.0,
                          advanced_parameters=AdvancedCompressionParameters(
                              group_size_fallback_mode=nncf.GroupSizeFallbackMode.ADJUST))}
    out = {}
    for weights in dict.fromkeys(w for w, _, _ in variants):
        model = core.read_model(path)
        try:
            model = nncf.compress_weights(model, ignored_scope=heads, **modes[weights])
        except Exception as exc:  # noqa: BLE001 - its rows say why
            out.update({f"openvino {w} weights": exc for w, _, _ in variants if w == weights})
            continue
        past_names = input_names(layers)[3 + 2 * layers:]
        _add_beam_gather(model, past_names, rows)
        apply_make_stateful_transformation(model, dict(zip(past_names, output_names(layers)[1:])))
        _init_states_empty(model, 2)
        for w, kv, f32 in variants:
            if w != weights:
                continue
            label = f"openvino {w} weights, {'f32' if f32 else 'default'} compute, kv {kv}"
            before = _rss_mb()
            config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
                      "KV_CACHE_PRECISION": kv}
            if f32:
                config["INFERENCE_PRECISION_HINT"] = "f32"
            try:
                compiled = core.compile_model(model, "CPU", config)
                out[label] = (OpenVINORunner(compiled, fp32, layers), _rss_mb() - before,
                              _weight_bytes(fp32, 0.5 if w == "int4" else 1.0),
                              {"f32": 4, "bf16": 2, "f16": 2, "u8": 1}[kv])
            except Exception as exc:  # noqa: BLE001 - the row says why
                out[label] = exc
        del model
        gc.collect()
    return out


def _add_beam_gather(model, past_names, rows: int) -> None:
    """Route each past key and value through ``Gather(past, beam_idx, 0)``, a new ``beam_idx``
    input (the identity order here): the CPU plugin fuses a stateful cache into its own
    attention kernel (``StatefulSDPAFusion``: ReadValue -> Gather -> Concat -> SDPA, Assign)
    only where that gather is there, as optimum-intel's exports have it."""
    import openvino as ov
    from openvino import opset13

    beam = opset13.parameter([rows], ov.Type.i32, name="beam_idx")
    beam.output(0).get_tensor().set_names({"beam_idx"})
    model.add_parameters([beam])
    for name in past_names:
        port = model.input(name)
        consumers = port.get_target_inputs()
        gathered = opset13.gather(port, beam, opset13.constant(0))
        for consumer in consumers:
            consumer.replace_source_output(gathered.output(0))
    model.validate_nodes_and_infer_types()


def _init_states_empty(model, length_axis: int) -> None:
    """Give every state (ReadValue) an initializer: zeros of its shape with ``length_axis``
    0, an empty cache (the CPU plugin's fused cache wants one)."""
    import numpy as np
    from openvino import opset13

    for op in model.get_ops():
        if op.get_type_name() == "ReadValue":
            dims = [d.get_length() if d.is_static else 0 for d in op.get_output_partial_shape(0)]
            dims[length_axis] = 0
            zeros = opset13.broadcast(opset13.constant(np.float32(0)),
                                      opset13.constant(np.array(dims, np.int64)))
            op.set_arguments([zeros])
    model.validate_nodes_and_infer_types()


def build_onnx(fp32, rows, tokens, workdir: Path):
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    layers = fp32.config.decoder.num_hidden_layers
    module = ExportStep(fp32, rows, rows // 2).eval()
    names = input_names(layers)
    dynamic = {n: {2: "past"} for n in names[3 + 2 * layers:]}
    dynamic.update({n: {2: "past_plus_one"} for n in output_names(layers)[1:]})
    path, quantized = workdir / "step_fp32.onnx", workdir / "step_int8.onnx"
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(module, _example_inputs(fp32, rows, tokens), path, input_names=names,
                          output_names=output_names(layers), dynamic_axes=dynamic,
                          dynamo=False, opset_version=17)
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    heads = [node.name for node in graph.node if "lm_heads" in node.name]
    del graph
    quantize_dynamic(path, quantized, weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=heads)
    before = _rss_mb()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(quantized), options, providers=["CPUExecutionProvider"])
    return OnnxRunner(session, fp32, layers), _rss_mb() - before


def build_torchao(model_dir, config_name: str, capacity: int):
    import torchao.quantization as tq
    from transformers import MusicgenForConditionalGeneration

    before = _rss_mb()
    model = MusicgenForConditionalGeneration.from_pretrained(
        model_dir, dtype=torch.float32).eval()
    configs = {"int8 weight-only": lambda: tq.Int8WeightOnlyConfig(),
               "int8 dyn-act": lambda: tq.Int8DynamicActivationInt8WeightConfig(),
               "int4 weight-only": lambda: tq.Int4WeightOnlyConfig(group_size=128),
               # torchao's CPU int4 without the int4 kernels: int4 values held in int8
               "int4 intx weight-only": lambda: tq.IntxWeightOnlyConfig(
                   weight_dtype=torch.int4, granularity=tq.PerGroup(128))}
    tq.quantize_(model.decoder.model.decoder.layers, configs[config_name]())
    gc.collect()
    return TorchRunner(model, None, capacity), _rss_mb() - before, model


def _weight_bytes(model, linear_bytes: float) -> float:
    """Bytes of the decoder weights a step reads: its Linear layers (not the cross keys and
    values, computed once) at ``linear_bytes`` a weight, the heads in fp32."""
    d = model.config.decoder
    linear = d.num_hidden_layers * (6 * d.hidden_size ** 2 + 2 * d.hidden_size * d.ffn_dim)
    return linear * linear_bytes + 4 * d.num_codebooks * d.hidden_size * d.vocab_size


def _kv_bytes(model, rows: int, length: int, value_bytes: int) -> float:
    d = model.config.decoder
    return d.num_hidden_layers * 2 * rows * d.hidden_size * value_bytes * length


# --- measuring ---------------------------------------------------------------------------

def _time_at(runner, codes, length: int, steps: int) -> float:
    runner.set_length(length)
    runner(codes)  # warm, and the step after a rewind
    start = time.perf_counter()
    for _ in range(steps):
        runner(codes)
    return 1000 * (time.perf_counter() - start) / steps


def _teacher_forced(runner, states, mask, ids, batch, codebooks):
    runner.set_encoder(states, mask)
    out = []
    for t in range(ids.shape[-1] - 1):
        logits = runner(ids[:, t].view(batch, codebooks).repeat(2, 1))
        cond, uncond = logits.split(ids.shape[0])
        out.append(uncond + GUIDANCE * (cond - uncond))
    return torch.log_softmax(torch.stack(out, dim=1), dim=-1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runtimes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="/tmp/musicstems-bench/small",
                        help="a folder benchmarks/models.py built (built there when missing)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1, 250, 500])
    parser.add_argument("--steps", type=int, default=8, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best counts)")
    parser.add_argument("--fidelity-duration", type=float, default=3.0, metavar="S")
    parser.add_argument("--only", nargs="*", default=None, help="row labels containing these")
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    from transformers.utils import logging

    from .models import build_model

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    model_dir = args.model if (Path(args.model) / "config.json").is_file() else str(
        build_model("small", args.model))
    bandwidth = read_bandwidth_gbs()
    print(f"read bandwidth {bandwidth:.1f} GB/s", flush=True)

    ref = load_model(model_dir, device="cpu", precision="fp32", quiet=True)
    fp32 = ref.model
    codebooks = fp32.config.decoder.num_codebooks
    inputs = ref.processor(text=list(PROMPTS), padding=True, return_tensors="pt")
    tokens = inputs["input_ids"].shape[1]
    rows = 2 * len(PROMPTS)
    capacity = max(max(args.lengths) + args.steps + 2,
                   round(args.fidelity_duration * ref.frame_rate) + codebooks + 2)
    with torch.inference_mode():
        states, mask = encode_text(fp32, inputs["input_ids"], inputs["attention_mask"],
                                   guided=True)
    workdir = Path(tempfile.mkdtemp(prefix="musicstems-runtimes-"))

    runners, errors, keep = {}, {}, []

    def add(label, build):
        if args.only is not None and not any(o in label for o in args.only):
            return
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                built = build()
            runners[label] = built
            print(f"built {label} in {time.perf_counter() - start:.0f} s", flush=True)
        except Exception as exc:  # noqa: BLE001 - the row says why
            errors[label] = _why(exc)
            print(f"{label}: {errors[label]}", flush=True)
            traceback.print_exc(limit=3)

    rss = _rss_mb()
    int8 = load_model(model_dir, device="cpu", precision="int8", quiet=True)
    int8_mb = _rss_mb() - rss
    chosen = int8.prepared.kv_dtype or torch.float32
    for kv in (chosen, torch.bfloat16 if chosen == torch.float32 else torch.float32):
        name = str(kv).removeprefix("torch.")
        name = {"float32": "f32", "bfloat16": "bf16"}[name]
        tag = " (load_model)" if kv == chosen else ""
        prepared = dataclasses.replace(int8.prepared, kv_dtype=kv)
        add(f"torch int8{tag}, kv {name}",
            lambda p=prepared, k=kv: (TorchRunner(int8.model, p, capacity), int8_mb,
                                      _weight_bytes(fp32, 1.0), k.itemsize))
    add("torch fp32 (reference), kv f32",
        lambda: (TorchRunner(fp32, ref.prepared, capacity), 0.0, _weight_bytes(fp32, 4.0), 4))
    for name in ("int8 weight-only", "int8 dyn-act", "int4 weight-only", "int4 intx weight-only"):
        def torchao_row(name=name):
            runner, mb, model = build_torchao(model_dir, name, capacity)
            keep.append(model)
            return runner, mb, _weight_bytes(fp32, 0.5 if "int4" in name else 1.0), 4
        add(f"torchao {name}, kv f32", torchao_row)
    ov_variants = [("int8", "f32", True), ("int8", "u8", True), ("int8", "bf16", False),
                   ("int4", "f32", True), ("int4", "u8", True)]
    try:
        if args.only is None or any("openvino" in o for o in args.only):
            with torch.inference_mode():
                for label, built in build_openvino(fp32, rows, tokens, workdir,
                                                   ov_variants).items():
                    if isinstance(built, Exception):
                        errors[label] = _why(built)
                    else:
                        runners[label] = built
                        print(f"built {label}", flush=True)
    except Exception as exc:  # noqa: BLE001
        errors["openvino"] = _why(exc)
        print(f"openvino: {errors['openvino']}", flush=True)
        traceback.print_exc(limit=4)
    add("onnxruntime int8, kv f32",
        lambda: (*build_onnx(fp32, rows, tokens, workdir), _weight_bytes(fp32, 1.0), 4))

    # timing, interleaved
    codes = torch.zeros(rows, codebooks, dtype=torch.long)
    ms = {label: {} for label in runners}
    with torch.inference_mode():
        for label, (runner, *_rest) in list(runners.items()):
            try:
                runner.set_encoder(states, mask)
            except Exception as exc:  # noqa: BLE001
                errors[label] = _why(exc)
                del runners[label], ms[label]
        for length in args.lengths:
            for _ in range(args.rounds):
                for label, (runner, *_rest) in list(runners.items()):
                    try:
                        t = _time_at(runner, codes, length, args.steps)
                    except Exception as exc:  # noqa: BLE001
                        errors[label] = _why(exc)
                        del runners[label], ms[label]
                        continue
                    ms[label][length] = min(t, ms[label].get(length, math.inf))
            print(f"timed at {length}: " + ", ".join(f"{k.split(',')[0]} {v[length]:.1f}"
                                                     for k, v in ms.items()), flush=True)

    # fidelity, teacher-forced against fp32
    steps = round(args.fidelity_duration * ref.frame_rate) + codebooks - 1
    ids, pattern = sample_codes(fp32, ref.processor, PROMPTS, steps, guidance=GUIDANCE)
    valid = pattern[:, 1:ids.shape[-1]] == -1
    fidelity = {}
    with torch.inference_mode():
        reference = _teacher_forced(TorchRunner(fp32, ref.prepared, capacity), states, mask,
                                    ids, len(PROMPTS), codebooks)
        for label, (runner, *_rest) in runners.items():
            try:
                lp = _teacher_forced(runner, states, mask, ids, len(PROMPTS), codebooks)
                fidelity[label] = _compare(reference, lp, valid)
            except Exception as exc:  # noqa: BLE001
                fidelity[label] = {"error": _why(exc)}
            print(f"fidelity {label}: {fidelity[label]}", flush=True)

    mean = 250 if 250 in args.lengths else args.lengths[len(args.lengths) // 2]
    table = []
    for label in [*runners, *errors]:
        if label in runners:
            _, mb, weights, kv_bytes = runners[label]
            floor = 1000 * (weights + _kv_bytes(fp32, rows, mean, kv_bytes)) / (bandwidth * 1e9)
            f = fidelity.get(label, {})
            table.append({"runtime": label, "ms": ms[label], "x_floor": ms[label][mean] / floor,
                          "floor_ms": floor, "kl": f.get("kl"), "top250": f.get("top250"),
                          "kl_p99": f.get("kl_p99"), "mb": mb, "error": f.get("error")})
        else:
            table.append({"runtime": label, "error": errors[label]})
    _print_table(table, args.lengths, mean)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"\nprocess peak RSS {peak:.2f} GB (every runtime, the fp32 reference and its "
          "conversions in one process)")
    if args.json:
        args.json.write_text(json.dumps({"started_utc": started, "machine": describe(bandwidth),
                                         "lengths": args.lengths, "rows": table,
                                         "peak_rss_gb": peak}, indent=1, default=str))


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def _print_table(table, lengths, mean) -> None:
    head = ("| runtime | " + " | ".join(f"ms @{n}" for n in lengths)
            + f" | x floor @{mean} | KL | top-250 | MB |")
    print("\n" + head + "\n|" + "---|" * (head.count("|") - 1))
    for row in table:
        if "ms" not in row:
            print(f"| {row['runtime']} | cannot run: {row['error']} |")
            continue
        print(f"| {row['runtime']} | " + " | ".join(_fmt(row["ms"].get(n), ".1f") for n in lengths)
              + f" | {row['x_floor']:.2f} | {_fmt(row['kl'], '.2e')} | "
              f"{_fmt(row['top250'], '.3f')} | {row['mb']:.0f} |"
              + (f" fidelity failed: {row['error']}" if row.get("error") else ""))


if __name__ == "__main__":
    sys.exit(main())
