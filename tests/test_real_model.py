"""The real facebook/musicgen-small, when its weights are in the local Hugging Face cache.

This machine has no network, so here it is skipped; on a machine that has downloaded the model
once it checks the production path: hub id -> from_pretrained -> batched generate.
"""

from __future__ import annotations

import numpy as np
import pytest

from musicstems.backends.hub import musicgen_weights_cached
from musicstems.loudness import integrated_lufs

MODEL = "facebook/musicgen-small"


@pytest.mark.skipif(not musicgen_weights_cached(MODEL),
                    reason=f"{MODEL} weights are not in the local Hugging Face cache and this "
                           "machine has no network to download them")
def test_real_musicgen_small():
    from musicstems import compose

    song = compose({"drums": "punchy techno drums", "bass": "deep acid bassline"},
                   bpm=128, key="A minor", duration_s=3, seed=1, model=MODEL, progress=False)
    assert song.mix.shape == (2, 3 * 32000)
    assert integrated_lufs(song.mix, 32000) == pytest.approx(-14.0, abs=0.5)
    assert np.isfinite(song.mix).all()
