"""First contact with the hub: a model that is neither cached nor downloadable is refused at
once, with one message naming the fixes, before torch or transformers load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from musicstems import ModelLoadError, compose
from musicstems.backends import hub

# an id no one owns: refused on a machine without network (hub unreachable) and on one with
# network (the hub does not know it) alike
NO_SUCH_MODEL = "musicstems-tests/no-such-model-4c1d"
FIXES = ("backend='sketch'", "local folder", "HF_HUB_OFFLINE=1")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def test_offline_mode_refuses_before_torch_loads():
    code = (
        "import sys\n"
        "from musicstems import compose, ModelLoadError\n"
        "try:\n"
        f"    compose({{'bass': 'deep bass'}}, duration_s=2, seed=1, model={NO_SUCH_MODEL!r},\n"
        "            progress=False)\n"
        "except ModelLoadError as exc:\n"
        "    print(exc)\n"
        "    print(exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__))\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    done = _run(code, HF_HUB_OFFLINE="1")
    message, no_chain, loaded = done.stdout.strip().splitlines()
    assert "HF_HUB_OFFLINE is set" in message and NO_SUCH_MODEL in message
    assert all(fix in message for fix in FIXES)
    assert no_chain == "True"
    assert loaded == "[]"  # nothing heavy was loaded for a model that cannot come
    assert done.stderr == ""  # no retries, no traceback chain


def test_cli_says_it_in_one_line_of_cli_words(tmp_path):
    out = tmp_path / "song"
    done = subprocess.run([sys.executable, "-m", "musicstems", "compose", "--stem",
                           "bass=deep bass", "--duration", "2", "--model", NO_SUCH_MODEL,
                           "--out", str(out)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "--backend sketch" in lines[0] and "--model" in lines[0]
    assert not out.exists()


def test_unknown_or_unreachable_model_is_refused(tiny_model):
    # the real hub: unreachable here, or answering that it does not know the id elsewhere
    with pytest.raises(ModelLoadError, match="no-such-model") as caught:
        compose({"bass": "deep bass"}, duration_s=2, seed=1, model=NO_SUCH_MODEL,
                progress=False)
    assert all(fix in str(caught.value) for fix in FIXES)
    assert caught.value.arguments == {"model": NO_SUCH_MODEL, "backend": "sketch"}


def test_a_closed_port_is_reported_as_unreachable(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard: nothing listens
    with pytest.raises(ModelLoadError, match=r"the hub \(127\.0\.0\.1\) cannot be reached"):
        hub.check_download(NO_SUCH_MODEL, timeout_s=1.0)


def test_a_missing_folder_is_not_taken_for_a_hub_id(tmp_path):
    for model in (str(tmp_path / "no" / "model"), "./saved-model", "~/models/musicgen"):
        with pytest.raises(ModelLoadError, match="not a folder holding a saved model"):
            hub.check_download(model)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not hub.weights_cached(str(empty))
    with pytest.raises(ModelLoadError, match="no config.json"):
        hub.check_download(str(empty))


def test_a_cached_model_never_asks_the_hub(tiny_model, monkeypatch):
    from huggingface_hub import constants

    # a saved folder loads with the hub unreachable: the probe is not even tried
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    assert hub.weights_cached(tiny_model)
    song = compose({"bass": "deep bass"}, duration_s=1, seed=1, model=tiny_model,
                   device="cpu", progress=False, align=False)
    assert song.stems["bass"].shape[-1] == song.sample_rate


def test_a_pickled_checkpoint_is_refused_and_no_false_notice_is_printed(tiny_model, tmp_path):
    import shutil

    import torch
    from transformers import MusicgenForConditionalGeneration

    from musicstems import ModelLoadError
    from musicstems.backends.musicgen import load_model, release_models

    pickled = tmp_path / "pickled"
    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model)
    # a pickled checkpoint, as older hub repos hold (transformers 5 writes safetensors only)
    pickled.mkdir()
    model.config.save_pretrained(pickled)
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    for extra in Path(tiny_model).iterdir():
        if extra.suffix != ".safetensors" and not (pickled / extra.name).exists():
            shutil.copy(extra, pickled / extra.name)
    assert not list(pickled.glob("*.safetensors")) and list(pickled.glob("*.bin"))
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        load_model(str(pickled), device="cpu", precision="fp32")
    release_models()
    # transformers says each notice once per process: a fresh one shows whether it is printed
    code = ("import sys; from musicstems.backends.musicgen import load_model; "
            "load_model(sys.argv[1], device='cpu', precision='fp32', quiet=False)")
    run = subprocess.run([sys.executable, "-c", code, tiny_model], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Loading weights" in run.stderr  # transformers' own output is there, not hidden
    assert "within the vocabulary" not in run.stderr
