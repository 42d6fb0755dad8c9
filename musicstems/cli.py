"""Command line: ``musicstems compose ...``, ``musicstems demo``, ``musicstems regenerate``,
``musicstems remix``, ``musicstems cache info|clear``, ``musicstems --version``. The edit
loop's commands run in :mod:`musicstems.cli_edit`."""

from __future__ import annotations

import argparse
import difflib
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .errors import MusicStemsError
from .cli_edit import EDIT_COMMANDS, EDIT_OPTIONS, add_edit_commands, run_compose_source
from .cli_many import add_many_command, run_many
from .spec import SETTING, SETTINGS, Setting

__all__ = ["main"]

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


def _add_song_options(parser: argparse.ArgumentParser, *, demo: bool, defaults: dict,
                      unset: bool = False) -> None:
    """The output options, then one option per song setting the command offers (the demo only
    those marked ``demo``), each with the setting's name as its ``dest``. ``unset``: an option
    not given stays None (so a song file's settings are only overridden by flags given), and
    compose applies the setting's default."""
    parser.add_argument("--out", required=True, help="folder to write mix, stems, manifest")
    parser.add_argument("--format", default="wav", choices=("wav", "flac", "mp3"))
    parser.add_argument("--overwrite", action="store_true",
                        help="replace this song's files in a non-empty --out folder")
    for setting in SETTINGS:
        if setting.flag is None or (demo and not setting.demo):
            continue
        if setting.negate:  # an on/off setting, on by default; its flag turns it off
            parser.add_argument(setting.flag, dest=setting.name, action="store_false",
                                default=None if unset else True, help=setting.help)
            continue
        default = defaults.get(setting.name, setting.default)
        parser.add_argument(
            setting.flag, dest=setting.name, default=None if unset else default,
            metavar=setting.flag.lstrip("-").upper().replace("-", "_"),
            type=setting.type if setting.type in (int, float) else None,
            choices=setting.choices or None,
            help=setting.help + ("" if default is None else f" (default {default})"))


def _settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """The song settings the parser collected, by setting name (those not given left out)."""
    return {name: value for name, value in vars(args).items()
            if name in SETTING and value is not None}


class _UsageError(Exception):
    """argparse's complaint about the command line, raised instead of its exit."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line raises :class:`_UsageError` for ``main`` to print as
    one line, like every other refusal (argparse's own prints the usage and exits)."""

    def error(self, message: str):
        hint = _did_you_mean(message, self._known_flags())
        raise _UsageError(f"{message}{hint} (see {self.prog} --help)")

    def _known_flags(self) -> list[str]:
        """Every ``--flag`` of this parser and of its subcommands."""
        flags = [f for f in self._option_string_actions if f.startswith("--")]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    flags += [f for f in sub._option_string_actions if f.startswith("--")]
        return sorted(set(flags))


def _did_you_mean(message: str, flags: list[str]) -> str:
    """``"; did you mean --duration?"`` for the misspelled flags an argparse message names."""
    if not message.startswith("unrecognized arguments:"):
        return ""
    guesses = []
    for word in message.split(":", 1)[1].split():
        if word.startswith("--"):
            close = difflib.get_close_matches(word.split("=", 1)[0], flags, n=1, cutoff=0.6)
            guesses += [f"{close[0]} (for {word.split('=', 1)[0]})"] if close else []
    return f"; did you mean {', '.join(guesses)}?" if guesses else ""


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="musicstems",
        description="Compose music stem by stem: one prompt per instrument, generated "
                    "separately, aligned, loudness-matched and mixed.",
        epilog="Example: musicstems compose --stem drums='punchy techno drums' "
               "--stem bass='deep acid bassline' --style 'dark berlin techno' --bpm 128 "
               "--key 'A minor' --duration 10 --seed 7 --out out/")
    parser.add_argument("--version", action="version", version=f"musicstems {__version__}")
    sub = parser.add_subparsers(dest="command",
                                metavar="{compose,demo,regenerate,remix,compose-many,cache}")

    comp = sub.add_parser("compose", help="generate a song from one prompt per stem",
                          description="Generate a song from one prompt per stem (or a song "
                                      "file, or a saved song's manifest.json to re-run it) and "
                                      "write mix, stems and manifest.json to --out.")
    comp.add_argument("source", nargs="?", metavar="SONG",
                      help="a song file (song.toml; flags given override its settings) or a "
                           "saved song's manifest.json or folder (re-run to the same audio)")
    comp.add_argument("--stem", action="append", metavar="NAME=PROMPT",
                      help="a stem and its prompt; repeat for each instrument")
    comp.add_argument("--gain", action="append", metavar="NAME=DB",
                      help="level of a stem in the mix, in dB")
    comp.add_argument("--pan", action="append", metavar="NAME=PAN",
                      help="stereo position of a stem, -1 (left) to 1 (right)")
    _add_song_options(comp, demo=False, defaults={}, unset=True)
    comp.add_argument("--midi", action="store_true", help="also write song.mid, the song's plan as MIDI (the notes you "
                           "hear with the sketch backend; with MusicGen the plan its stems "
                           "followed)")

    demo = sub.add_parser(
        "demo", help="write a demo song (MusicGen if its weights are cached, else offline)",
        description="Write a four-stem demo song. Uses MusicGen when its weights are in the "
                    "local cache, otherwise the offline sketch backend, and says which.")
    _add_song_options(demo, demo=True, defaults=DEMO_SETTINGS)
    demo.add_argument("--backend", default="auto", choices=("auto", *SETTING["backend"].choices),
                      help="auto: MusicGen if its weights are cached, else sketch")
    add_edit_commands(sub)
    add_many_command(sub)
    _add_cache_parser(sub)
    return parser


# -- musicstems cache info | clear -----------------------------------------------------------
def _add_cache_parser(sub) -> None:
    cache = sub.add_parser("cache", help="show or empty the stem cache",
                           description="The stem cache keeps generated stems, so a song made "
                                       "again with one stem changed generates only that stem.")
    cache.add_argument("action", choices=("info", "clear"),
                       help="info: its folder, entries, size and limit; clear: delete every "
                            "entry (only the cache's own files; nothing else in the folder)")
    cache.add_argument(SETTING["cache_dir"].flag, dest="cache_dir", metavar="CACHE_DIR",
                       help=SETTING["cache_dir"].help)


def _run_cache(args) -> int:
    from .cache import check_cache_dir, open_cache

    store = open_cache(check_cache_dir(args.cache_dir))
    if args.action == "clear":
        print(f"removed {store.clear()} cached stems from {store.folder}")
        return 0
    info = store.info()
    print(f"folder:  {info['folder']}\nentries: {info['entries']}\n"
          f"size:    {info['bytes'] / 1e6:.1f} MB (limit {info['limit_bytes'] / 1e9:g} GB)")
    return 0


def _target(args, *, midi: bool):
    """The --out folder as compose's save target: compose checks it before generating."""
    from .export import SaveTarget

    return SaveTarget(args.out, format=args.format, overwrite=args.overwrite, midi=midi)


def _run_compose(args) -> int:
    from .pipeline import compose

    target = _target(args, midi=args.midi)
    if args.source is not None:
        return run_compose_source(args, _settings_from(args), target, _summary)
    song = compose(_stems_from_args(args), **_settings_from(args), save=target)
    _summary(song, Path(args.out).expanduser())
    return 0


def _run_demo(args) -> int:
    from .backends.hub import musicgen_weights_cached
    from .pipeline import compose
    from .spec import Stem, validate_compose_args

    stems = [Stem(n, p) for n, p in DEMO_STEMS.items()]
    backend = args.backend
    if backend == "auto":
        backend = "musicgen" if musicgen_weights_cached(args.model) else "sketch"
    # MusicGen plays the plan's tempo and key only, so only the sketch's song.mid is its notes
    target = _target(args, midi=backend == "sketch")
    # the settings and --out before the note, so a bad one is refused first (compose checks
    # them again, before generating)
    validate_compose_args(stems, **{**_settings_from(args), "backend": backend})
    target.check(list(DEMO_STEMS), duration_s=args.duration_s)
    if backend == "musicgen":
        note = (f"using MusicGen ({args.model}). For an instant offline sketch of the same song: "
                "musicstems demo --backend sketch --out ...")
    else:
        note = (f"using the offline sketch backend: {args.model} is not in the local cache. "
                "To hear MusicGen, download it once with network access (e.g. "
                f"`hf download {args.model}`) and run this again.")
    print(f"musicstems demo: {note}", file=sys.stderr)
    song = compose(stems, **{**_settings_from(args), "backend": backend}, save=target)
    _summary(song, Path(args.out).expanduser())
    return 0


def _summary(song, folder: Path) -> None:
    mix = song.report.get("mix", {})
    print(f"wrote {folder}/: mix + {len(song.stems)} stems + manifest.json "
          f"({song.duration_s:.2f} s, {mix.get('integrated_lufs')} LUFS, "
          f"true peak {mix.get('true_peak_dbtp')} dBTP, seed {song.seed})")


# `name=value` as the Python messages write it: a quoted text, or a number, word or None.
_VALUE = r"""(?:'[^']*'|"[^"]*"|[-+]?[\w.]*\w)"""


def _flag_words(setting: Setting, written: str | None) -> str:
    """``--flag value`` for a value as a Python message wrote it (``45.0``, ``'A minor'``)."""
    if written is None or setting.negate:
        return setting.flag or setting.name
    if written[:1] in "'\"":
        return f"{setting.flag} {shlex.quote(written[1:-1])}"
    try:
        return f"{setting.flag} {float(written):g}"
    except ValueError:
        return f"{setting.flag} {written}"


# The save target's arguments as the CLI spells them (they are not song settings).
_OUTPUT_OPTIONS = {s.name: s for s in (
    Setting("directory", str, None, "", flag="--out"),
    Setting("format", str, "wav", "", flag="--format"),
    Setting("overwrite", bool, False, "", flag="--overwrite", negate=True),
    Setting("midi", bool, False, "", flag="--midi", negate=True),
    *(Setting(name, str, None, "", flag=flag) for name, flag in EDIT_OPTIONS),
    # compose-many's
    Setting("out_dir", str, None, "", flag="--out"),
    Setting("max_batch_stems", int, None, "", flag="--max-batch-stems"),
)}


def in_cli_words(error: MusicStemsError) -> str:
    """The message of ``error`` with the settings it names spelled as the CLI's options:
    ``duration_s=45.0`` becomes ``--duration 45``. A bare name is respelled only when it has an
    underscore (``target_lufs``), since bare ``key`` or ``model`` are also plain words."""
    text = str(error)
    for name in error.arguments:
        setting = SETTING.get(name) or _OUTPUT_OPTIONS.get(name)
        if setting is None or setting.flag is None:
            continue
        bare = "" if "_" in name else "(?==)"
        pattern = rf"(?<![\w-]){re.escape(name)}{bare}(?:=({_VALUE}))?(?![\w-])"
        text = re.sub(pattern, lambda m, s=setting: _flag_words(s, m.group(1)), text)
    return text


def _refusal(message: str) -> None:
    # one line whatever the values in it hold, so a script can read it
    line = message.replace("\r", "\\r").replace("\n", "\\n")
    print(f"musicstems: error: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code: 0 done,
    2 refused (one line on stderr, nothing written), 130 interrupted."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        _refusal(str(exc))
        return 2
    if args.command is None:
        parser.print_help()
        _refusal("no command given; use 'musicstems compose ...', 'musicstems demo ...', "
                 "'musicstems regenerate ...' or 'musicstems remix ...'.")
        return 2
    try:
        if args.command == "cache":
            return _run_cache(args)
        if args.command == "regenerate":
            return EDIT_COMMANDS["regenerate"](args, _summary)
        if args.command == "remix":
            return EDIT_COMMANDS["remix"](args, _summary, _pairs)
        if args.command == "compose-many":
            return run_many(args)
        return _run_compose(args) if args.command == "compose" else _run_demo(args)
    except MusicStemsError as exc:
        _refusal(in_cli_words(exc))
        return 2
    except KeyboardInterrupt:
        print("musicstems: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
