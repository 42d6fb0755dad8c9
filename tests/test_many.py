"""compose_many: many songs here, on a process pool, or on a Dask LocalCluster, with resume,
recorded failures and a worker killed mid-song; every song identical to compose() of its spec."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from musicstems import Composition, MusicStemsError, compose
from musicstems.many import _song_seed, compose_many

SKETCH = dict(backend="sketch", duration_s=3.0, progress=False)
SONGS = [
    {"name": "one", "stems": {"drums": "techno drums", "bass": "acid bass"}, "bpm": 124},
    {"name": "two", "stems": {"pads": "warm pads"}, "key": "D minor", "seed": 5},
    {"name": "three", "stems": {"drums": "breakbeat drums", "lead": "bright lead"}},
]


def reference(song: dict, **settings) -> Composition:
    rest = {k: v for k, v in song.items() if k not in ("name", "stems")}
    rest.setdefault("seed", _song_seed(song["name"]))
    return compose(song["stems"], **{**settings, **rest})


def assert_same_song(folder: Path, expected: Composition) -> None:
    saved = Composition.load(folder)
    np.testing.assert_array_equal(saved.mix, expected.mix)
    for name, audio in expected.stems.items():
        np.testing.assert_array_equal(saved.stems[name], audio)


def test_here_every_song_is_composed_then_skipped_and_a_changed_one_redone(tmp_path):
    summary = compose_many(SONGS, tmp_path, **SKETCH)
    assert sorted(summary.done) == ["one", "three", "two"] and summary.ok
    for song in SONGS:
        assert_same_song(tmp_path / song["name"], reference(song, **SKETCH))
    again = compose_many(SONGS, tmp_path, **SKETCH)
    assert again.done == [] and sorted(again.skipped) == ["one", "three", "two"]
    changed = [dict(SONGS[0], stems={"drums": "techno drums", "bass": "reese bass"}),
               *SONGS[1:]]
    third = compose_many(changed, tmp_path, **SKETCH)
    assert third.done == ["one"] and sorted(third.skipped) == ["three", "two"]
    assert_same_song(tmp_path / "one", reference(changed[0], **SKETCH))


def test_a_partly_written_folder_is_not_a_finished_song(tmp_path):
    compose_many(SONGS[:1], tmp_path, **SKETCH)
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    (tmp_path / "one" / manifest["files"]["stems"]["bass"]).unlink()  # a stem lost
    assert compose_many(SONGS[:1], tmp_path, **SKETCH).done == ["one"]
    assert_same_song(tmp_path / "one", reference(SONGS[0], **SKETCH))


def test_a_failing_song_is_recorded_and_the_others_finish(tmp_path, tiny_model):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken)
    for weights in broken.glob("*.safetensors"):
        weights.unlink()  # a model folder without weights: fails when it loads, not before
    songs = [SONGS[0], {"name": "bad", "stems": {"bass": "acid bass"}, "backend": "musicgen",
                        "model": str(broken), "device": "cpu"}, SONGS[1]]
    summary = compose_many(songs, tmp_path / "out", **SKETCH)
    assert sorted(summary.done) == ["one", "two"]
    assert list(summary.failed) == ["bad"] and "ModelLoadError" in summary.failed["bad"]
    assert not (tmp_path / "out" / "bad").exists()


@pytest.mark.parametrize("songs, match", [
    ("song.toml?", "is not a list of songs"),
    ([{"stems": {"a": "x"}}], "is not a song"),
    ([{"name": "../up", "stems": {"a": "x"}}], "name='../up'"),
    ([{"name": "a", "stems": {"a": "x"}}, {"name": "A", "stems": {"a": "y"}}], "both named"),
    ([{"name": "a", "stems": {"a": "x"}, "bmp": 120}], "did you mean bpm"),
    ([], "songs is empty"),
])
def test_bad_songs_are_refused_before_any_work(tmp_path, songs, match):
    with pytest.raises(MusicStemsError, match=match):
        compose_many(songs, tmp_path / "out", **SKETCH)
    assert not (tmp_path / "out").exists()


def test_without_dask_the_error_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(MusicStemsError, match=r"musicstems\[dask\]"):
        compose_many(SONGS, tmp_path, client=object(), **SKETCH)


def test_a_process_pool_gives_the_same_songs(tmp_path):
    with ProcessPoolExecutor(2) as pool:
        summary = compose_many(SONGS, tmp_path, executor=pool, **SKETCH)
    assert sorted(summary.done) == ["one", "three", "two"]
    for song in SONGS:
        assert_same_song(tmp_path / song["name"], reference(song, **SKETCH))


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_same_songs_and_survives_a_killed_worker(
        tmp_path, tiny_model):
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    tiny = dict(backend="musicgen", model=tiny_model, device="cpu", duration_s=1.5,
                progress=False, align=False)
    songs = [{"name": f"s{i}", "stems": {"drums": "techno drums", "bass": f"bass {i}"},
              "bpm": 120} for i in range(6)]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        killed = {}

        def kill_a_busy_worker():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                busy = [w for w, tasks in client.processing().items() if tasks]
                if busy:
                    pids = client.run(os.getpid, workers=busy[:1])
                    time.sleep(1.0)  # into the song: the model is loading or generating
                    killed.update(pids)
                    os.kill(next(iter(pids.values())), 9)
                time.sleep(0.05)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        summary = compose_many(songs, tmp_path, client=client, **tiny)
        killer.join()
    assert killed, "no worker was killed"
    assert sorted(summary.done) == [s["name"] for s in songs] and summary.ok
    for song in songs:
        assert_same_song(tmp_path / song["name"], reference(song, **tiny))


def write_song_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, bass in (("first", "acid bass"), ("second", "reese bass")):
        path = folder / f"{name}.toml"
        path.write_text(f'backend = "sketch"\nduration_s = 3\nbpm = 120\nseed = 4\n\n'
                        f'[stems]\ndrums = "techno drums"\nbass = "{bass}"\n')
        files.append(path)
    return files


def test_song_files_are_songs_named_after_their_files(tmp_path):
    from musicstems.songfile import read_song_file

    files = write_song_files(tmp_path / "songs")
    summary = compose_many(files, tmp_path / "out", progress=False)
    assert sorted(summary.done) == ["first", "second"]
    for path in files:
        stems, settings = read_song_file(path)
        expected = compose(stems, **{**settings, "progress": False})
        assert_same_song(tmp_path / "out" / path.stem, expected)


def test_the_cli_composes_a_folder_of_song_files_then_skips_them(tmp_path, capsys):
    from musicstems.cli import main

    write_song_files(tmp_path / "songs")
    assert main(["compose-many", str(tmp_path / "songs"), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    assert "2 done, 0 skipped, 0 failed" in capsys.readouterr().out
    assert main(["compose-many", str(tmp_path / "songs"), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    assert "0 done, 2 skipped, 0 failed" in capsys.readouterr().out
    assert main(["compose-many", str(tmp_path / "nothing"), "--out",
                 str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _tiny(tiny_model) -> dict:
    return dict(backend="musicgen", model=tiny_model, device="cpu", duration_s=1.0,
                progress=False, align=False)


def test_musicgen_songs_share_a_sampling_loop_up_to_max_batch_stems(tmp_path, tiny_model):
    from musicstems.export import load_manifest

    songs = [{"name": f"s{i}", "stems": {"drums": "techno drums", "bass": f"bass {i}"},
              "bpm": 120} for i in range(3)]
    together = compose_many(songs, tmp_path / "together", max_batch_stems=4,
                            **_tiny(tiny_model))
    alone = compose_many(songs, tmp_path / "alone", max_batch_stems=1, **_tiny(tiny_model))
    assert together.ok and alone.ok
    reports = {s["name"]: load_manifest(tmp_path / "together" / s["name"])["backend"]
               for s in songs}
    # two songs of two stems in one loop of four, the third alone
    assert [reports[n]["batch_sizes"] for n in ("s0", "s1", "s2")] == [[4], [4], [2]]
    assert all(r["groups"] == [["bass", "drums"]] for r in reports.values())
    for song in songs:  # each stem draws from its own stream: the same take either way
        assert load_manifest(tmp_path / "alone" / song["name"])["backend"]["batch_sizes"] == [2]
        assert_same_song(tmp_path / "together" / song["name"],
                         Composition.load(tmp_path / "alone" / song["name"]))


def test_a_song_that_fails_in_a_shared_loop_fails_alone(tmp_path, tiny_model, monkeypatch):
    from musicstems import pipeline

    real = pipeline.finish_stages

    def cursed(spec, *args, **kwargs):  # an injected fault in one song's later stages
        if any(s.prompt == "cursed bass" for s in spec.stems):
            raise RuntimeError("injected fault")
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(pipeline, "finish_stages", cursed)
    songs = [{"name": "good", "stems": {"drums": "techno drums", "bass": "acid bass"}},
             {"name": "bad", "stems": {"drums": "techno drums", "bass": "cursed bass"}}]
    summary = compose_many(songs, tmp_path, max_batch_stems=4, **_tiny(tiny_model))
    assert summary.done == ["good"] and list(summary.failed) == ["bad"]
    assert "injected fault" in summary.failed["bad"]
    assert Composition.load(tmp_path / "good").stems["bass"].shape[-1] == 32000
    assert not (tmp_path / "bad").exists()


def test_chunks_hold_at_most_max_batch_stems_of_one_loop(tmp_path):
    from musicstems.many import _requests, chunk_songs

    songs = [{"name": f"m{i}", "stems": {f"s{j}": "x" for j in range(n)},
              "duration_s": d, "backend": "musicgen"}
             for i, (n, d) in enumerate([(2, 4), (3, 4), (2, 8), (5, 4), (1, 4), (2, 8)])]
    songs.append({"name": "sk", "stems": {"a": "b"}, "backend": "sketch"})
    todo = [(name, spec, "") for name, spec in _requests(songs, {})]
    chunks = chunk_songs(todo, 4)
    names = [[item[0] for item in chunk] for chunk in chunks]
    assert names == [["m0", "m4"], ["m1"], ["m2", "m5"], ["m3"], ["sk"]]
    assert sorted(n for chunk in names for n in chunk) == sorted(s["name"] for s in songs)
    for chunk in chunks:
        assert len({item[1].duration_s for item in chunk}) == 1
        assert len(chunk) == 1 or sum(len(item[1].stems) for item in chunk) <= 4


def test_an_fsspec_url_gets_every_song_with_its_manifest_last(tmp_path):
    import io

    import fsspec
    import soundfile

    url = f"memory://musicstems-test-{os.getpid()}/out"
    summary = compose_many(SONGS, url, **SKETCH)
    assert sorted(summary.done) == ["one", "three", "two"]
    fs = fsspec.filesystem("memory")
    root = url.removeprefix("memory://")
    for song in SONGS:
        manifest = json.loads(fs.cat(f"{root}/{song['name']}/manifest.json"))
        expected = reference(song, **SKETCH)
        for name, relative in manifest["files"]["stems"].items():
            audio, rate = soundfile.read(io.BytesIO(fs.cat(f"{root}/{song['name']}/{relative}")),
                                         dtype="float32", always_2d=True)
            assert rate == expected.sample_rate
            np.testing.assert_array_equal(audio.T, expected.stems[name])
    assert compose_many(SONGS, url, **SKETCH).skipped == ["one", "two", "three"]
    # an upload cut short before its manifest is not a finished song: made again
    fs.rm(f"{root}/two/manifest.json")
    again = compose_many(SONGS, url, **SKETCH)
    assert again.done == ["two"] and again.skipped == ["one", "three"]
    fs.rm(root, recursive=True)


def test_a_file_url_on_a_process_pool_is_the_shared_folder(tmp_path):
    with ProcessPoolExecutor(2) as pool:
        summary = compose_many(SONGS, f"file://{tmp_path}/shared", executor=pool, **SKETCH)
    assert summary.ok and len(summary.done) == 3
    for song in SONGS:
        assert_same_song(tmp_path / "shared" / song["name"], reference(song, **SKETCH))


@pytest.mark.parametrize("out_dir, options, match", [
    ("nosuchprotocol://bucket/x", None, "cannot be opened"),
    ("memory://x", "anon", "storage_options"),
    ("folder", {"anon": True}, "storage_options= is for an fsspec URL"),
])
def test_a_bad_destination_is_refused_before_any_work(tmp_path, monkeypatch, out_dir, options,
                                                      match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MusicStemsError, match=match):
        compose_many(SONGS, out_dir, storage_options=options, **SKETCH)
    assert list(tmp_path.iterdir()) == []


def test_the_cli_takes_max_batch_stems_and_speaks_its_flag(tmp_path, capsys):
    from musicstems.cli import main

    write_song_files(tmp_path / "songs")
    assert main(["compose-many", str(tmp_path / "songs"), "--out", str(tmp_path / "out"),
                 "--max-batch-stems", "0"]) == 2
    assert "--max-batch-stems 0 is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["compose-many", str(tmp_path / "songs"), "--out", str(tmp_path / "out"),
                 "--max-batch-stems", "1", "--quiet"]) == 0
    assert "2 done" in capsys.readouterr().out


def test_a_song_of_a_shared_loop_that_cannot_be_saved_fails_alone(tmp_path, tiny_model,
                                                                   monkeypatch):
    from musicstems.destination import Destination

    real = Destination.save

    def full_disk_for_bad(self, song, name, fmt):  # an injected fault in one song's save
        if name == "bad":
            raise OSError(28, "No space left on device")
        return real(self, song, name, fmt)

    monkeypatch.setattr(Destination, "save", full_disk_for_bad)
    songs = [{"name": "good", "stems": {"drums": "techno drums", "bass": "acid bass"}},
             {"name": "bad", "stems": {"drums": "techno drums", "bass": "reese bass"}}]
    summary = compose_many(songs, tmp_path, max_batch_stems=4, **_tiny(tiny_model))
    assert summary.done == ["good"] and "No space left" in summary.failed["bad"]
    assert Composition.load(tmp_path / "good").manifest["backend"]["batch_sizes"] == [4]
