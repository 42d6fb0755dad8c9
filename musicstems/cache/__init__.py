"""The stem cache: generated (raw, pre-alignment) stems kept on disk under a content key, so a
song made again with one stem changed generates only that stem, and a song whose stems are all
cached loads no model at all.

- :mod:`.key`: what a stem depends on, as versioned JSON hashed to its key.
- :mod:`.store`: the folder of entries (atomic writes, checksums, least-recently-used eviction).
- :mod:`.stage`: the generate stage around a backend (``pipeline.generate_stems`` calls it).

Where it lives: ``compose(cache_dir=...)``, else ``$MUSICSTEMS_CACHE_DIR``, else the user cache
folder (``platformdirs.user_cache_dir("musicstems")``: ``~/.cache/musicstems`` on Linux).
``compose(cache=False)`` neither reads nor writes it; left at None, ``$MUSICSTEMS_CACHE=0``
turns it off (a CI machine, a test suite). Its size limit is ``$MUSICSTEMS_CACHE_SIZE_GB``
(default 2 GB).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import MusicStemsError
from .store import DEFAULT_LIMIT_BYTES, CachedStem, StemCache

__all__ = ["StemCache", "CachedStem", "cache_enabled", "cache_folder", "check_cache_dir",
           "limit_bytes", "open_cache", "ENV_DIR", "ENV_SIZE", "ENV_SWITCH",
           "DEFAULT_LIMIT_BYTES"]

ENV_DIR = "MUSICSTEMS_CACHE_DIR"
ENV_SIZE = "MUSICSTEMS_CACHE_SIZE_GB"
ENV_SWITCH = "MUSICSTEMS_CACHE"
_SWITCH_WORDS = {"1": True, "true": True, "on": True, "yes": True,
                 "0": False, "false": False, "off": False, "no": False}


def cache_enabled(cache: bool | None) -> bool:
    """Whether the cache is used: ``cache`` when given, else ``$MUSICSTEMS_CACHE`` (on when
    unset or empty)."""
    if cache is not None:
        return bool(cache)
    text = os.environ.get(ENV_SWITCH, "").strip().lower()
    if text and text not in _SWITCH_WORDS:
        raise MusicStemsError(f"the environment variable {ENV_SWITCH}={text!r} is not a switch; "
                              "set it to 0 (cache off) or 1 (on), or unset it (on).")
    return _SWITCH_WORDS.get(text, True)


def _default_folder() -> tuple[str, str]:
    """The folder when ``cache_dir`` is not given, and what chose it (for messages)."""
    from_env = os.environ.get(ENV_DIR)
    if from_env:
        return from_env, f"the environment variable {ENV_DIR}={from_env!r}"
    import platformdirs

    folder = platformdirs.user_cache_dir("musicstems", appauthor=False)
    return folder, f"the user cache folder {folder!r}"


def cache_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache's folder: ``cache_dir``, else ``$MUSICSTEMS_CACHE_DIR``, else the user cache
    folder. Nothing is created."""
    folder = _default_folder()[0] if cache_dir is None else cache_dir
    return Path(folder).expanduser().absolute()


def _refuse(what: str, problem: str, fix: str, arguments: dict) -> MusicStemsError:
    return MusicStemsError(f"{what} {problem}; {fix}", arguments=arguments)


def check_cache_dir(cache_dir: Any, *, enabled: bool = True) -> str | None:
    """``cache_dir`` checked: a folder path that is (or can be made) a writable folder.

    Parameters
    ----------
    cache_dir : str, path or None
        None: ``$MUSICSTEMS_CACHE_DIR`` or the user cache folder, checked the same way.
    enabled : bool
        ``compose``'s ``cache``; when False only the type is checked (nothing is read).

    Returns
    -------
    str or None
        The folder as an absolute path, or None when it was None.

    Raises
    ------
    MusicStemsError
        For a value that is not a path, a path that is a file or under one, or a folder this
        user cannot write; naming it (``cache_dir`` or the variable that set it) and the fix.
    """
    if cache_dir is not None and (isinstance(cache_dir, bool)
                                  or not isinstance(cache_dir, (str, os.PathLike))):
        raise _refuse(f"cache_dir={cache_dir!r}", "is not a folder path",
                      "pass the path of a folder for the stem cache, or None for the default.",
                      {"cache_dir": cache_dir})
    if cache_dir is None:
        folder, what = _default_folder()
        arguments: dict = {"cache": False}
        fix = (f"set {ENV_DIR} or cache_dir to a writable folder, or pass cache=False to "
               "generate without the cache.")
    else:
        folder, what = cache_dir, f"cache_dir={os.fspath(cache_dir)!r}"
        arguments = {"cache_dir": os.fspath(cache_dir), "cache": False}
        fix = "give cache_dir a writable folder (it is made if missing), or pass cache=False."
    if not enabled:
        return None if cache_dir is None else os.fspath(cache_dir)
    try:
        path = cache_folder(folder)
        if b"\0" in os.fsencode(path):  # pathlib's exists() says False to these, mkdir fails
            raise ValueError("embedded null character")
        existing = path
        while not existing.exists():
            existing = existing.parent
        is_dir = existing.is_dir()
        writable = os.access(existing, os.W_OK | os.X_OK)
    except (OSError, ValueError, RuntimeError) as exc:  # NUL, lone surrogates, "~nosuchuser"
        raise _refuse(what, f"is not a usable folder path ({exc})", fix, arguments) from None
    if not is_dir:
        where = "is a file" if existing == path else f"is under the file {str(existing)!r}"
        raise _refuse(what, f"{where}, not a folder", fix, arguments)
    if not writable:
        raise _refuse(what, f"cannot be written by this user ({str(existing)!r} is read-only)",
                      fix, arguments)
    limit_bytes()  # its variable is checked at the door too
    return None if cache_dir is None else str(path)


def limit_bytes() -> int:
    """The size limit: ``$MUSICSTEMS_CACHE_SIZE_GB`` (gigabytes, 10**9 bytes) or 2 GB."""
    text = os.environ.get(ENV_SIZE)
    if not text:
        return DEFAULT_LIMIT_BYTES
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise MusicStemsError(f"the environment variable {ENV_SIZE}={text!r} is not a size; "
                              "set it to a positive number of gigabytes, e.g. 2, or unset it "
                              "for the default 2 GB.")
    return int(value * 10**9)


def open_cache(cache_dir: str | os.PathLike | None = None) -> StemCache:
    """The :class:`StemCache` ``compose`` uses for ``cache_dir`` (see :func:`cache_folder`)."""
    return StemCache(cache_folder(cache_dir), limit_bytes=limit_bytes())
