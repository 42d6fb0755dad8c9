"""The command line's edit loop: ``musicstems regenerate``, ``musicstems remix``, and
``musicstems compose SONG`` for a song file (``song.toml``) or a saved song (its
``manifest.json`` or folder). :mod:`musicstems.cli` parses and reports; this runs them.

Every command checks its ``--out`` folder before any generation (``SaveTarget.check``), and
its refusals are one line in the CLI's words, exit code 2.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Callable

from .errors import MusicStemsError

__all__ = ["add_edit_commands", "run_compose_source", "EDIT_COMMANDS", "EDIT_OPTIONS"]

# The edit arguments as the CLI spells them, for in_cli_words: (name, flag).
EDIT_OPTIONS = (("gain_db", "--gain"), ("pan", "--pan"), ("mute", "--mute"),
                ("prompt", "--prompt"))


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder to write the edited song to")
    parser.add_argument("--format", default="wav", choices=("wav", "flac", "mp3"))
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the song in a non-empty --out folder")


def add_edit_commands(sub) -> None:
    """The ``regenerate`` and ``remix`` subcommands, on ``sub`` (argparse's subparsers)."""
    regen = sub.add_parser(
        "regenerate", help="generate one stem of a saved song again, keep the others",
        description="Generate one stem of a saved song again (same plan, tempo and key; the "
                    "other stems bit-identical), mix and master again, and write the song to "
                    "--out.")
    regen.add_argument("song", metavar="SONG", help="folder of a saved song")
    regen.add_argument("stem", metavar="STEM", help="name of the stem to generate again")
    regen.add_argument("--seed", type=int, default=None,
                       help="the stem's new seed (default: draw one, recorded)")
    regen.add_argument("--prompt", default=None, help="a new prompt for the stem")
    regen.add_argument("--quiet", dest="progress", action="store_false",
                       help="no progress bar")
    _output_options(regen)

    remix = sub.add_parser(
        "remix", help="change levels, pans or mutes of a saved song (no generation)",
        description="Mix and master a saved song again with new levels, pans or mutes, "
                    "and write it to --out. A muted stem stays in the song's files.")
    remix.add_argument("song", metavar="SONG", help="folder of a saved song")
    remix.add_argument("--gain", action="append", metavar="NAME=DB",
                       help="a stem's new level in dB; repeat per stem")
    remix.add_argument("--pan", action="append", metavar="NAME=PAN",
                       help="a stem's new pan, -1 (left) to 1 (right); repeat per stem")
    remix.add_argument("--mute", action="append", metavar="NAME",
                       help="a stem silent in the mix; repeat per stem")
    remix.add_argument("--unmute", action="store_true",
                       help="unmute every stem first (then --mute mutes those named)")
    _output_options(remix)


def _target(args, stems, num_samples: int):
    """The --out folder, checked before anything is generated or mixed."""
    from .export import SaveTarget

    target = SaveTarget(args.out, format=args.format, overwrite=args.overwrite)
    target.check(list(stems), num_samples=num_samples)
    return target


def _load(folder: str):
    from .composition import Composition

    return Composition.load(folder)


def _save(song, target) -> Path:
    return song.save(target.directory, format=target.format, overwrite=target.overwrite)


def run_regenerate(args, summary: Callable) -> int:
    song = _load(args.song)
    target = _target(args, song.stems, song.mix.shape[-1])
    new = song.regenerate(args.stem, prompt=args.prompt, seed=args.seed, progress=args.progress)
    summary(new, _save(new, target))
    return 0


def run_remix(args, summary: Callable, pairs: Callable) -> int:
    song = _load(args.song)
    gains = pairs(args.gain, "--gain", float)
    pans = pairs(args.pan, "--pan", float)
    mute = None
    if args.mute or args.unmute:
        mute = [*([] if args.unmute else song.muted), *(args.mute or [])]
    target = _target(args, song.stems, song.mix.shape[-1])
    try:
        new = song.remix(gain_db=gains or None, pan=pans or None,
                         mute=None if mute is None else list(dict.fromkeys(mute)))
    except MusicStemsError as exc:
        raise MusicStemsError(_level_words(str(exc)), arguments=exc.arguments) from None
    summary(new, _save(new, target))
    return 0


# remix's "gain_db['drums']=-300.0" as the command line wrote it: "--gain drums=-300"
_LEVEL_RE = re.compile(r"\b(gain_db|pan)\['([^']*)'\]=([-+0-9.eE]+)")


def _level_words(message: str) -> str:
    def flag(match: re.Match) -> str:
        option = "--gain" if match.group(1) == "gain_db" else "--pan"
        return f"{option} {match.group(2)}={float(match.group(3)):g}"
    return _LEVEL_RE.sub(flag, message)


EDIT_COMMANDS = {"regenerate": run_regenerate, "remix": run_remix}


def run_compose_source(args, settings: dict[str, Any], target, summary: Callable) -> int:
    """``musicstems compose SONG``: a ``.toml`` song file (flags override its settings), or a
    saved song's manifest.json / folder (re-run as it was: no song flags)."""
    from .rerun import compose_from
    from .songfile import compose_file

    source = Path(args.source).expanduser()
    if args.stem or args.gain or args.pan:
        raise MusicStemsError(f"{args.source} gives the stems; drop --stem, --gain and --pan "
                              "(edit the file, or use musicstems remix on the saved song).")
    if source.suffix.lower() == ".toml":
        song = compose_file(source, save=target, **settings)
    else:
        progress = settings.pop("progress", True)
        if settings:
            from .spec import SETTING

            flags = ", ".join(SETTING[name].flag for name in sorted(settings))
            raise MusicStemsError(
                f"a re-run of {args.source} takes every setting from its manifest, so it "
                f"cannot also take {flags}; drop them, or save a song file (song.toml) with "
                "the settings you want.")
        song = compose_from(source, save=target, progress=progress)
    summary(song, Path(args.out).expanduser())
    return 0
