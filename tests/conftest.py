"""Shared fixtures: a tiny random-weight MusicGen saved to disk, and one song composed with it;
every test's stem cache in a folder of its own.

The tiny model goes through the same ``from_pretrained`` path as a hub model. Tests that only
read a song share one, composed once per session. The song is pinned to ``device="cpu"``: on a
machine with a GPU ``"auto"`` would pick it, and a CPU song is what the other tests compare with
(same seed, same audio) and what their tolerances were set on.
"""

from __future__ import annotations

import pytest

TINY_STEMS = {
    "drums": "punchy four on the floor techno drums",
    "bass": "deep rolling acid bassline",
    "pads": "warm evolving analog pads",
}


@pytest.fixture(autouse=True)
def stem_cache_folder(tmp_path_factory, monkeypatch):
    """The stem cache off unless a test asks for it (``cache=True``), and then in a folder of
    the test's own: no test writes to the user's cache, and two composes in one test that
    compare code paths (a monkeypatched sampler, int8 layers) both generate."""
    folder = tmp_path_factory.mktemp("stem-cache")
    monkeypatch.setenv("MUSICSTEMS_CACHE", "0")
    monkeypatch.setenv("MUSICSTEMS_CACHE_DIR", str(folder))
    monkeypatch.delenv("MUSICSTEMS_CACHE_SIZE_GB", raising=False)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from musicstems.testing import tiny_musicgen

    return str(tiny_musicgen(tmp_path_factory.mktemp("tiny-musicgen")))


@pytest.fixture(scope="session")
def tiny_song(tiny_model):
    from musicstems import compose

    return compose(TINY_STEMS, style="dark berlin techno", bpm=128, key="A minor",
                   duration_s=2.5, seed=7, model=tiny_model, device="cpu", align=False,
                   progress=False)
