"""Memory: ``max_batch``, the batch's memory estimate against a budget, and a batch that does
not fit split in halves (an estimate above the budget, or an out-of-memory error), every split
recorded; a stem's audio is the same whichever way its song was split into batches of one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicstems import MusicStemsError, compose
from musicstems.backends.memory import estimate_batch_bytes, is_out_of_memory, plan_groups

torch = pytest.importorskip("torch")

STEMS = {"drums": "punchy techno drums", "bass": "deep acid bassline", "pads": "warm pads"}
SONG = dict(bpm=120, key="A minor", duration_s=0.5, seed=11, device="cpu", precision="fp32",
            align=False, progress=False)


def _song(model, **extra):
    return compose(STEMS, model=model, **{**SONG, **extra})


@given(count=st.integers(0, 200), max_batch=st.one_of(st.none(), st.integers(1, 300)))
@settings(max_examples=300, deadline=None)
def test_batches_cover_every_stem_in_as_few_equal_batches_as_allowed(count, max_batch):
    sizes = plan_groups(count, max_batch)
    assert sum(sizes) == count
    limit = count if max_batch is None else max_batch
    if count:
        assert len(sizes) == math.ceil(count / limit) and max(sizes) <= limit
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_the_kv_estimate_is_what_the_decoder_step_allocates(tiny_model):
    from musicstems.backends.decoding import DecoderStep
    from musicstems.backends.musicgen import load_model

    loaded = load_model(tiny_model, device="cpu", precision="fp32")
    for stems, positions in ((1, 40), (3, 117)):
        step = DecoderStep(loaded.model, 2 * stems, positions, loaded.prepared)
        allocated = sum(t.nbytes for t in step.keys + step.values)
        parts = estimate_batch_bytes(loaded.model.config, stems=stems, guided=True,
                                     positions=positions, prefill_positions=10, text_tokens=64,
                                     samples=16000, kv_bytes=4, activation_bytes=4)
        assert parts["kv_cache"] == allocated
        assert parts["total"] == sum(v for k, v in parts.items() if k != "total")


def test_max_batch_splits_the_song_and_each_stem_matches_its_batch_alone(tiny_model):
    whole = _song(tiny_model)
    assert whole.manifest["backend"]["groups"] == [["bass", "drums", "pads"]]
    pairs = _song(tiny_model, max_batch=2)
    report = pairs.manifest["backend"]
    assert report["groups"] == [["bass", "drums"], ["pads"]]
    assert report["batch_sizes"] == [2, 1] and report["memory"]["max_batch"] == 2
    assert pairs.manifest["settings"]["max_batch"] == 2
    singles = _song(tiny_model, max_batch=1)
    assert singles.manifest["backend"]["groups"] == [["bass"], ["drums"], ["pads"]]
    # a stem's audio depends on its own inputs and its batch's size: pads alone both times
    np.testing.assert_array_equal(singles.stems["pads"], pairs.stems["pads"])
    for name in STEMS:  # and each stem is still its own take, not a copy of another
        assert np.isfinite(pairs.stems[name]).all()
    assert not np.array_equal(pairs.stems["bass"], pairs.stems["drums"])


def test_a_batch_above_the_budget_is_halved_until_it_fits(tiny_model):
    singles = _song(tiny_model, max_batch=1)
    two, one = _song(tiny_model, max_batch=2).manifest["backend"]["memory"]["estimated_bytes"]
    assert two > one
    # a budget that holds one stem's batch but not two: every stem alone
    budget_gb = (one + two) / 2 / 1e9
    split = _song(tiny_model, memory_budget_gb=budget_gb)
    report = split.manifest["backend"]
    assert report["groups"] == [["bass"], ["drums"], ["pads"]]
    splits = report["memory"]["splits"]
    assert [s["stems"] for s in splits] == [3, 2] and splits[0]["into"] == [2, 1]
    assert all("above the budget" in s["reason"] for s in splits)
    assert report["memory"]["budget_bytes"] == int(budget_gb * 1e9)
    for name in STEMS:  # the same batches of one as max_batch=1 made: the same audio
        np.testing.assert_array_equal(split.stems[name], singles.stems[name])
    # the control: a budget that holds the whole song splits nothing
    roomy = _song(tiny_model, memory_budget_gb=10 * two / 1e9)
    assert roomy.manifest["backend"]["groups"] == [["bass", "drums", "pads"]]
    assert roomy.manifest["backend"]["memory"]["splits"] == []


def test_a_stem_that_alone_exceeds_the_budget_is_refused_before_sampling(tiny_model):
    steps = []
    with pytest.raises(MusicStemsError, match=r"memory_budget_gb") as refused:
        _song(tiny_model, memory_budget_gb=1e-6,
              callback=lambda event: steps.append(event) if event["stage"] == "generate"
              and event["step"] else None)
    assert "duration_s" in str(refused.value) and "int8" in str(refused.value)
    assert steps == []  # not one decoder step ran


def test_a_batch_that_runs_out_of_memory_is_halved_and_run_again(tiny_model, monkeypatch):
    from musicstems.backends import runs

    real = runs.run_musicstems
    tried = []

    def out_of_memory_above_one(loaded, inputs, *args, **kwargs):
        rows = inputs["input_ids"].shape[0]
        tried.append(rows)
        if rows > 1:  # what a device does when the batch does not fit
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(loaded, inputs, *args, **kwargs)

    monkeypatch.setattr(runs, "run_musicstems", out_of_memory_above_one)
    song = _song(tiny_model)
    monkeypatch.setattr(runs, "run_musicstems", real)
    report = song.manifest["backend"]
    assert tried == [3, 2, 1, 1, 1]
    assert report["groups"] == [["bass"], ["drums"], ["pads"]]
    assert [s["reason"].startswith("out of memory") for s in report["memory"]["splits"]] == \
        [True, True]
    singles = _song(tiny_model, max_batch=1)
    for name in STEMS:
        np.testing.assert_array_equal(song.stems[name], singles.stems[name])


def test_out_of_memory_is_recognised_on_every_device():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory."))
    assert is_out_of_memory(RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you "
        "tried to allocate 9663676416 bytes. Error code 12 (Cannot allocate memory)"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_the_cache_finds_stems_again_at_the_batch_max_batch_gives(tiny_model, tmp_path):
    first = _song(tiny_model, max_batch=2, cache=True, cache_dir=str(tmp_path))
    again = _song(tiny_model, max_batch=2, cache=True, cache_dir=str(tmp_path))
    assert first.manifest["backend"]["cache"]["hits"] == []
    assert again.manifest["backend"]["cache"]["hits"] == ["drums", "bass", "pads"]
    assert again.manifest["backend"]["cache"]["groups"] == {"drums": 2, "bass": 2, "pads": 1}
    for name in STEMS:
        np.testing.assert_array_equal(first.stems[name], again.stems[name])


@pytest.mark.parametrize("setting, value", [
    ("max_batch", 0), ("max_batch", -2), ("max_batch", 1.5), ("max_batch", "2"),
    ("max_batch", True), ("memory_budget_gb", 0), ("memory_budget_gb", -1.0),
    ("memory_budget_gb", float("nan")), ("memory_budget_gb", float("inf")),
    ("memory_budget_gb", 1e308), ("memory_budget_gb", "8GB"),
])
def test_bad_batch_settings_are_refused_at_the_door(setting, value):
    with pytest.raises(MusicStemsError, match=setting) as refused:
        compose(STEMS, model="facebook/musicgen-small", **{**SONG, setting: value})
    assert refused.value.argument == setting
