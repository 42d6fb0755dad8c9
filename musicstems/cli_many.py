"""The command line's batch: ``musicstems compose-many SONGS... --out DIR [--scheduler ADDR]``.

SONGS are TOML song files or folders of them (``*.toml``, each song named after its file).
:mod:`musicstems.cli` parses and reports; this runs :func:`musicstems.many.compose_many`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import MusicStemsError

__all__ = ["add_many_command", "run_many"]


def add_many_command(sub) -> None:
    """The ``compose-many`` subcommand, on ``sub`` (argparse's subparsers)."""
    many = sub.add_parser(
        "compose-many", help="compose many song files, here or on a Dask cluster",
        description="Compose every song file given (or every *.toml in a folder given) and "
                    "save each to --out/<name>/. Songs already there with the same spec are "
                    "skipped; a failing song is reported and the others go on.")
    many.add_argument("songs", nargs="+", metavar="SONGS",
                      help="song files (song.toml) or folders of them")
    many.add_argument("--out", required=True, help="folder for the songs' folders")
    many.add_argument("--scheduler", metavar="ADDRESS", default=None,
                      help="a Dask scheduler, e.g. tcp://10.0.0.5:8786 (needs musicstems[dask])")
    many.add_argument("--format", default="wav", choices=("wav", "flac", "mp3"))
    many.add_argument("--max-batch-stems", type=int, default=None, metavar="N",
                      help="MusicGen songs' stems sampled together, at most N per loop "
                           "(default 8; 1: each song on its own)")
    many.add_argument("--quiet", dest="progress", action="store_false",
                      help="no progress bar")


def _song_files(paths) -> list[Path]:
    files = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.toml"))
            if not found:
                raise MusicStemsError(f"{str(given)!r} holds no *.toml song files; pass song "
                                      "files or a folder of them.", arguments={"songs": given})
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise MusicStemsError(f"{str(given)!r} does not exist; pass song files (song.toml) "
                                  "or a folder of them.", arguments={"songs": given})
    return files


def run_many(args) -> int:
    """Run ``compose-many``; exit 0 when every song is done or skipped, 1 when any failed."""
    from .many import compose_many

    files = _song_files(args.songs)
    client = None
    if args.scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise MusicStemsError("--scheduler needs Dask distributed, which is not "
                                  "installed; pip install 'musicstems[dask]'.",
                                  arguments={"scheduler": args.scheduler}) from None
        try:
            client = Client(args.scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise MusicStemsError(f"--scheduler {args.scheduler} does not answer ({exc}); "
                                  "check the address, or leave --scheduler out to compose "
                                  "here.", arguments={"scheduler": args.scheduler}) from None
    try:
        batch = {} if args.max_batch_stems is None else {
            "max_batch_stems": args.max_batch_stems}
        summary = compose_many(files, args.out, client=client, format=args.format,
                               progress=args.progress, **batch)
    finally:
        if client is not None:
            client.close()
    print(repr(summary), file=sys.stdout)
    return 0 if summary.ok else 1
