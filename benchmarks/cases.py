"""One measurement per process, so that each peak RSS is its own.

``python -m benchmarks.cases '<json>'`` runs the case described by the JSON object and prints
one JSON line with the result. ``kind`` is:

- ``"plain"``: what a user of transformers does without musicstems -- ``from_pretrained`` in
  fp32 and one ``generate`` per instrument, classifier-free guidance 3.0;
- ``"compose"``: ``musicstems.compose`` with the given precision, then ``Composition.save``;
- ``"build"``: benchmarks/models.py's random-weight model, saved to a folder;
- ``"fidelity"``: benchmarks/fidelity.py's drift of every precision from fp32;
- ``"align"``: ``benchmarks/bench_align.py``'s ``run()``.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

from .machine import CpuShare


def _peak_rss_gb() -> float:
    """This process's peak resident memory. On Linux ``VmHWM``: ``ru_maxrss`` survives
    ``exec`` and would report the benchmark parent's peak in a child."""
    try:
        with open("/proc/self/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e9


def _step_timer():
    import torch
    from transformers import StoppingCriteria

    class StepTimer(StoppingCriteria):
        def __init__(self):
            self.times = []

        def __call__(self, input_ids, scores, **kwargs):
            self.times.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        def ms_per_step(self) -> float:
            return 1000 * (self.times[-1] - self.times[0]) / max(len(self.times) - 1, 1)

    return StepTimer()


def plain(model: str, prompts: list[str], duration_s: float, *, measure: int | None = None,
          seed: int = 0) -> dict:
    """The plain loop: one fp32 ``generate`` per stem. With ``measure`` < len(prompts) only the
    first ``measure`` stems run and the wall time is scaled to all of them (every stem is the
    same work)."""
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    start = time.perf_counter()
    net = MusicgenForConditionalGeneration.from_pretrained(model)
    processor = AutoProcessor.from_pretrained(model)
    load_s = time.perf_counter() - start
    frame_rate = net.config.audio_encoder.frame_rate
    steps = math.ceil(duration_s * frame_rate) + net.decoder.num_codebooks - 1
    run = prompts[:measure] if measure else prompts
    share = CpuShare()
    walls, per_step = [], []
    for prompt in run:
        timer = _step_timer()
        inputs = processor(text=[prompt], padding=True, return_tensors="pt")
        torch.manual_seed(seed)
        start = time.perf_counter()
        audio = net.generate(**inputs, do_sample=True, guidance_scale=3.0,
                             max_new_tokens=steps, stopping_criteria=[timer])
        walls.append(time.perf_counter() - start)
        per_step.append(timer.ms_per_step())
        assert bool(torch.isfinite(audio).all())
    wall = sum(walls) * len(prompts) / len(run)
    return {"kind": "plain", "precision": "fp32", "stems": len(prompts),
            "measured_stems": len(run), "duration_s": duration_s, "steps": steps,
            "load_s": load_s, "wall_s": wall, "ms_per_step": sum(per_step) / len(per_step),
            "peak_rss_gb": _peak_rss_gb(), "others_cpu": share.others(),
            "threads": torch.get_num_threads()}


def _post_s(song, save_s: float) -> float:
    """A song's post-processing: alignment, loudness, mix, analysis and save."""
    timings = song.manifest["timings_s"]
    return sum(timings.get(k, 0.0) for k in ("align", "loudness", "mix", "analyze")) + save_s


def _timed_save(song) -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        song.save(Path(folder) / "song")
        return time.perf_counter() - start


def compose_case(model: str, stems: dict, duration_s: float, precision: str, *,
                 style: str, bpm: float, key: str, seed: int = 0, again: bool = False) -> dict:
    """``compose`` with default settings but ``precision``; the model is loaded first, so the
    wall time is the song's, as in the plain loop. ``again``: a second song in the same
    process (the next seed) measures post-processing once librosa and scipy are imported."""
    import torch

    from musicstems import compose
    from musicstems.backends.musicgen import load_model

    start = time.perf_counter()
    loaded = load_model(model, device="auto", precision=precision, quiet=True)
    load_s = time.perf_counter() - start
    share = CpuShare()
    kwargs = dict(style=style, bpm=bpm, key=key, duration_s=duration_s, seed=seed, model=model,
                  precision=precision, progress=False)
    align_error = None
    start = time.perf_counter()
    try:
        song = compose(stems, **kwargs)
    except Exception as exc:  # the alignment stage is another engineer's work in progress
        align_error = f"{type(exc).__name__}: {exc}"[:200]
        start = time.perf_counter()
        song = compose(stems, align=False, **kwargs)
    wall = time.perf_counter() - start
    save_s = _timed_save(song)
    timings = song.manifest["timings_s"]
    backend = song.manifest["backend"]
    post = _post_s(song, save_s)
    peak_rss_gb = _peak_rss_gb()  # the first song's: a second one may raise the process's
    second = None
    if again:
        start = time.perf_counter()
        second_song = compose(stems, **{**kwargs, "seed": seed + 1})
        second_wall = time.perf_counter() - start
        second_save_s = _timed_save(second_song)
        second = {"wall_s": second_wall,
                  "post_share": _post_s(second_song, second_save_s) / (second_wall
                                                                       + second_save_s),
                  "process_peak_rss_gb": _peak_rss_gb()}
    return {"kind": "compose", "precision": backend["precision"], "requested": precision,
            "stems": len(stems), "duration_s": duration_s, "steps": backend["decoder_steps"],
            "load_s": load_s, "wall_s": wall, "save_s": save_s, "timings": timings,
            "ms_per_step": backend["ms_per_step"], "encode_s": backend.get("encode_s"),
            "decode_s": backend.get("decode_s"), "post_s": post,
            "post_share": post / (wall + save_s), "second_song": second,
            "align_error": align_error,
            "finite": bool(all(torch.isfinite(torch.from_numpy(a)).all()
                               for a in song.stems.values())),
            "peak_rss_gb": peak_rss_gb, "others_cpu": share.others(),
            "threads": backend.get("threads"), "device": loaded.device,
            "recipe": backend.get("recipe")}


def align_case(duration_s: float, n_stems: int) -> dict | None:
    path = Path(__file__).with_name("bench_align.py")
    if not path.is_file():
        return None
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_align", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    share = CpuShare()
    row = module.run(duration_s=duration_s, n_stems=n_stems)
    return {"kind": "align", **row, "others_cpu": share.others(), "peak_rss_gb": _peak_rss_gb()}


def fidelity_case(model: str, precisions: list[str], duration_s: float) -> dict:
    from .fidelity import measure_fidelity

    rows = measure_fidelity(model, tuple(precisions), duration_s=duration_s,
                            log=lambda m: print(m, file=sys.stderr, flush=True))
    for row in rows:  # JSON has no infinity
        row["codec_snr_db"] = None if math.isinf(row["codec_snr_db"]) else row["codec_snr_db"]
    return {"kind": "fidelity", "rows": rows}


def main(argv: list[str]) -> None:
    case = json.loads(argv[0])
    kind = case.pop("kind")
    if kind == "plain":
        result = plain(**case)
    elif kind == "compose":
        result = compose_case(**case)
    elif kind == "build":
        from .models import build_model

        log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
        result = {"kind": "build", "folder": str(build_model(case["size"], case["folder"],
                                                             log=log))}
    elif kind == "fidelity":
        result = fidelity_case(**case)
    elif kind == "align":
        result = align_case(**case)
    else:
        raise SystemExit(f"unknown case kind {kind!r}")
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
