"""Song files: a song's stems and settings in a TOML file, for ``musicstems compose song.toml``.

::

    style = "dark berlin techno"     # any setting of compose, by its name
    bpm = 128
    key = "A minor"
    duration_s = 16
    seed = 7
    backend = "sketch"

    [stems]
    drums = "punchy four-on-the-floor techno drums"      # a stem is its prompt ...

    [stems.bass]                                         # ... or a table
    prompt = "deep rolling acid bassline"
    gain_db = -2
    pan = 0.0
    seed = 9

The settings are those of :data:`~musicstems.spec.SETTINGS` (``compose``'s keyword arguments,
``progress`` aside); a stem's table takes ``prompt``, ``gain_db``, ``pan``, ``seed`` and
``melody`` (a path, relative to the song file). An unknown key gets the closest known one.
Every error names the file, the key, the value and the fix.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any

from .errors import MusicStemsError

__all__ = ["read_song_file", "compose_file", "STEM_KEYS"]

# The keys of a stem's table, and what each is (Stem's fields).
STEM_KEYS = {"prompt": "its prompt (required)", "gain_db": "its level in the mix, dB",
             "pan": "its stereo position, -1 to 1", "seed": "its own seed",
             "melody": "an audio file its melody follows (melody models)"}


def _toml():
    if sys.version_info >= (3, 11):
        import tomllib
        return tomllib
    import tomli  # the same parser, before Python 3.11 had it (pyproject requires it there)
    return tomli


def _refuse(path: Path, problem: str) -> MusicStemsError:
    # no `arguments`: the names in the message are the file's keys, not the CLI's options
    return MusicStemsError(f"{path}: {problem}")


def _unknown(path: Path, key: str, value: Any, known, where: str) -> MusicStemsError:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"the keys are {', '.join(known)}."
    return _refuse(path, f"{where}{key} = {value!r} is not a key here; {hint}")


def _stem(path: Path, name: str, value: Any):
    from .spec import Stem

    if isinstance(value, str):
        return Stem(name, value)
    if not isinstance(value, dict):
        raise _refuse(path, f"stems.{name} = {value!r} is neither a prompt nor a table; write "
                      f"{name} = \"a prompt\" or a [stems.{name}] table with prompt = \"...\".")
    for key, item in value.items():
        if key not in STEM_KEYS:
            raise _unknown(path, key, item, STEM_KEYS, f"stems.{name}.")
    if "prompt" not in value:
        raise _refuse(path, f"[stems.{name}] has no prompt; add prompt = \"what it sounds like\".")
    melody = value.get("melody")
    if isinstance(melody, str):
        melody = str((path.parent / melody).expanduser())
    return Stem(name, value["prompt"], value.get("gain_db", 0.0), value.get("pan", 0.0),
                melody, value.get("seed"))


def read_song_file(path: str | Path) -> tuple[list, dict[str, Any]]:
    """The stems and settings of a TOML song file.

    Parameters
    ----------
    path : path
        The ``.toml`` file.

    Returns
    -------
    stems : list of Stem
    settings : dict
        Settings by name, as ``compose`` takes them (checked by it).

    Raises
    ------
    MusicStemsError
        For a missing or unreadable file, bad TOML, an unknown key (with the closest known
        one), a stem without a prompt; each naming the file, the key and the value.
    """
    from .spec import SETTING

    try:
        path = Path(path).expanduser()
    except RuntimeError:  # "~someone" with no such user
        path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the path
        raise _refuse(path, f"cannot be read ({exc}); pass a TOML song file") from None
    toml = _toml()
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise _refuse(path, f"is not valid TOML ({exc}); see docs/guide.md for the format"
                      ) from None
    stems_table = data.pop("stems", None)
    settings = {}
    known = [name for name in SETTING if name != "progress"]
    for key, value in data.items():
        if key not in known:
            raise _unknown(path, key, value, ["stems", *known], "")
        settings[key] = value
    if not isinstance(stems_table, dict) or not stems_table:
        raise _refuse(path, "has no [stems] table; add one stem per instrument, e.g. "
                      "[stems] then drums = \"punchy techno drums\"")
    return [_stem(path, name, value) for name, value in stems_table.items()], settings


def compose_file(path: str | Path, *, save: Any = None, callback=None, **settings: Any):
    """Compose the song a TOML file describes; ``settings`` override the file's.

    Returns the :class:`~musicstems.composition.Composition`; errors in the file's values name
    the file (and are raised before any generation).
    """
    from .pipeline import render
    from .spec import validate_compose_args

    stems, written = read_song_file(path)
    try:
        spec = validate_compose_args(stems, **{**written, **settings})
    except MusicStemsError as exc:
        raise _refuse(Path(path).expanduser(), str(exc)) from None
    return render(spec, callback=callback, save=save)
