"""Where a model's files are: the local Hugging Face cache, a folder, or the hub, and whether
the hub can be reached before anything is downloaded. No torch import here."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ModelLoadError
from ..spec import DEFAULT_MODEL

__all__ = ["config_path", "weights_cached", "musicgen_weights_cached", "check_download",
           "PROBE_TIMEOUT_S"]

#: How long the hub gets to answer before musicstems says it cannot be reached, s. The hub
#: client itself retries five times with backoff (about half a minute) before it gives up.
PROBE_TIMEOUT_S = 3.0
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _error(message: str, model: str) -> ModelLoadError:
    # the arguments let the CLI respell them as its flags (--model, --backend sketch)
    return ModelLoadError(message + " " + _fixes(model),
                          arguments={"model": model, "backend": "sketch"})


def _cached_file(model: str, name: str) -> Path | None:
    """``name`` of hub id ``model`` in the local Hugging Face cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers always brings huggingface_hub
        return None
    try:
        cached = try_to_load_from_cache(model, name)
    except ValueError:  # not a valid repo id
        return None
    return Path(cached) if isinstance(cached, str) else None


def config_path(model: str) -> Path | None:
    """``model``'s config.json on this machine -- in its folder, or for a hub id in the local
    Hugging Face cache -- or None; no network, no torch."""
    try:
        folder = Path(model).expanduser()
    except RuntimeError:  # "~someone" with no such user
        return None
    if folder.is_dir():
        config = folder / "config.json"
        return config if config.is_file() else None
    return _cached_file(model, "config.json")


def weights_cached(model: str) -> bool:
    """Whether ``model`` can load with no network: a saved folder, or a hub id whose config and
    weights are already in the local Hugging Face cache."""
    config = config_path(model)
    if config is None:
        return False
    if Path(model).expanduser().is_dir():
        return True
    return any(_cached_file(model, name) is not None
               for name in ("model.safetensors", "pytorch_model.bin"))


def musicgen_weights_cached(model: str = DEFAULT_MODEL) -> bool:
    """Whether the MusicGen ``model`` (default :data:`~musicstems.spec.DEFAULT_MODEL`) can load
    with no network; ``musicstems demo`` picks its backend by it."""
    return weights_cached(model)


def _fixes(model: str) -> str:
    return ("Fixes: use backend='sketch', which needs no model; pass a local folder of a saved "
            f"MusicGen model; or download {model!r} once on a machine with network access (it is "
            "then cached and loads offline, also with HF_HUB_OFFLINE=1).")


def check_download(model: str, *, timeout_s: float = PROBE_TIMEOUT_S, announce: bool = True
                   ) -> int | None:
    """Make sure ``model`` can be downloaded before anything is: fail fast when it cannot.

    Call it for a model that :func:`weights_cached` says is not on this machine.

    Parameters
    ----------
    model : str
        A hub id (``"facebook/musicgen-small"``) or a folder.
    timeout_s : float, s
        How long the hub gets to answer.
    announce : bool
        Print the download's size to stderr before it starts.

    Returns
    -------
    int or None
        The bytes to download, where the hub said; None where it did not (the download then
        goes ahead and the hub client reports its own errors).

    Raises
    ------
    ModelLoadError
        For a folder that does not hold a saved model, offline mode (``HF_HUB_OFFLINE``), a hub
        that cannot be reached within ``timeout_s``, or an id the hub does not know; one
        message naming the fixes, with no chained traceback.
    """
    from huggingface_hub import constants

    try:
        folder = Path(model).expanduser()
    except RuntimeError:  # "~someone" with no such user: a path all the same
        folder = Path(model)
    if folder.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise _error(f"model={model!r} is not a folder holding a saved model (no config.json "
                     "there).", model)
    if constants.HF_HUB_OFFLINE:
        raise _error(f"model={model!r} is not in the local Hugging Face cache and "
                     "HF_HUB_OFFLINE is set, so it cannot be downloaded.", model)
    endpoint = urlparse(constants.ENDPOINT)
    proxied = any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"))
    if not proxied:  # behind a proxy only the hub client knows the way
        try:
            socket.create_connection((endpoint.hostname, endpoint.port or 443),
                                     timeout=timeout_s).close()
        except OSError as exc:
            raise _error(f"model={model!r} is not in the local Hugging Face cache and the hub "
                         f"({endpoint.hostname}) cannot be reached ({exc.strerror or exc}).",
                         model) from None
    size = _download_bytes(model, timeout_s)
    if announce and size:
        print(f"musicstems: downloading {model} ({size / 1e9:.1f} GB) into the Hugging Face "
              "cache; later runs load it from there.", file=sys.stderr, flush=True)
    return size


def _download_bytes(model: str, timeout_s: float) -> int | None:
    """Bytes of ``model``'s weights and files on the hub; raises for an id the hub does not
    know, None when the hub does not say."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import RepositoryNotFoundError

    try:
        info = HfApi().model_info(model, files_metadata=True, timeout=timeout_s)
    except RepositoryNotFoundError:
        raise _error(f"model={model!r} is not a model on the Hugging Face hub (or it is "
                     "private). Check the id, e.g. 'facebook/musicgen-small'.", model) from None
    except Exception:  # the hub answered oddly: let the download itself report
        return None
    sizes = [f.size or 0 for f in info.siblings or ()
             if f.rfilename.endswith(_WEIGHT_SUFFIXES) or f.rfilename.endswith(".json")]
    # a repo with both formats downloads only safetensors
    if any(f.rfilename.endswith(".safetensors") for f in info.siblings or ()):
        sizes = [f.size or 0 for f in info.siblings or ()
                 if f.rfilename.endswith((".safetensors", ".json"))]
    return sum(sizes) or None
