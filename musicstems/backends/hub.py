"""Where a model's files are: the local Hugging Face cache or a folder. No torch import here."""

from __future__ import annotations

from pathlib import Path

from ..spec import DEFAULT_MODEL

__all__ = ["weights_cached", "musicgen_weights_cached"]


def weights_cached(model: str) -> bool:
    """Whether ``model`` can load with no network: a saved folder, or a hub id whose config and
    weights are already in the local Hugging Face cache."""
    try:
        folder = Path(model).expanduser()
    except RuntimeError:  # "~someone" with no such user
        return False
    if folder.is_dir():
        return (folder / "config.json").is_file()
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers always brings huggingface_hub
        return False
    try:
        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            return False
        return any(isinstance(try_to_load_from_cache(model, name), str)
                   for name in ("model.safetensors", "pytorch_model.bin"))
    except ValueError:  # not a valid repo id
        return False


def musicgen_weights_cached(model: str = DEFAULT_MODEL) -> bool:
    """Whether the MusicGen ``model`` (default :data:`~musicstems.spec.DEFAULT_MODEL`) can load
    with no network; ``musicstems demo`` picks its backend by it."""
    return weights_cached(model)
