"""Songs longer than the model's window: codes sampled window by window, in code space.

MusicGen attends over a window of at most ``generation_config.max_length`` frames (1500 for
facebook/musicgen-*: 30 s at 50 frames/s, the length it was trained on), fewer where the
decoder's position table (``max_position_embeddings``) with a melody model's conditioning
prefix would not hold them. A longer song is a chain of windows, as audiocraft's long form:

* window 0 starts from the start token and the primer's codes (the song's count-in);
* every later window is prompted with the last :data:`CONTEXT_SHARE` of a window of the codes
  so far -- forced where ``generate`` forces an audio prompt's codes, and run through the
  decoder in one prefill pass -- and samples new frames after them;
* all stems advance together, one batch per window, each stem drawing from its own random
  stream, which carries on from window to window;
* every window is a fresh call of the loop (``decoding.sample_codes``,
  ``melody.sample_melody_codes``): a fresh KV cache of at most one window, so memory does not
  grow with the song; the text is encoded again for it (the same prompt every window);
* a melody model hears, in each window, the plan's chroma of that window's time span.

The codes are decoded once, all frames of the song together (``decoding.decode_audio``):
EnCodec's decoder is convolutional, so a window boundary leaves no seam in the audio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = ["CONTEXT_SHARE", "Window", "window_frames", "plan_windows", "decoder_steps",
           "sample_windows"]

#: Share of a window that the next window keeps as its prompt: 10 s of MusicGen's 30 s, so each
#: window adds 20 s. audiocraft keeps 12 s; every kept frame is prefilled again and attended
#: over by every step of the window, so context costs time (benchmarks/RESULTS.md has the
#: figures), and 10 s still holds several bars at any tempo musicstems allows (20 bpm: 3 beats).
CONTEXT_SHARE = 1 / 3


@dataclass(frozen=True)
class Window:
    """One window on the song's code timeline (frame 0: the primer's first, else the song's).

    Attributes
    ----------
    start : int, frames
        Where its context begins.
    context : int, frames
        Frames it is prompted with: the primer's (window 0), else the last frames so far.
    new : int, frames
        Frames it samples after them.
    """

    start: int
    context: int
    new: int


def window_frames(model, prefix_positions: int = 0) -> int:
    """Frames one window holds (context and new together), from ``model``'s own config.

    Parameters
    ----------
    model : MusicgenForConditionalGeneration or MusicgenMelodyForConditionalGeneration
    prefix_positions : int
        Positions before the codes in the decoder's input (a melody model's chroma and text).

    Returns
    -------
    int
        ``generation_config.max_length``, capped so that the start token, the frames and the
        delay pattern's ``codebooks - 1`` steps fit the position table.
    """
    num_codebooks = model.config.decoder.num_codebooks
    positions = int(model.config.decoder.max_position_embeddings) - prefix_positions
    return min(int(model.generation_config.max_length), positions - num_codebooks)


def plan_windows(total_frames: int, primer_frames: int, frames_per_window: int
                 ) -> list[Window]:
    """The windows that sample ``total_frames`` (primer and song) ``frames_per_window`` at a
    time, each later one keeping :data:`CONTEXT_SHARE` of a window as its context.

    One window when the song fits: then the loop runs as it always has.
    """
    if frames_per_window <= primer_frames:
        raise ValueError(f"a window of {frames_per_window} frames cannot hold the primer's "
                         f"{primer_frames}")
    context = max(1, math.floor(frames_per_window * CONTEXT_SHARE))
    first = min(total_frames - primer_frames, frames_per_window - primer_frames)
    windows = [Window(0, primer_frames, first)]
    done = primer_frames + first
    while done < total_frames:
        kept = min(context, done)
        new = min(total_frames - done, frames_per_window - kept)
        windows.append(Window(done - kept, kept, new))
        done += new
    return windows


def decoder_steps(windows: list[Window], num_codebooks: int) -> int:
    """Decoder steps of all windows: each window's new frames and the delay pattern's
    ``codebooks - 1`` steps that complete its last frame."""
    return sum(w.new + num_codebooks - 1 for w in windows)


def _chroma_at(model, chromas, start_frame: int, frame_rate: int):
    """A melody model's ``input_features`` for a window that starts at code frame
    ``start_frame``: every stem's chroma from that time on (cut to the model's chroma length
    by ``melody_features``), or None when no stem has one."""
    from ..conditioning import CHROMA_HOP, CHROMA_RATE
    from .melody import melody_features

    if chromas is None:
        return None
    first = round(start_frame / frame_rate * CHROMA_RATE / CHROMA_HOP)
    return melody_features(model, [None if c is None else c[first:] for c in chromas])


def sample_windows(model, inputs: dict, sampling, windows: list[Window], *, primer_codes=None,
                   chromas=None, frame_rate: int, streams=None, prepared=None, on_step=None,
                   step_class=None):
    """Every window's codes, chained in code space, as the module's docstring says.

    Parameters
    ----------
    model : MusicgenForConditionalGeneration or MusicgenMelodyForConditionalGeneration
    inputs : dict
        ``input_ids`` and ``attention_mask`` [shape=(stems, tokens)]: the same prompts every
        window.
    sampling : sampling.SamplingSettings
        Guidance and the draws' settings; each window sets its own ``max_new_tokens``.
    windows : list of Window
        From :func:`plan_windows`.
    primer_codes : torch.Tensor [shape=(stems, codebooks, frames)], optional
        Window 0's context (``primer.encode_primers``).
    chromas : list of (np.ndarray [shape=(chroma frames, 12)] or None), optional
        A melody model's chroma per stem over the whole timeline (``Heard.chromas``).
    frame_rate : int, frames/s
        The codec's.
    streams : list of torch.Generator, optional
        One per stem (``sampling.stem_streams``), drawn from across all windows.
    prepared, on_step
        As for ``decoding.sample_codes``; ``on_step`` counts the steps of every window.
    step_class : callable, optional
        The text loop's decoder step (``decoding.sample_codes``).

    Returns
    -------
    codes : torch.Tensor [shape=(1, stems, codebooks, frames)]
        The whole timeline, primer frames first.
    report : dict
        ``decoder_layers``, and ``kv_cache_positions``: the largest cache a window allocated.
    """
    import torch

    from .decoding import DecoderStep, sample_codes
    from .melody import is_melody, sample_melody_codes

    melody = is_melody(model)
    num_codebooks = model.config.decoder.num_codebooks
    codes, report, positions = None, {}, 0
    for index, window in enumerate(windows):
        if index == 0:
            prefix = primer_codes
        else:
            prefix = codes[0, :, :, window.start:window.start + window.context]
        settings = replace(sampling, max_new_tokens=window.new + num_codebooks - 1)
        if melody:
            out, report = sample_melody_codes(
                model, inputs["input_ids"], inputs.get("attention_mask"),
                _chroma_at(model, chromas, window.start, frame_rate), settings,
                prepared=prepared, on_step=on_step, prefix_codes=prefix, streams=streams)
        else:
            out, report = sample_codes(
                model, inputs["input_ids"], inputs.get("attention_mask"), settings,
                prepared=prepared, on_step=on_step, prefix_codes=prefix, streams=streams,
                step_class=step_class or DecoderStep)
        positions = max(positions, 1 + window.context + settings.max_new_tokens)
        codes = out if codes is None else torch.cat([codes, out[..., window.context:]], dim=-1)
    return codes, {**report, "kv_cache_positions": positions}
