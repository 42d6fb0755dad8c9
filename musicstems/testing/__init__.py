"""Test helpers: tiny random-weight MusicGen models, for tests and for trying musicstems without a download.

``tiny_musicgen(path)`` writes a complete model folder (text encoder, decoder, 32 kHz EnCodec-style
codec, tokenizer, feature extractor, generation config) with ``save_pretrained``, so that
``compose(..., model=path)`` goes through exactly the ``from_pretrained`` code path a real hub
model does. The audio it makes is noise-like: the weights are random.

Synthetic stems whose tempo, beat grid and key are known, for the alignment tests and benchmark
(one renderer for both): ``render_stem`` (drums, bass, chords, pad in A minor), ``legato_song``
and ``render_line`` (legato monophonic lines and drums rendered with the package's synth) and
``sketch_part`` (one stem of the sketch backend, moved off tempo, grid or key).
"""

from .material import (LINE_BEATS, LINES, legato_song, render_line, render_stem, sketch_part,
                       synth_tone)
from .models import build_random_musicgen, melody_config, musicgen_config, tiny_musicgen

__all__ = ["tiny_musicgen", "build_random_musicgen", "musicgen_config", "melody_config",
           "synth_tone", "render_stem", "LINES", "LINE_BEATS", "render_line", "legato_song",
           "sketch_part"]
