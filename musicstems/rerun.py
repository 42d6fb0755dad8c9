"""Re-running a saved song: its :class:`~musicstems.spec.SongSpec` rebuilt from its manifest,
and :func:`compose_from`, which composes it again and replays its edits.

The manifest holds everything a song was made from: every setting of
:data:`~musicstems.spec.SETTINGS` (``settings``), each stem's prompt, gain, pan and seed
(``stems``; a seed the user gave is given again, a derived one is derived again), and its
edits in order (``edits``, with ``composed``: the stems before the first edit). On the same
machine, with the same versions, a re-run gives the same audio bit for bit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import MusicStemsError

__all__ = ["compose_from", "song_spec"]


def _bad(problem: str, source: Any = "manifest") -> MusicStemsError:
    return MusicStemsError(f"{source}: {problem}; pass a manifest.json that "
                           "Composition.save() wrote (or its folder).",
                           arguments={"manifest": str(source)})


def _melody(entry: Mapping[str, Any]) -> str | None:
    """The melody file a stem followed, as its harmony report names it (None: none)."""
    harmony = entry.get("harmony")
    if isinstance(harmony, Mapping) and harmony.get("source") == "file":
        return harmony.get("path")
    return None


def song_spec(manifest: Mapping[str, Any], *, stems: Mapping[str, Mapping] | None = None,
              progress: bool = False):
    """The validated :class:`~musicstems.spec.SongSpec` a manifest was made from.

    Parameters
    ----------
    manifest : dict
        A song's manifest (``Composition.manifest``, or manifest.json parsed).
    stems : dict of str -> dict, optional
        The stems' entries to use (``prompt``, ``gain_db``, ``pan``, ``seed``, ``seed_given``)
        instead of the manifest's ``stems``, e.g. its ``composed`` stems.
    progress : bool
        Not a setting of the song: whether the re-run shows a progress bar.

    Raises
    ------
    MusicStemsError
        For a manifest without settings or stems, or a setting this musicstems refuses.
    """
    from .spec import SETTING, SETTINGS, Stem, validate_compose_args

    settings = manifest.get("settings")
    entries = manifest.get("stems") if stems is None else stems
    if not isinstance(settings, Mapping) or not isinstance(entries, Mapping) or not entries:
        raise _bad("it has no 'settings' and 'stems'")
    values = {s.name: settings[s.name] for s in SETTINGS if s.in_manifest and s.name in settings}
    unknown = sorted(set(settings) - set(SETTING))
    if unknown:  # a newer musicstems' setting: refuse rather than re-run something else
        raise _bad(f"its settings {unknown} are not settings of this musicstems "
                   "(upgrade musicstems to re-run it)")
    parsed = []
    for name, entry in entries.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("prompt"), str):
            raise _bad(f"stem {name!r} has no 'prompt'")
        seed = entry.get("seed") if entry.get("seed_given") else None
        parsed.append(Stem(name, entry["prompt"], entry.get("gain_db", 0.0),
                           entry.get("pan", 0.0), _melody(entry), seed))
    return validate_compose_args(parsed, **values, progress=bool(progress))


def _read(manifest_or_path: Any) -> tuple[dict, str]:
    from .export import MANIFEST_NAME, load_manifest

    if isinstance(manifest_or_path, Mapping):
        return dict(manifest_or_path), "manifest"
    if isinstance(manifest_or_path, (str, os.PathLike)) and os.fspath(manifest_or_path):
        path = Path(manifest_or_path).expanduser()
        folder = path.parent if path.name == MANIFEST_NAME or path.suffix == ".json" else path
        if path.suffix == ".json" and path.name != MANIFEST_NAME:
            raise MusicStemsError(f"manifest={str(path)!r} is not a manifest.json; pass the "
                                  "manifest.json a saved song has, or its folder.",
                                  arguments={"manifest": str(path)})
        return load_manifest(folder), str(folder / MANIFEST_NAME)
    raise MusicStemsError(f"manifest={manifest_or_path!r} is neither a manifest (dict) nor a "
                          "path; pass Composition.manifest, 'out/manifest.json' or 'out/'.",
                          arguments={"manifest": manifest_or_path})


def compose_from(manifest_or_path: Any, *, progress: bool = False,
                 callback: Callable[[dict], None] | None = None, save: Any = None):
    """Compose a saved song again, with its edits, to the same audio.

    Parameters
    ----------
    manifest_or_path : dict or path
        ``Composition.manifest``, a song's ``manifest.json``, or the folder holding it.
    progress : bool
        Show a progress bar.
    callback : callable, optional
        As ``compose``'s.
    save : path or SaveTarget, optional
        Save the song there (checked before any generation).

    Returns
    -------
    Composition
        The same mix and stems, bit for bit, on the same machine with the same versions (and
        torch thread count); its manifest records the same edits.

    Raises
    ------
    MusicStemsError
        For anything that is not a song's manifest, before any work.

    Examples
    --------
    >>> from musicstems import compose, compose_from
    >>> song = compose({"drums": "techno drums", "bass": "acid bass"}, bpm=128, seed=3,
    ...                duration_s=4, backend="sketch", progress=False)
    >>> louder = song.remix(gain_db={"bass": 2})
    >>> again = compose_from(louder.manifest)
    >>> bool((again.mix == louder.mix).all())
    True
    """
    from .export import SaveTarget
    from .pipeline import render

    manifest, source = _read(manifest_or_path)
    edits = manifest.get("edits") or []
    composed = manifest.get("composed", {}).get("stems") if edits else None
    if edits and not isinstance(composed, Mapping):
        raise _bad("it has 'edits' but not the 'composed' stems they start from", source)
    spec = song_spec(manifest, stems=composed, progress=progress)
    replays = [_replay(edit, source, index) for index, edit in enumerate(edits)]
    target = SaveTarget.of(save)
    if target is not None:
        target.check(list(manifest["stems"]), duration_s=spec.duration_s)
    song = render(spec, callback=callback)
    for replay in replays:
        song = replay(song, progress)
    if target is not None:
        song.save(target.directory, format=target.format, overwrite=target.overwrite,
                  midi=target.midi)
    return song


def _replay(edit: Any, source: str, index: int) -> Callable:
    """The call that redoes one recorded edit, checked before anything is composed."""
    kind = edit.get("edit") if isinstance(edit, Mapping) else None
    if kind == "regenerate" and isinstance(edit.get("stem"), str) and \
            isinstance(edit.get("seed"), int):
        def again(song, progress):
            return song.regenerate(edit["stem"], prompt=edit.get("prompt"), seed=edit["seed"],
                                   progress=progress)
        return again
    if kind == "remix":
        def again(song, progress):
            return song.remix(gain_db=edit.get("gain_db"), pan=edit.get("pan"),
                              mute=edit.get("mute"))
        return again
    raise _bad(f"edits[{index}] is {edit!r}, not a regenerate or remix this musicstems knows",
               source)
