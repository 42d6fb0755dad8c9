"""The stem cache's key: everything a generated stem depends on, as versioned JSON, hashed.

A stem's key is ``sha256`` of :func:`key_fields` written as canonical JSON (sorted keys, no
spaces, UTF-8). The fields, format :data:`KEY_FORMAT`:

============== ==================================================================================
field          what it holds
============== ==================================================================================
format         :data:`KEY_FORMAT`; a new layout of the fields gets a new number
backend        ``"musicgen"`` or ``"sketch"``
code           musicstems' version and a digest of its own source files, so an edited checkout
               never serves audio that other code made
versions       the installed versions of the libraries the backend computes with
machine        what decides ``"auto"`` and float rounding: OS, CPU architecture, model and the
               flags the precision policy reads, core count, thread and GPU environment
               variables (MusicGen only)
model          id and revision: for a hub id the Hugging Face cache's resolved commit, for a
               folder a digest of every file in it (:func:`model_revision`); MusicGen only
device         ``device`` and ``precision`` as requested (``"auto"`` included): with
               ``machine`` they decide what runs, and reading them needs no torch
prompt         the text sent to the model
seed           the stem's own seed (:func:`musicstems.stems.stem_seed`)
settings       guidance_scale, temperature, top_k, top_p, primer, harmony (MusicGen only; the
               sketch reads none of them)
duration_s     the song's length
conditioning   digests of what the stem hears or plays besides its text: the plan's shared part
               (tempo, key, meter, chords, form, genre, seed), the stem's own part (role, sound,
               notes) and, for ``Stem(melody=)``, the melody file's bytes
group          how many stems were sampled in the same batch (MusicGen only): batched matrix
               products may round differently for another batch size, so a stem made alone and
               one made among three are different entries
============== ==================================================================================

No torch or transformers import: a song whose stems are all cached loads no model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

__all__ = ["KEY_FORMAT", "key_fields", "stem_key", "model_revision", "source_digest",
           "machine_facts", "file_digest"]

KEY_FORMAT = 1

# the libraries each backend computes with: a new release may change the numbers
_VERSIONS_READ = {
    "musicgen": ("torch", "transformers", "numpy"),
    "sketch": ("numpy", "scipy"),
}
# the sampling settings each backend reads (the sketch renders its plan and reads none)
_SETTINGS_READ = {
    "musicgen": ("guidance_scale", "temperature", "top_k", "top_p", "primer", "harmony"),
    "sketch": (),
}
# CPU flags that decide precision="auto" (backends/cpu.py) or the kernels torch picks
_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
              "asimd", "sve")
_ENVIRONMENT = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
                "PYTORCH_ENABLE_MPS_FALLBACK")
_CHUNK = 1 << 20


def canonical_json(value: Any) -> bytes:
    """``value`` as the one byte string the key hashes: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """sha256 over musicstems' own ``.py`` files (relative path and bytes), once a process."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_info() -> tuple[str, list[str]]:
    """The CPU's model name and the flags of :data:`_CPU_FLAGS` it has (Linux: /proc/cpuinfo;
    elsewhere the platform's processor name and no flags)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor(), []
    model, flags = platform.processor(), set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name in ("model name", "cpu model") and model in ("", platform.processor()):
            model = value.strip()
        elif name in ("flags", "features"):
            flags.update(value.split())
    return model, sorted(flags.intersection(_CPU_FLAGS))


def _gpus() -> list[str]:
    """NVIDIA GPUs the driver lists (Linux), without asking torch."""
    folder = Path("/proc/driver/nvidia/gpus")
    try:
        return sorted(p.name for p in folder.iterdir())
    except OSError:
        return []


@functools.lru_cache(maxsize=1)
def machine_facts() -> dict[str, Any]:
    """What decides ``device``/``precision="auto"`` and float rounding on this machine, read
    without torch. A thread count set in the process (``torch.set_num_threads``) is not seen:
    pass ``cache=False`` for songs made that way."""
    model, flags = _cpu_info()
    return {"system": platform.system(), "arch": platform.machine(), "cpu": model,
            "cpu_flags": flags, "cores": os.cpu_count(), "gpus": _gpus(),
            "environment": {name: os.environ.get(name) for name in _ENVIRONMENT}}


def _folder_revision(folder: Path, memo: Mapping[str, Any] | None) -> tuple[str, dict]:
    """A digest of every file of a model folder (relative path and content), and the
    per-file digests by ``(size, mtime_ns, inode)`` so an unchanged file is read once."""
    memo = dict(memo or {})
    seen: dict[str, Any] = {}
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative.startswith(".") or "/." in relative:  # .cache/ and other tool state
            continue
        stat = path.stat()
        token = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}"
        content = memo.get(token) or file_digest(path)
        seen[token] = content
        digest.update(f"{relative}\0{content}\0".encode())
    return digest.hexdigest(), seen


def model_revision(model: str, memo: Mapping[str, Any] | None = None
                   ) -> tuple[str | None, dict]:
    """Which model ``model`` names, on this machine, without loading it.

    Parameters
    ----------
    model : str
        A hub id or a folder (as :func:`~musicstems.spec.validate_compose_args` left it).
    memo : mapping, optional
        File digests from an earlier call (:class:`~musicstems.cache.store.StemCache` keeps
        them), so a multi-GB weight file is hashed once per version of it.

    Returns
    -------
    revision : str or None
        ``"folder:<sha256>"`` over every file of a folder (config, weights, tokenizer), or
        ``"hub:<commit>"``: the commit the local Hugging Face cache's ``main`` resolves to, as
        ``from_pretrained`` loads it. None for a hub id not downloaded yet: no entry can be
        found then, and the stems made are stored under the commit downloaded.
    memo : dict
        The file digests used (empty for a hub id).
    """
    folder = Path(model)
    if folder.is_dir():
        revision, seen = _folder_revision(folder, memo)
        return f"folder:{revision}", seen
    from ..backends.hub import config_path

    config = config_path(model)
    if config is None:
        return None, {}
    # <cache>/models--org--name/snapshots/<commit>/config.json
    return f"hub:{config.parent.name}", {}


def _plan_digests(plan, name: str) -> dict[str, str]:
    """Digests of the plan's shared part (all but the stems' parts and the alignment
    reference) and of stem ``name``'s part: what its primer, chroma or sketch render from."""
    table = plan.to_dict()
    parts = table.pop("stems")
    table.pop("reference_stem", None)  # which stem alignment follows: not generation
    return {"plan": _sha256(canonical_json(table)), "part": _sha256(canonical_json(parts[name]))}


def key_fields(stem, spec, plan, *, group_size: int | None, revision: str | None,
               melody_digest: str | None = None) -> dict[str, Any]:
    """The key's fields for ``stem`` of ``spec`` (table in the module docstring).

    Parameters
    ----------
    stem : Stem
    spec : SongSpec
        Validated, with ``prompts`` built.
    plan : Plan
    group_size : int or None
        The batch the stem is sampled in (MusicGen); None for the sketch.
    revision : str or None
        :func:`model_revision` of ``spec.model`` (MusicGen).
    melody_digest : str, optional
        :func:`file_digest` of ``stem.melody``.
    """
    from ..stems import stem_seed

    musicgen = spec.backend == "musicgen"
    return {
        "format": KEY_FORMAT, "backend": spec.backend,
        "code": {"musicstems": _version("musicstems"), "source": source_digest()},
        "versions": {name: _version(name) for name in _VERSIONS_READ.get(spec.backend, ())},
        "machine": machine_facts() if musicgen else None,
        "model": {"id": spec.model, "revision": revision} if musicgen else None,
        "device": spec.device if musicgen else None,
        "precision": spec.precision if musicgen else None,
        "prompt": spec.prompts[stem.name], "seed": stem_seed(spec.seed, stem),
        "settings": {name: getattr(spec, name) for name in _SETTINGS_READ.get(spec.backend, ())},
        "duration_s": spec.duration_s,
        "conditioning": {**_plan_digests(plan, stem.name), "melody": melody_digest},
        "group": {"size": group_size} if musicgen else None,
    }


def stem_key(fields: Mapping[str, Any]) -> str:
    """The entry's name: sha256 (hex) of the fields' canonical JSON."""
    return _sha256(canonical_json(dict(fields)))
