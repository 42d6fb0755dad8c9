"""musicstems: compose music stem by stem.

One prompt per instrument, a shared style, tempo and key; every stem is generated separately,
aligned, loudness-matched and mixed into a finished track::

    from musicstems import compose
    song = compose({"drums": "punchy techno drums", "bass": "deep acid bassline"},
                   style="dark berlin techno", bpm=128, key="A minor", duration_s=10, seed=7)
    song.save("out/")
    bass = song.regenerate("bass")                  # one stem again, the others kept
    final = bass.remix(gain_db={"drums": -3})       # levels, pans, mutes: no generation
    again = compose_from(final.manifest)            # the same audio, bit for bit

``import musicstems`` is light: public names load on first use, and torch and transformers only
when MusicGen generation starts.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# pooch (which librosa imports on first use) imports tqdm.auto, and in a Jupyter kernel without
# ipywidgets that warns "IProgress not found" on the notebook's first cell. musicstems draws the
# text bar there on purpose (progress.progress_bar_class), so the advice is noise; only that
# message from tqdm is hidden.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")

# public name -> module that defines it; loaded on first attribute access (PEP 562)
_LAZY = {
    "compose": "pipeline",
    "render": "pipeline",
    "compose_many": "many",
    "BatchSummary": "many",
    "compose_from": "rerun",
    "Composition": "composition",
    "Stem": "spec",
    "Key": "spec",
    "parse_key": "spec",
    "SongSpec": "spec",  # what render() and make_plan() take
    "validate_compose_args": "spec",  # and how to make one
    "MusicStemsError": "errors",
    "ModelLoadError": "errors",
    "ExportError": "errors",
    "CallbackError": "errors",
    "SaveTarget": "export",
    "MusicStemsWarning": "errors",
    "measure_fit": "fit",
    "align_stems": "align",
    "AlignedStems": "align",
    "analyze": "analysis",
    "release_models": "backends.musicgen",
    "make_plan": "plan",
    "Plan": "plan",
}

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .align import AlignedStems, align_stems
    from .analysis import analyze
    from .backends.musicgen import release_models
    from .many import BatchSummary, compose_many
    from .pipeline import compose, render
    from .rerun import compose_from
    from .composition import Composition
    from .errors import (CallbackError, ExportError, ModelLoadError, MusicStemsError,
                         MusicStemsWarning)
    from .export import SaveTarget
    from .fit import measure_fit
    from .plan import Plan, make_plan
    from .spec import Key, SongSpec, Stem, parse_key, validate_compose_args


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'musicstems' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
