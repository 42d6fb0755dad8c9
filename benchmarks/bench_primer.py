"""``python -m benchmarks.bench_primer``: what the audio primer costs per song.

The primer (``compose(..., primer="plan")``, the default) adds work in four places: rendering
the count-in from the plan, encoding it with the model's EnCodec, one batched decoder pass over
its ~47 frames (the prefill), and decoding those frames with the song before they are cut off;
every later step also attends over ~47 more cached positions. This measures the whole of it the
way a user meets it: the same song (musicgen-small's architecture with random weights, built
by benchmarks/models.py and loaded through ``from_pretrained``; 4 stems; ``precision="auto"``)
composed with ``primer="plan"`` and with ``primer=None``, alternately, in one process after one
warm-up song, so the two are measured under the same conditions. The machine is shared: each
song's row says how much CPU other processes took meanwhile (``busy``), and the cost is taken
from the pair of runs that were least disturbed.

``--parts`` measures the added pieces one by one instead, in this process's CPU seconds, each
next to what it is added to (:func:`parts`): on a busy machine the two whole songs, minutes
apart, meet different loads, while the pieces are measured within seconds of each other.

Results go to benchmarks/RESULTS.md (``--markdown``).
"""

from __future__ import annotations

import argparse
import math
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


def _cpu(fn, repeats: int = 1) -> float:
    """The least CPU seconds of ``repeats`` calls of ``fn`` (this process's CPU time)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def parts(model_id: str, duration_s: float, *, probe_steps: int = 12) -> dict:
    """The primer's added work piece by piece, in CPU seconds, on the loaded model -- each
    piece next to what it is added to, within seconds of each other, so a busy machine
    disturbs the ratio less than two whole songs minutes apart: rendering and encoding the
    primers, the prefill against one step, a step over the longer cache against the plain
    one (times the song's steps), the decode of primer + song against the song's."""
    from dataclasses import replace

    import torch

    from musicstems.backends.decoding import DecoderStep, decode_audio, encode_text
    from musicstems.backends.heard import prepare_heard
    from musicstems.backends.musicgen import _model_inputs, load_model
    from musicstems.backends.primer import encode_primers
    from musicstems.plan import make_plan
    from musicstems.spec import build_prompts, validate_compose_args

    loaded = load_model(model_id, device="cpu", precision="auto", quiet=True)
    model = loaded.model
    spec = validate_compose_args(STEMS, **SONG, duration_s=duration_s, seed=0, model=model_id,
                                 progress=False)
    plan = make_plan(spec)
    spec = replace(spec, prompts=build_prompts(spec, bpm=plan.bpm, key=plan.key))
    stems = spec.stems
    inputs, sampling, num_samples = _model_inputs(loaded, stems, spec)
    steps, batch = sampling.max_new_tokens, len(stems)
    out = {"precision": loaded.precision, "steps": steps}
    with torch.inference_mode():
        heard = []
        out["render"] = _cpu(lambda: heard.append(prepare_heard(
            stems, plan, spec, model, loaded.sample_rate, num_samples)))
        heard = heard[-1]
        primer_frames = heard.primer_samples // math.prod(
            model.config.audio_encoder.upsampling_ratios)
        out["primer_frames"] = primer_frames
        out["encode"] = _cpu(lambda: encode_primers(model, heard.values), 2)
        states, mask = encode_text(model, inputs["input_ids"], inputs["attention_mask"],
                                   guided=True)
        rows, k = 2 * batch, model.config.decoder.num_codebooks
        vocab = int(model.config.audio_encoder.codebook_size)
        length = 1 + primer_frames + steps

        # one capacity for every step object, so TorchScript sees the same buffers throughout
        capacity = 1 + primer_frames + steps // 2 + 2 * probe_steps

        def filled(known: int):
            step = DecoderStep(model, rows, capacity, loaded.prepared)
            step.set_encoder(states, mask)
            codes = torch.randint(0, vocab, (rows, k, known))
            return step, codes, _cpu(lambda: step.prefill(codes))

        # a step in the middle of the song with and without the primer's positions cached,
        # called alternately so that a busy machine slows both alike; medians
        pair = [filled(1 + primer_frames + steps // 2), filled(1 + steps // 2)]
        times = ([], [])
        for index in range(2 * probe_steps):
            step, codes, _ = pair[index % 2]
            times[index % 2].append(_cpu(lambda: step(codes[:, :, 0])))
        # medians, without each one's first call (TorchScript warming up)
        long_step, short_step = (sorted(t[1:])[len(t[1:]) // 2] for t in times)
        out["prefill"] = filled(1 + primer_frames)[2]  # the song's: start token + primer
        out["plain_step"] = short_step
        out["steps_longer"] = (long_step - short_step) * steps
        frames = math.ceil(num_samples / loaded.sample_rate * loaded.frame_rate)
        song = torch.randint(0, vocab, (1, batch, k, frames + primer_frames))
        # the least of two: the windowed codec's first call at a new length costs seconds more
        out["decode_plain"] = _cpu(lambda: decode_audio(model, song[..., :frames]), 2)
        out["decode_primer"] = _cpu(lambda: decode_audio(model, song), 2) - out["decode_plain"]
        out["text"] = _cpu(lambda: encode_text(model, inputs["input_ids"],
                                               inputs["attention_mask"], guided=True))
    out["plain_generation"] = out["text"] + steps * short_step + out["decode_plain"]
    out["added"] = (out["render"] + out["encode"] + out["prefill"] + out["steps_longer"]
                    + out["decode_primer"] - short_step)  # the prefill replaces the first step
    out["cost"] = out["added"] / out["plain_generation"]
    return out


def parts_markdown(p: dict, duration_s: float) -> str:
    return "\n".join([
        f"Piece by piece (`--parts`; CPU seconds of this process; {len(STEMS)} stems of "
        f"{duration_s:g} s, {p['steps']} steps, {p['precision']}, a primer of "
        f"{p['primer_frames']} frames): rendering the primers {p['render']:.2f} s, encoding "
        f"them {p['encode']:.2f} s, the prefill {p['prefill']:.2f} s (in place of a first step "
        f"of {p['plain_step']:.3f} s), the steps over the longer cache "
        f"{p['steps_longer']:+.2f} s, decoding the primer's frames {p['decode_primer']:.2f} s: "
        f"**{p['added']:.2f} s added to {p['plain_generation']:.1f} s of plain generation "
        f"({p['cost']:+.1%})** (text encoder {p['text']:.2f} s + {p['steps']} x "
        f"{p['plain_step']:.3f} s + decode {p['decode_plain']:.2f} s).", ""])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_primer")
    parser.add_argument("--duration", type=float, default=10.0, help="song length, s")
    parser.add_argument("--pairs", type=int, default=2, help="songs with and without")
    parser.add_argument("--models", default=str(Path(tempfile.gettempdir())
                                               / "musicstems-bench-models"))
    parser.add_argument("--markdown", help="append the table to this file")
    parser.add_argument("--parts", action="store_true",
                        help="only the added work piece by piece, in CPU seconds (a minute)")
    args = parser.parse_args(argv)
    model = str(build_model("small", Path(args.models) / "small"))
    if args.parts:
        text = parts_markdown(parts(model, args.duration), args.duration)
        print(text)
        if args.markdown:
            with open(args.markdown, "a", encoding="utf-8") as file:
                file.write(text + "\n")
        return
    rows = measure(model, args.duration, args.pairs)
    result = summary(rows)
    text = markdown(rows, result, describe(), args.duration)
    print(text)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as file:
            file.write(text + "\n")


if __name__ == "__main__":
    main()
