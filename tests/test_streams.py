"""Independent stems: a stem's audio depends on its own inputs only.

Each stem draws its codes from its own random stream, seeded with ``stem_seed(seed, stem)``,
and a batch's rows are in the order of the stems' names, so the stems' order and the other
stems' prompts change nothing of a stem at the same batch size (docs/backends.md says what a
different batch size changes). The controls show the property can fail: with one shared
stream -- the loop as it was -- changing one prompt changes the other stems' codes.
"""

from __future__ import annotations

import numpy as np
import pytest

from musicstems import compose

torch = pytest.importorskip("torch")

BASE = {"drums": "punchy four on the floor techno drums", "bass": "deep rolling acid bassline",
        "pads": "warm evolving analog pads"}
# style, tempo and key fixed: the plan, and so every prompt as sent and primer, stays the same
SONG = dict(style="dark berlin techno", bpm=128, key="A minor", duration_s=0.6, seed=7,
            device="cpu", precision="fp32", align=False, progress=False)


def _song(model, stems, **extra):
    return compose(stems, model=model, **{**SONG, **extra})


def test_stem_order_changes_no_stem(tiny_model):
    song = _song(tiny_model, BASE)
    reordered = _song(tiny_model, dict(reversed(list(BASE.items()))))
    assert list(reordered.stems) == ["pads", "bass", "drums"]  # the user's order is kept
    for name in BASE:
        np.testing.assert_array_equal(song.stems[name], reordered.stems[name])
    # one group, its rows in the order of the names, whatever order the stems came in
    assert song.manifest["backend"]["groups"] == [["bass", "drums", "pads"]]
    assert reordered.manifest["backend"]["groups"] == [["bass", "drums", "pads"]]


def test_another_stems_prompt_changes_only_that_stem(tiny_model):
    song = _song(tiny_model, BASE)
    changed = _song(tiny_model, {**BASE, "bass": "sub bass with a long tail"})
    for name in ("drums", "pads"):
        assert changed.prompts[name] == song.prompts[name]  # their inputs are unchanged
        np.testing.assert_array_equal(song.stems[name], changed.stems[name])
    # the control: the stem whose prompt changed is another stem
    assert not np.array_equal(song.stems["bass"], changed.stems["bass"])


def test_a_stems_seed_is_its_own(tiny_model):
    from musicstems import Stem

    song = _song(tiny_model, BASE)
    stems = [Stem(name, prompt, seed=99 if name == "pads" else None)
             for name, prompt in BASE.items()]
    reseeded = _song(tiny_model, stems)
    assert not np.array_equal(song.stems["pads"], reseeded.stems["pads"])
    for name in ("drums", "bass"):
        np.testing.assert_array_equal(song.stems[name], reseeded.stems[name])
    # and the song's seed reaches every stem
    other = _song(tiny_model, BASE, seed=8)
    for name in BASE:
        assert not np.array_equal(song.stems[name], other.stems[name])


def test_one_shared_stream_would_couple_the_stems(tiny_model):
    """The control for the tests above, at the level of the loop: with every draw on one
    global stream (``streams=None``, the loop as it was) a stem's codes depend on its row in
    the batch -- the random numbers a row gets are those of its place in each step's draw --
    so the same stems in another order get other codes; with one stream per stem they do
    not. (The rows here are in the order given: the backend sorts them by name.)"""
    from musicstems.backends.decoding import SamplingSettings, sample_codes
    from musicstems.backends.musicgen import load_model
    from musicstems.backends.runs import tokenize
    from musicstems.backends.sampling import stem_streams

    loaded = load_model(tiny_model, device="cpu", precision="fp32", quiet=True)
    settings = SamplingSettings(40, 3.0)

    def codes(prompts, seeds):
        inputs = tokenize(loaded, prompts)
        with torch.random.fork_rng(), torch.inference_mode():
            torch.manual_seed(3)
            out, _ = sample_codes(loaded.model, inputs["input_ids"], inputs["attention_mask"],
                                  settings, streams=None if seeds is None
                                  else stem_streams(seeds, "cpu"))
        return out[0]

    prompts = list(BASE.values())
    shared, shared_reversed = codes(prompts, None), codes(prompts[::-1], None)
    assert not torch.equal(shared[0], shared_reversed[2])  # coupled through the one stream
    own, own_reversed = codes(prompts, [1, 2, 3]), codes(prompts[::-1], [3, 2, 1])
    for row in range(3):
        assert torch.equal(own[row], own_reversed[2 - row])


def test_one_stem_is_a_group_of_one(tiny_model):
    from dataclasses import replace

    from musicstems.pipeline import generate_stems
    from musicstems.plan import make_plan
    from musicstems.spec import build_prompts, validate_compose_args

    spec = validate_compose_args(BASE, model=tiny_model, **SONG)
    plan = make_plan(spec)
    spec = replace(spec, prompts=build_prompts(spec, bpm=plan.bpm, key=plan.key))
    one = generate_stems([s for s in spec.stems if s.name == "bass"], plan, spec)
    assert list(one.stems) == ["bass"]
    assert one.report["groups"] == [["bass"]] and one.report["batch_size"] == 1
    assert one.report["random_streams"] == "one per stem, seeded with its seed"


@pytest.mark.parametrize("change", ["order", "prompt"])
def test_sketch_stems_are_independent_too(change):
    kwargs = dict(bpm=120, key="A minor", duration_s=4, seed=3, backend="sketch",
                  progress=False, align=False)
    base = compose(BASE, **kwargs)
    if change == "order":
        other = compose(dict(reversed(list(BASE.items()))), **kwargs)
        untouched = list(BASE)
    else:
        other = compose({**BASE, "bass": "sub bass with a long tail"}, **kwargs)
        untouched = ["drums", "pads"]
    for name in untouched:
        np.testing.assert_array_equal(base.stems[name], other.stems[name])
    if change == "prompt":  # the control: the plan still hears the changed stem's words
        assert base.manifest["stems"]["bass"]["prompt"] != other.manifest["stems"]["bass"][
            "prompt"]
