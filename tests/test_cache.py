"""The stem cache: a hit is the stored audio bit for bit and generates nothing; every input the
key covers makes a miss; damaged entries are never returned; concurrent writers, eviction, the
switches and the CLI.

Tests ask for the cache with ``cache=True`` (conftest turns the default off for the suite) and
keep it in their own ``tmp_path`` folders. What the backend generated is counted by a spy that
records each call's stems and hands it to the real backend.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import musicstems.pipeline as pipeline_module
from musicstems import MusicStemsError, Stem, compose
from musicstems.backends import get_backend
from musicstems.cache import StemCache, cache_folder, check_cache_dir
from musicstems.cache import key as key_module
from musicstems.cache.stage import stem_keys
from musicstems.cli import main
from musicstems.plan import make_plan
from musicstems.spec import build_prompts, validate_compose_args

from conftest import TINY_STEMS

SKETCH = dict(style="dark berlin techno", bpm=128, key="A minor", duration_s=1.5, seed=7,
              backend="sketch", align=False, progress=False)


@pytest.fixture
def spy(monkeypatch):
    """The stems each call to the real backend was asked for, in order."""
    calls: list[list[str]] = []

    class Counting:
        def __init__(self, backend):
            self.backend, self.name = backend, backend.name

        def generate(self, stems, plan, settings, *, callback=None):
            calls.append([s.name for s in stems])
            return self.backend.generate(stems, plan, settings, callback=callback)

    monkeypatch.setattr(pipeline_module, "get_backend", lambda name: Counting(get_backend(name)))
    return calls


def _entries(folder: Path) -> list[Path]:
    root = folder / "stems-v1"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


# -- hits and misses through compose ----------------------------------------------------------

def test_a_hit_is_bit_identical_and_generates_nothing(tmp_path, spy):
    first = compose(TINY_STEMS, **SKETCH, cache=True, cache_dir=tmp_path)
    assert spy == [list(TINY_STEMS)] and len(_entries(tmp_path)) == 3
    again = compose(TINY_STEMS, **SKETCH, cache=True, cache_dir=tmp_path)
    assert spy == [list(TINY_STEMS)]  # the second song called no backend
    assert np.array_equal(again.mix, first.mix)
    for name in TINY_STEMS:
        assert np.array_equal(again.stems[name], first.stems[name]), name
        assert again.manifest["stems"][name]["cached"] is True
        assert first.manifest["stems"][name]["cached"] is False
        assert again.manifest["stems"][name]["cache_key"] == \
            first.manifest["stems"][name]["cache_key"]
    cache = again.manifest["backend"]["cache"]
    assert cache["hits"] == list(TINY_STEMS) and cache["generated"] == []
    # the per-stem parts of the backend report come back with the stems
    assert again.manifest["backend"]["roles"] == first.manifest["backend"]["roles"]
    # the miss path changes nothing: the same song without the cache
    plain = compose(TINY_STEMS, **SKETCH, cache=False)
    assert np.array_equal(plain.mix, first.mix)
    assert plain.manifest["stems"]["bass"]["cached"] is False


@pytest.mark.parametrize("change", [
    {"seed": 8}, {"duration_s": 2.0}, {"style": "minimal techno"}, {"bpm": 126},
    {"key": "C minor"}])
def test_a_song_setting_change_generates_every_stem_again(tmp_path, spy, change):
    compose(TINY_STEMS, **SKETCH, cache=True, cache_dir=tmp_path)
    changed = compose(TINY_STEMS, **{**SKETCH, **change}, cache=True, cache_dir=tmp_path)
    assert spy == [list(TINY_STEMS), list(TINY_STEMS)]
    assert changed.manifest["backend"]["cache"]["hits"] == []
    # control: the unchanged song hits
    compose(TINY_STEMS, **SKETCH, cache=True, cache_dir=tmp_path)
    assert len(spy) == 2


def test_one_changed_stem_generates_only_that_stem_on_musicgen(tiny_model, tmp_path, spy):
    settings = dict(duration_s=0.6, seed=5, model=tiny_model, device="cpu", align=False,
                    progress=False, cache=True, cache_dir=tmp_path)
    first = compose(TINY_STEMS, **settings)
    edited = {**TINY_STEMS, "bass": "fat distorted reese bass"}
    second = compose(edited, **settings)
    assert spy == [list(TINY_STEMS), ["bass"]]
    assert second.manifest["backend"]["batch_size"] == 1  # the backend's own count
    for name in ("drums", "pads"):
        assert np.array_equal(second.stems[name], first.stems[name]), name
    assert not np.array_equal(second.stems["bass"], first.stems["bass"])
    cache = second.manifest["backend"]["cache"]
    assert cache["generated"] == ["bass"] and cache["groups"] == {"drums": 3, "bass": 1,
                                                                  "pads": 3}
    # the same edit again: the bass made alone is found again, nothing is generated
    third = compose(edited, **settings)
    assert len(spy) == 2 and np.array_equal(third.mix, second.mix)
    assert "load_s" not in third.manifest["backend"]  # nothing was loaded or run
    assert third.manifest["backend"]["primer"] == second.manifest["backend"]["primer"]
    # and a sampling setting is a miss for every stem
    compose(edited, **{**settings, "temperature": 0.9})
    assert spy[-1] == list(edited)


def test_a_song_whose_stems_are_all_cached_loads_no_model(tiny_model, tmp_path):
    settings = dict(duration_s=0.6, seed=5, model=tiny_model, device="cpu", align=False,
                    progress=False, cache=True, cache_dir=str(tmp_path))
    song = compose(TINY_STEMS, **settings)
    code = (
        "import sys, json, hashlib\n"
        "from musicstems import compose\n"
        f"song = compose({TINY_STEMS!r}, **{settings!r})\n"
        "print(json.dumps({'torch': 'torch' in sys.modules,\n"
        "    'transformers': 'transformers' in sys.modules,\n"
        "    'mix': hashlib.sha256(song.mix.tobytes()).hexdigest(),\n"
        "    'hits': song.manifest['backend']['cache']['hits']}))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(pipeline_module.__file__).parents[1]),
           "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    import hashlib

    assert seen["hits"] == list(TINY_STEMS)
    # no torch and no transformers in the process: no model can have loaded
    assert seen["torch"] is False and seen["transformers"] is False
    assert seen["mix"] == hashlib.sha256(song.mix.tobytes()).hexdigest()


# -- what the key covers ------------------------------------------------------------------------

def _keys(stems, *, group_size=3, revision="r", **settings) -> dict[str, str]:
    spec = validate_compose_args(stems, **settings)
    plan = make_plan(spec)
    spec = replace(spec, prompts=build_prompts(spec, bpm=plan.bpm, key=plan.key))
    return {name: key for name, (key, _) in
            stem_keys(spec.stems, plan, spec, group_size=group_size, revision=revision).items()}


@pytest.fixture
def fake_models(tmp_path):
    """Model folders as the door and the key read them (config.json only; nothing loads)."""
    out = {}
    for name, config in (("a", {"model_type": "musicgen", "n": 1}),
                         ("b", {"model_type": "musicgen", "n": 2}),
                         ("melody", {"model_type": "musicgen_melody"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
        out[name] = str(tmp_path / name)
    return out


BASE = dict(style="techno", bpm=128, key="A minor", duration_s=2.0, seed=7, device="cpu",
            precision="fp32")
# (what changes, compose settings, stems, key() overrides); every one must change the key
CHANGES = [
    ("seed", {"seed": 8}, None, {}),
    ("duration_s", {"duration_s": 2.5}, None, {}),
    ("guidance_scale", {"guidance_scale": 2.0}, None, {}),
    ("temperature", {"temperature": 0.9}, None, {}),
    ("top_k", {"top_k": 50}, None, {}),
    ("top_p", {"top_p": 0.5}, None, {}),
    ("precision", {"precision": "bf16"}, None, {}),
    ("device", {"device": "auto"}, None, {}),
    ("primer", {"primer": None}, None, {}),
    ("harmony", {"harmony": None}, None, {}),
    ("style (prompt as sent)", {"style": "minimal techno"}, None, {}),
    ("bpm", {"bpm": 130}, None, {}),
    ("key", {"key": "C minor"}, None, {}),
    ("backend", {"backend": "sketch"}, None, {}),
    ("stem seed", {}, {"bass": Stem("bass", "deep rolling acid bassline", seed=3)}, {}),
    ("bass prompt", {}, {"bass": Stem("bass", "fat reese bass")}, {}),
    ("group size", {}, None, {"group_size": 1}),
    ("model revision", {}, None, {"revision": "r2"}),
]


@pytest.mark.parametrize("what, settings, stems, overrides", CHANGES, ids=[c[0] for c in CHANGES])
def test_every_key_component_makes_a_miss(fake_models, what, settings, stems, overrides):
    base_stems = {n: Stem(n, p) for n, p in TINY_STEMS.items()}
    base = _keys(list(base_stems.values()), model=fake_models["a"], **BASE)
    assert _keys(list(base_stems.values()), model=fake_models["a"], **BASE) == base  # control
    changed_stems = {**base_stems, **(stems or {})}
    other = _keys(list(changed_stems.values()), model=fake_models["a"],
                  **{**BASE, **settings}, **overrides)
    moved = [name for name in base if base[name] != other[name]]
    if stems:  # a stem's own input moves its key alone
        assert moved == list(stems), what
    else:
        assert moved == list(base), what


def test_the_model_code_machine_and_library_versions_are_in_the_key(fake_models, monkeypatch):
    stems = list(TINY_STEMS)[:1]
    stems = {stems[0]: TINY_STEMS[stems[0]]}

    def key(model="a"):
        revision, _ = key_module.model_revision(fake_models[model])
        return _keys(stems, model=fake_models[model], revision=revision, **BASE)

    base = key()
    assert key("b") != base  # another model folder's content
    monkeypatch.setattr(key_module, "source_digest", lambda: "edited checkout")
    assert key() != base
    monkeypatch.undo()
    assert key() == base
    monkeypatch.setattr(key_module, "machine_facts", lambda: {"cpu_flags": ["avx512_vnni"]})
    assert key() != base
    monkeypatch.undo()
    real_version = key_module._version
    monkeypatch.setattr(key_module, "_version",
                        lambda name: "9.9" if name == "torch" else real_version(name))
    assert key() != base


def test_the_melody_files_content_is_in_the_key(fake_models, tmp_path):
    melody = tmp_path / "hum.wav"
    import soundfile

    soundfile.write(melody, np.zeros(3200, np.float32), 32000)
    stems = [Stem("pads", "warm pads", melody=str(melody))]
    before = _keys(stems, model=fake_models["melody"], **BASE)
    assert _keys(stems, model=fake_models["melody"], **BASE) == before
    soundfile.write(melody, np.full(3200, 0.1, np.float32), 32000)  # same name, new tune
    assert _keys(stems, model=fake_models["melody"], **BASE) != before


def test_the_sketch_key_leaves_out_what_the_sketch_does_not_read(fake_models):
    sketch = dict(BASE, backend="sketch")
    base = _keys(TINY_STEMS, model=fake_models["a"], **sketch)
    for change in ({"guidance_scale": 2.0}, {"temperature": 0.5}, {"precision": "int8"}):
        assert _keys(TINY_STEMS, model=fake_models["a"], **{**sketch, **change}) == base
    assert _keys(TINY_STEMS, model=fake_models["a"], **{**sketch, "seed": 9}) != base


def test_a_model_folder_is_named_by_its_content(tiny_model, tmp_path):
    revision, digests = key_module.model_revision(tiny_model)
    assert revision.startswith("folder:") and digests
    copy = Path(shutil.copytree(tiny_model, tmp_path / "copy"))
    assert key_module.model_revision(str(copy))[0] == revision  # moved, same model
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    assert key_module.model_revision(str(copy))[0] != revision
    # the memo: an unchanged file is not read again (wrong memo entries show they were used)
    memo = {token: "0" * 64 for token in digests}
    assert key_module.model_revision(tiny_model, memo)[0] != revision


def test_a_hub_id_is_named_by_the_commit_its_cache_resolves(tmp_path, monkeypatch):
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--org--tiny"
    for commit in ("a" * 40, "b" * 40):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert key_module.model_revision("org/tiny")[0] == "hub:" + "a" * 40
    (repo / "refs" / "main").write_text("b" * 40)  # a newer download
    assert key_module.model_revision("org/tiny")[0] == "hub:" + "b" * 40
    assert key_module.model_revision("org/not-downloaded")[0] is None


# -- the store ------------------------------------------------------------------------------

def _audio(value: float, samples: int = 1000) -> np.ndarray:
    return np.full((2, samples), value, np.float32)


KEYS = [f"{i:064x}" for i in range(1, 9)]


def test_a_corrupt_entry_is_detected_deleted_and_never_returned(tmp_path):
    store = StemCache(tmp_path)
    for key, value in zip(KEYS[:3], (0.1, 0.2, 0.3)):
        store.put(key, _audio(value), 32000, {"stem": {}})
    np.testing.assert_array_equal(store.get(KEYS[0]).audio, _audio(0.1))  # control
    audio = tmp_path / "stems-v1" / KEYS[0] / "audio.npy"
    data = bytearray(audio.read_bytes())
    data[-3] ^= 0xFF  # one byte of the samples
    audio.write_bytes(bytes(data))
    truncated = tmp_path / "stems-v1" / KEYS[1] / "audio.npy"
    truncated.write_bytes(truncated.read_bytes()[:500])
    (tmp_path / "stems-v1" / KEYS[2] / "entry.json").write_text("{not json")
    for key in KEYS[:3]:
        assert store.get(key) is None
        assert not (tmp_path / "stems-v1" / key).exists()


def test_a_corrupt_stem_is_generated_again_through_compose(tmp_path, spy):
    first = compose(TINY_STEMS, **SKETCH, cache=True, cache_dir=tmp_path)
    key = first.manifest["stems"]["bass"]["cache_key"]
    audio = tmp_path / "stems-v1" / key / "audio.npy"
    audio.write_bytes(audio.read_bytes()[:-64])
    again = compose(TINY_STEMS, **SKETCH, cache=True, cache_dir=tmp_path)
    assert spy == [list(TINY_STEMS), ["bass"]]
    assert np.array_equal(again.stems["bass"], first.stems["bass"])
    assert StemCache(tmp_path).get(key) is not None  # stored whole again


def _write_same_keys(folder: str, worker: int, barrier) -> None:
    """One writer: every key, the same audio as every other writer (same key, same stem)."""
    store = StemCache(folder)
    barrier.wait()
    for index, key in enumerate(KEYS):
        store.put(key, _audio(index / 10, 20000), 32000, {"stem": {"index": index}})
        found = store.get(KEYS[(index + worker) % len(KEYS)])
        if found is not None:
            assert found.report["stem"]["index"] == (index + worker) % len(KEYS)


def test_concurrent_writers_leave_whole_entries(tmp_path):
    context = multiprocessing.get_context("spawn")  # no fork of pytest's threads
    barrier = context.Barrier(4)
    workers = [context.Process(target=_write_same_keys, args=(str(tmp_path), i, barrier))
               for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    store = StemCache(tmp_path)
    for index, key in enumerate(KEYS):
        np.testing.assert_array_equal(store.get(key).audio, _audio(index / 10, 20000))
    assert sorted(p.name for p in (tmp_path / "stems-v1").iterdir()) == sorted(KEYS)  # no tmp


def test_eviction_drops_the_least_recently_used_by_the_caches_own_record(tmp_path):
    store = StemCache(tmp_path, limit_bytes=10**9)
    store.put(KEYS[0], _audio(0.1), 32000, {})
    store.put(KEYS[1], _audio(0.2), 32000, {})
    size = store.info()["bytes"] // 2
    assert store.get(KEYS[0]) is not None  # KEYS[0] is now the more recently used
    # the file system's times say the opposite: they must not decide
    for path in (tmp_path / "stems-v1" / KEYS[1]).iterdir():
        os.utime(path, (4e9, 4e9))
    limited = StemCache(tmp_path, limit_bytes=int(2.5 * size))
    limited.put(KEYS[2], _audio(0.3), 32000, {})
    assert sorted(p.name for p in _entries(tmp_path)) == [KEYS[0], KEYS[2]]
    assert limited.info()["bytes"] <= limited.limit_bytes
    # KEYS[0], last read before KEYS[2] was stored, is now the least recently used
    assert limited.get(KEYS[2]) is not None
    limited.put(KEYS[3], _audio(0.4), 32000, {})
    assert sorted(p.name for p in _entries(tmp_path)) == [KEYS[2], KEYS[3]]


def test_the_size_limit_is_settable_and_checked(tmp_path, monkeypatch):
    from musicstems.cache import limit_bytes, open_cache

    monkeypatch.setenv("MUSICSTEMS_CACHE_SIZE_GB", "0.5")
    assert limit_bytes() == 5 * 10**8 and open_cache(tmp_path).limit_bytes == 5 * 10**8
    for junk in ("lots", "-1", "0", "inf", "nan"):
        monkeypatch.setenv("MUSICSTEMS_CACHE_SIZE_GB", junk)
        with pytest.raises(MusicStemsError, match="MUSICSTEMS_CACHE_SIZE_GB"):
            compose({"drums": "techno drums"}, **SKETCH, cache=True, cache_dir=tmp_path)


def test_a_store_that_fails_warns_and_keeps_the_song(tmp_path, spy):
    from musicstems import MusicStemsWarning

    (tmp_path / "stems-v1").write_text("a file where the entries go")  # every store fails
    with pytest.warns(MusicStemsWarning, match="could not store"):
        song = compose(TINY_STEMS, **SKETCH, cache=True, cache_dir=tmp_path)
    assert song.manifest["backend"]["cache"]["store_errors"]
    plain = compose(TINY_STEMS, **SKETCH, cache=False)
    assert np.array_equal(song.mix, plain.mix)
    with pytest.warns(MusicStemsWarning):
        compose(TINY_STEMS, **SKETCH, cache=True, cache_dir=tmp_path)
    assert spy == [list(TINY_STEMS)] * 3  # nothing was stored, so nothing was found


# -- switches and folders ---------------------------------------------------------------------

def test_cache_off_writes_nothing_and_the_default_folder_is_the_environments(tmp_path,
                                                                          monkeypatch):
    mine = tmp_path / "mine"
    compose(TINY_STEMS, **SKETCH, cache=False, cache_dir=mine)
    assert not mine.exists()
    env_folder = tmp_path / "from-env"
    monkeypatch.setenv("MUSICSTEMS_CACHE_DIR", str(env_folder))
    compose(TINY_STEMS, **SKETCH)  # MUSICSTEMS_CACHE=0 (conftest): off
    assert not env_folder.exists()
    monkeypatch.delenv("MUSICSTEMS_CACHE")
    compose(TINY_STEMS, **SKETCH)  # on by default, in $MUSICSTEMS_CACHE_DIR
    assert len(_entries(env_folder)) == 3
    compose(TINY_STEMS, **SKETCH, cache_dir=mine)  # cache_dir wins over the variable
    assert len(_entries(mine)) == 3 and len(_entries(env_folder)) == 3
    assert cache_folder(None) == env_folder
    monkeypatch.delenv("MUSICSTEMS_CACHE_DIR")
    import platformdirs

    assert cache_folder(None) == Path(platformdirs.user_cache_dir("musicstems",
                                                                  appauthor=False))


def test_a_bad_cache_folder_is_refused_at_the_door(tmp_path, monkeypatch):
    file = tmp_path / "file"
    file.write_text("not a folder")

    def no_work(spec):
        raise AssertionError("work started")

    monkeypatch.setattr(pipeline_module, "make_plan", no_work)
    for bad, says in ((file, "is a file"), (file / "sub", "is under the file"),
                      (3, "not a folder path"), ("a\x00b", "not a usable folder path")):
        with pytest.raises(MusicStemsError, match=says) as caught:
            compose(TINY_STEMS, **SKETCH, cache=True, cache_dir=bad)
        assert caught.value.argument == "cache_dir"
    monkeypatch.setenv("MUSICSTEMS_CACHE", "maybe")
    with pytest.raises(MusicStemsError, match="MUSICSTEMS_CACHE='maybe'"):
        compose(TINY_STEMS, **SKETCH)
    monkeypatch.setenv("MUSICSTEMS_CACHE", "1")
    monkeypatch.setenv("MUSICSTEMS_CACHE_DIR", str(file))
    with pytest.raises(MusicStemsError, match="MUSICSTEMS_CACHE_DIR"):
        compose(TINY_STEMS, **SKETCH)
    # with the cache off the folder is not looked at
    assert check_cache_dir(str(file), enabled=False) == str(file)


# -- the command line -------------------------------------------------------------------------

def test_cache_info_and_clear_touch_only_the_caches_files(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MUSICSTEMS_CACHE")  # on by default
    folder = tmp_path / "cache"
    out = tmp_path / "song"
    assert main(["compose", "--stem", "drums=techno drums", "--stem", "bass=acid bass",
                 "--backend", "sketch", "--duration", "1", "--seed", "3", "--quiet",
                 "--no-align", "--cache-dir", str(folder), "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stems"]["bass"]["cached"] is False  # recorded in the song's files too
    assert len(manifest["stems"]["bass"]["cache_key"]) == 64
    (folder / "notes.txt").write_text("mine")
    (folder / "stems-v1" / "keep-me").mkdir()
    capsys.readouterr()
    assert main(["cache", "info", "--cache-dir", str(folder)]) == 0
    info = capsys.readouterr().out
    assert f"folder:  {folder}" in info and "entries: 2" in info and "limit 2 GB" in info
    assert main(["cache", "clear", "--cache-dir", str(folder)]) == 0
    assert "removed 2 cached stems" in capsys.readouterr().out
    assert (folder / "notes.txt").read_text() == "mine"
    assert [p.name for p in (folder / "stems-v1").iterdir()] == ["keep-me"]
    assert not (folder / "CACHEDIR.TAG").exists()
    assert main(["cache", "info", "--cache-dir", str(folder)]) == 0
    assert "entries: 0" in capsys.readouterr().out


def test_the_cli_no_cache_flag_and_errors_in_cli_words(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MUSICSTEMS_CACHE")  # on by default
    folder = tmp_path / "cache"
    argv = ["compose", "--stem", "drums=techno drums", "--backend", "sketch", "--duration",
            "1", "--seed", "3", "--quiet", "--no-align", "--cache-dir", str(folder)]
    assert main([*argv, "--no-cache", "--out", str(tmp_path / "a")]) == 0
    assert not folder.exists()
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0  # control: on, it stores
    assert len(_entries(folder)) == 1
    file = tmp_path / "file"
    file.write_text("x")
    capsys.readouterr()
    assert main(["cache", "info", "--cache-dir", str(file)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"musicstems: error: --cache-dir {file} is a file")
    assert "--no-cache" in error and "cache_dir" not in error
