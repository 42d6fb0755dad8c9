"""Two threads composing at once: the model is loaded once and each song is the one a single
thread makes (per-stem random streams, no shared random state, no state on the model)."""

from __future__ import annotations

import threading

import numpy as np


def test_two_threads_load_the_model_once_and_get_the_single_thread_songs(tmp_path):
    from musicstems import compose
    from musicstems.backends import musicgen
    from musicstems.testing import tiny_musicgen

    model = str(tiny_musicgen(tmp_path / "fresh-model", seed=3))  # not loaded by anyone yet
    songs = [dict(stems={"drums": "techno drums", "bass": "acid bass"}, seed=1),
             dict(stems={"pads": "warm pads", "lead": "bright lead"}, seed=2)]
    common = dict(bpm=120, key="A minor", duration_s=1.5, model=model, device="cpu",
                  precision="fp32", progress=False, cache=False)

    from transformers import MusicgenForConditionalGeneration

    loads = []  # a spy on the real loader: counts, then loads

    original = MusicgenForConditionalGeneration.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args[0] if args else kwargs.get("pretrained_model_name_or_path"))
        return original(cls, *args, **kwargs)

    results: dict[int, object] = {}
    errors = []
    start = threading.Barrier(2)

    def run(index):
        try:
            start.wait()
            results[index] = compose(songs[index]["stems"], seed=songs[index]["seed"], **common)
        except BaseException as error:  # surfaced below
            errors.append(error)

    MusicgenForConditionalGeneration.from_pretrained = classmethod(counting)
    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
    finally:
        MusicgenForConditionalGeneration.from_pretrained = classmethod(original)
    assert not errors, errors
    assert loads == [model]  # one load for both threads
    for index, song in enumerate(songs):
        alone = compose(song["stems"], seed=song["seed"], **common)
        np.testing.assert_array_equal(results[index].mix, alone.mix)
        for name, audio in alone.stems.items():
            np.testing.assert_array_equal(results[index].stems[name], audio)
    musicgen.release_models()
