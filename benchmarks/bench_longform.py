"""Cost of per-stem random streams, and of long songs, on musicgen-small's architecture.

``python -m benchmarks.bench_longform streams [--stems N]``
    The draw of one decoder step -- guidance, top-k 250, softmax, multinomial -- with one
    ``torch.Generator`` per stem against one draw on the global RNG, beside one decoder step
    of the same batch (``load_model``'s precision for the CPU; cache at 250 positions).

``python -m benchmarks.bench_longform context [--stems N]``
    What a later window's context costs: the prefill of its context and its steps' attention
    over the longer cache, measured at a few cache lengths and context lengths, summed into
    the seconds of decoder work per second of new audio for each context share.

``python -m benchmarks.bench_longform songs [--stems N] [--durations S ...]``
    Whole songs (``compose``, no alignment) of each duration: generate seconds per second of
    audio, windows, decoder steps and ms per step from the backend's report. A 60 s song is
    three windows (30 s, then 20 s after 10 s of context, twice).

The model is built once with random weights (``benchmarks.models.build_model``, under
``/tmp/musicstems-bench/small``): speed does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from musicstems.backends.musicgen import load_model
from musicstems.backends.sampling import SamplingSettings, draw, process_logits, stem_streams

from .experiments import PROMPTS, _best, _filled_step, _prompt_inputs, _step_ms_at
from .models import build_model

FOLDER = "/tmp/musicstems-bench/small"


def streams(stems: int = 2) -> dict:
    """ms of the draw with per-stem streams and with the global RNG, and of a decoder step."""
    folder = str(build_model("small", FOLDER))
    loaded = load_model(folder, device="cpu", quiet=True)
    num_codebooks = loaded.model.config.decoder.num_codebooks
    vocab = loaded.model.config.decoder.vocab_size
    settings = SamplingSettings(1, 3.0)
    logits = torch.randn(2 * stems * num_codebooks, vocab, generator=torch.Generator()
                         .manual_seed(0))
    generators = stem_streams(range(stems), "cpu")

    def sample(own):
        for _ in range(100):
            draw(F.softmax(process_logits(logits, settings), dim=-1),
                 generators if own else None)

    with torch.inference_mode():
        sample(True), sample(False)
        own_ms = 1000 * _best(lambda: sample(True)) / 100
        global_ms = 1000 * _best(lambda: sample(False)) / 100
        decoder_step, codes, _ = _filled_step(loaded, _prompt_inputs(loaded, stems), 251,
                                              loaded.prepared.kv_dtype)
        step_ms = _step_ms_at(decoder_step, codes, [250])[0]
    row = {"stems": stems, "precision": loaded.precision, "draw_own_streams_ms": own_ms,
           "draw_global_ms": global_ms, "step_ms": step_ms,
           "added_per_step_pct": 100 * (own_ms - global_ms) / (step_ms + global_ms)}
    print(f"{stems} stems, {loaded.precision}: draw with own streams {own_ms:.3f} ms, on the "
          f"global RNG {global_ms:.3f} ms; decoder step {step_ms:.1f} ms: "
          f"{row['added_per_step_pct']:+.2f} % per step", flush=True)
    return row


def context(stems: int = 2, shares=(0.2, 1 / 3, 0.4)) -> list[dict]:
    """Decoder seconds per second of new audio of a later window, per context share."""
    from musicstems.backends.decoding import DecoderStep, encode_text

    folder = str(build_model("small", FOLDER))
    loaded = load_model(folder, device="cpu", quiet=True)
    model = loaded.model
    frames = int(model.generation_config.max_length)  # 1500: the window
    num_codebooks = model.config.decoder.num_codebooks
    inputs = _prompt_inputs(loaded, stems)
    lengths = [1, 500, 1000, frames]
    rows = []
    with torch.inference_mode():
        states, mask = encode_text(model, inputs["input_ids"], inputs["attention_mask"],
                                   guided=True)
        rows_n = states.shape[0]
        # the cache filled by one prefill of the whole window (not step by step: faster)
        decoder_step = DecoderStep(model, rows_n, frames + num_codebooks + 1, loaded.prepared)
        decoder_step.set_encoder(states, mask)
        decoder_step.prefill(torch.zeros(rows_n, num_codebooks, frames + 1, dtype=torch.long))
        codes = torch.zeros(rows_n, num_codebooks, dtype=torch.long)
        step_ms = _step_ms_at(decoder_step, codes, lengths, steps=10)
        del decoder_step

        def step_at(position):  # linear between the measured cache lengths
            for (a, ta), (b, tb) in zip(zip(lengths, step_ms), zip(lengths[1:], step_ms[1:])):
                if position <= b:
                    return ta + (tb - ta) * (position - a) / (b - a)
            return step_ms[-1]

        for share in shares:
            kept = int(frames * share)
            prefill_codes = torch.zeros(rows_n, num_codebooks, kept + 1, dtype=torch.long)

            def prefill(kept=kept, prefill_codes=prefill_codes):
                fresh = DecoderStep(model, rows_n, kept + 1, loaded.prepared)
                fresh.set_encoder(states, mask)
                fresh.prefill(prefill_codes)

            prefill_ms = 1000 * _best(prefill, 1)
            new = frames - kept
            steps_ms = sum(step_at(p) for p in range(kept + 1, frames + num_codebooks))
            per_audio_s = (prefill_ms + steps_ms) / 1000 / (new / 50)
            row = {"stems": stems, "context_share": round(share, 3), "context_s": kept / 50,
                   "new_s": new / 50, "prefill_ms": prefill_ms, "steps_ms": steps_ms,
                   "decoder_s_per_audio_s": per_audio_s}
            rows.append(row)
            print(f"context {kept / 50:4.1f} s, new {new / 50:4.1f} s: prefill "
                  f"{prefill_ms / 1000:.2f} s + steps {steps_ms / 1000:.1f} s = "
                  f"{per_audio_s:.2f} s per s of new audio", flush=True)
    print("steps at cache lengths " + ", ".join(f"{n}: {t:.1f} ms"
                                                for n, t in zip(lengths, step_ms)))
    # Whole songs from the same pieces, with the shipped context share and a 47-frame primer
    # (two beats at 128 bpm): the decoder's seconds per second of audio.
    from musicstems.backends.windows import CONTEXT_SHARE, plan_windows

    measured = sorted([(0, 0.0)] + [(round(r["context_s"] * 50), r["prefill_ms"])
                                    for r in rows])

    def prefill_at(kept):
        for (a, ta), (b, tb) in zip(measured, measured[1:]):
            if kept <= b:
                return ta + (tb - ta) * (kept - a) / (b - a)
        return measured[-1][1]

    for duration_s in (10.0, 60.0, 300.0):
        windows = plan_windows(47 + round(duration_s * 50), 47, frames)
        total_ms = sum(prefill_at(w.context) + sum(
            step_at(p) for p in range(w.context + 1, w.context + w.new + num_codebooks))
            for w in windows)
        row = {"stems": stems, "song_s": duration_s, "windows": len(windows),
               "context_share": round(CONTEXT_SHARE, 3),
               "decoder_s_per_audio_s": total_ms / 1000 / duration_s}
        rows.append(row)
        print(f"song of {duration_s:.0f} s: {len(windows)} window(s), "
              f"{row['decoder_s_per_audio_s']:.2f} s of decoder per s of audio", flush=True)
    return rows


def songs(stems: int = 2, durations=(10.0, 60.0)) -> list[dict]:
    """Whole songs of each duration: generate seconds per second of audio."""
    from musicstems import compose

    folder = str(build_model("small", FOLDER))
    chosen = {f"s{i}": PROMPTS[i] for i in range(stems)}
    rows = []
    for duration_s in durations:
        start = time.perf_counter()
        song = compose(chosen, duration_s=duration_s, seed=1, model=folder, align=False,
                       progress=False, device="cpu")
        backend = song.manifest["backend"]
        row = {"duration_s": duration_s, "stems": stems, "precision": backend["precision"],
               "windows": len(backend["windows"]), "decoder_steps": backend["decoder_steps"],
               "generate_s": backend["generate_s"], "ms_per_step": backend["ms_per_step"],
               "generate_s_per_audio_s": backend["generate_s"] / duration_s,
               "wall_s": time.perf_counter() - start}
        rows.append(row)
        print(f"{duration_s:5.0f} s, {stems} stems, {row['precision']}: {row['windows']} "
              f"window(s), {row['decoder_steps']} steps, generate {row['generate_s']:.1f} s = "
              f"{row['generate_s_per_audio_s']:.2f} s per s of audio "
              f"({row['ms_per_step']:.1f} ms/step)", flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_longform",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=("streams", "context", "songs"))
    parser.add_argument("--stems", type=int, default=2, choices=range(1, len(PROMPTS) + 1))
    parser.add_argument("--durations", type=float, nargs="+", default=[10.0, 60.0])
    args = parser.parse_args(argv)
    if args.which == "streams":
        streams(args.stems)
    elif args.which == "context":
        context(args.stems)
    else:
        songs(args.stems, args.durations)


if __name__ == "__main__":
    main()
