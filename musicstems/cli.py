"""Command line: ``musicstems compose ...``, ``musicstems demo``, ``musicstems --version``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import MusicStemsError
from .spec import DEFAULT_MODEL

__all__ = ["main", "musicgen_weights_cached"]

DEMO_STEMS = {
    "drums": "punchy four-on-the-floor techno drums with crisp hi-hats",
    "bass": "deep rolling acid bassline",
    "pads": "warm evolving analog pads",
    "lead": "hypnotic plucked synth lead melody",
}
DEMO_SETTINGS = dict(style="dark berlin techno", bpm=128, key="A minor", duration_s=16, seed=7)


def _pairs(values: Sequence[str] | None, option: str, convert=str) -> dict:
    out = {}
    for text in values or []:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise MusicStemsError(f"{option} {text!r} is not NAME=VALUE; write e.g. "
                                  f"{option} drums=" + ("'punchy techno drums'" if convert is str
                                                        else "-3"))
        try:
            out[name.strip()] = convert(value.strip())
        except ValueError:
            raise MusicStemsError(f"{option} {text!r}: {value!r} is not a number.") from None
    return out


def _stems_from_args(args) -> list:
    from .spec import Stem

    prompts = _pairs(args.stem, "--stem")
    gains = _pairs(args.gain, "--gain", float)
    pans = _pairs(args.pan, "--pan", float)
    for option, values in (("--gain", gains), ("--pan", pans)):
        unknown = sorted(set(values) - set(prompts))
        if unknown:
            raise MusicStemsError(f"{option} names stem(s) {unknown} that no --stem defines; "
                                  f"stems are {sorted(prompts)}.")
    if not prompts:
        raise MusicStemsError("no --stem given; add one per instrument, e.g. "
                              "--stem drums='punchy techno drums' --stem bass='deep acid bass'.")
    return [Stem(name, prompt, gains.get(name, 0.0), pans.get(name, 0.0))
            for name, prompt in prompts.items()]


def musicgen_weights_cached(model: str = DEFAULT_MODEL) -> bool:
    """Whether ``model`` (a hub id) is already in the local Hugging Face cache, or a folder."""
    from .backends.hub import weights_cached

    return weights_cached(model)


def _add_song_options(parser: argparse.ArgumentParser, *, defaults: dict) -> None:
    parser.add_argument("--out", required=True, help="folder to write mix, stems, manifest")
    parser.add_argument("--style", default=defaults.get("style"),
                        help="shared style added to every prompt")
    parser.add_argument("--bpm", type=float, default=defaults.get("bpm"), help="tempo, 20-300")
    parser.add_argument("--key", default=defaults.get("key"), help="e.g. 'A minor', 'F#m'")
    parser.add_argument("--duration", type=float, default=defaults.get("duration_s", 10.0),
                        help="seconds (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.get("seed"),
                        help="seed for reproducible output (drawn and recorded if omitted)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="hub id or local folder")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--precision", default="auto",
                        choices=("auto", "fp32", "bf16", "fp16", "int8"))
    parser.add_argument("--format", default="wav", choices=("wav", "flac", "mp3"))
    parser.add_argument("--overwrite", action="store_true",
                        help="replace this song's files in a non-empty --out folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musicstems",
        description="Compose music stem by stem: one prompt per instrument, generated "
                    "separately, aligned, loudness-matched and mixed.",
        epilog="Example: musicstems compose --stem drums='punchy techno drums' "
               "--stem bass='deep acid bassline' --style 'dark berlin techno' --bpm 128 "
               "--key 'A minor' --duration 10 --seed 7 --out out/")
    parser.add_argument("--version", action="version", version=f"musicstems {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{compose,demo}")

    comp = sub.add_parser("compose", help="generate a song from one prompt per stem",
                          description="Generate a song from one prompt per stem and write "
                                      "mix, stems and manifest.json to --out.")
    comp.add_argument("--stem", action="append", metavar="NAME=PROMPT",
                      help="a stem and its prompt; repeat for each instrument")
    comp.add_argument("--gain", action="append", metavar="NAME=DB",
                      help="level of a stem in the mix, in dB")
    comp.add_argument("--pan", action="append", metavar="NAME=PAN",
                      help="stereo position of a stem, -1 (left) to 1 (right)")
    _add_song_options(comp, defaults={})
    comp.add_argument("--backend", default="musicgen", choices=("musicgen", "sketch"))
    comp.add_argument("--guidance-scale", type=float, default=3.0)
    comp.add_argument("--temperature", type=float, default=1.0)
    comp.add_argument("--top-k", type=int, default=250)
    comp.add_argument("--top-p", type=float, default=0.0)
    comp.add_argument("--stem-lufs", type=float, default=-20.0)
    comp.add_argument("--target-lufs", type=float, default=-14.0)
    comp.add_argument("--ceiling", type=float, default=-1.0, help="true-peak ceiling, dBFS")
    comp.add_argument("--no-align", action="store_true", help="skip tempo/beat/key alignment")
    comp.add_argument("--midi", action="store_true", help="also write song.mid (sketch backend)")

    demo = sub.add_parser(
        "demo", help="write a demo song (MusicGen if its weights are cached, else offline)",
        description="Write a four-stem demo song. Uses MusicGen when its weights are in the "
                    "local cache, otherwise the offline sketch backend, and says which.")
    _add_song_options(demo, defaults=DEMO_SETTINGS)
    demo.add_argument("--backend", default="auto", choices=("auto", "musicgen", "sketch"))
    return parser


def _run_compose(args) -> int:
    from .pipeline import compose

    song = compose(
        _stems_from_args(args), style=args.style, bpm=args.bpm, key=args.key,
        duration_s=args.duration, seed=args.seed, backend=args.backend, model=args.model,
        device=args.device, precision=args.precision, guidance_scale=args.guidance_scale,
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        stem_lufs=args.stem_lufs, target_lufs=args.target_lufs, ceiling_dbfs=args.ceiling,
        align=not args.no_align, progress=not args.quiet)
    folder = song.save(args.out, format=args.format, overwrite=args.overwrite, midi=args.midi)
    _summary(song, folder)
    return 0


def _run_demo(args) -> int:
    from .pipeline import compose
    from .spec import Stem

    backend = args.backend
    if backend == "auto":
        backend = "musicgen" if musicgen_weights_cached(args.model) else "sketch"
    if backend == "musicgen":
        note = (f"using MusicGen ({args.model}). For an instant offline sketch of the same song: "
                "musicstems demo --backend sketch --out ...")
    else:
        note = (f"using the offline sketch backend: {args.model} is not in the local cache. "
                "To hear MusicGen, download it once with network access (e.g. "
                f"`hf download {args.model}`) and run this again.")
    print(f"musicstems demo: {note}", file=sys.stderr)
    song = compose([Stem(n, p) for n, p in DEMO_STEMS.items()], style=args.style, bpm=args.bpm,
                   key=args.key, duration_s=args.duration, seed=args.seed, backend=backend,
                   model=args.model, device=args.device, precision=args.precision,
                   progress=not args.quiet)
    folder = song.save(args.out, format=args.format, overwrite=args.overwrite,
                       midi=backend == "sketch")  # MusicGen plays the plan's tempo/key only
    _summary(song, folder)
    return 0


def _summary(song, folder: Path) -> None:
    mix = song.report.get("mix", {})
    print(f"wrote {folder}/: mix + {len(song.stems)} stems + manifest.json "
          f"({song.duration_s:.2f} s, {mix.get('integrated_lufs')} LUFS, "
          f"true peak {mix.get('true_peak_dbtp')} dBTP, seed {song.seed})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _run_compose(args) if args.command == "compose" else _run_demo(args)
    except MusicStemsError as exc:
        print(f"musicstems: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("musicstems: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
