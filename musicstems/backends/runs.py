"""The two ways the MusicGen backend samples a group of stems, and what each reports.

:func:`run_musicstems`: musicstems' loop, all stems of the group in one batch, each from its own
random stream, window by window (``windows.py``), then one codec decode of every frame.
:func:`run_generate`: transformers' ``generate``, the fallback where ``choose_sampler`` says
so. ``generate`` draws every row from torch's one global RNG, so there each stem is generated
alone, batch 1 under its own seed: a stem's audio depends on its own inputs on both paths.
"""

from __future__ import annotations

__all__ = ["TEXT_PAD_TOKENS", "tokenize", "run_musicstems", "run_generate", "timing_report"]

#: Prompts are padded to a multiple of this many tokens: a batch's padded length -- and so the
#: text encoder's and cross-attention's float rounding of every stem -- then changes with the
#: other stems' prompts only when the longest one crosses a multiple (musicstems' prompts are
#: typically 20-40 tokens); masked padding costs a few cross-attention columns.
TEXT_PAD_TOKENS = 64


def tokenize(loaded, prompts: list[str]) -> dict:
    """The prompts' ``input_ids`` and ``attention_mask`` [shape=(prompts, tokens)] on the
    model's device, padded to a multiple of :data:`TEXT_PAD_TOKENS`."""
    inputs = loaded.processor(text=prompts, padding=True, pad_to_multiple_of=TEXT_PAD_TOKENS,
                              return_tensors="pt")
    return {k: v.to(loaded.device) for k, v in inputs.items()}


def run_musicstems(loaded, inputs: dict, sampling, progress, heard, windows, streams):
    """musicstems' loop over ``windows``, then the codec decode ``decoding.decode_audio``
    picks.

    Parameters
    ----------
    loaded : musicgen.LoadedModel
    inputs : dict
        ``input_ids`` and ``attention_mask`` [shape=(stems, tokens)] (:func:`tokenize`).
    sampling : sampling.SamplingSettings
    progress : progress.StepProgress
        Called after each decoder step.
    heard : heard.Heard
        The primers and chromas.
    windows : list of windows.Window
    streams : list of torch.Generator
        One per stem (``sampling.stem_streams``).

    Returns
    -------
    audio : torch.Tensor [shape=(stems, channels, samples)]
        In the codec's dtype; the primer's samples first.
    ran : dict
        ``codec_decoder``, ``decoder_layers`` and ``kv_cache_positions``.
    """
    from .decoding import decode_audio
    from .primer import encode_primers
    from .windows import sample_windows

    model = loaded.model
    prefix = None if heard.values is None else encode_primers(model, heard.values)
    codes, report = sample_windows(model, inputs, sampling, windows, primer_codes=prefix,
                                   chromas=heard.chromas, frame_rate=loaded.frame_rate,
                                   streams=streams, prepared=loaded.prepared, on_step=progress)
    audio, codec_decoder = decode_audio(model, codes)
    return audio, {"codec_decoder": codec_decoder, **report}


def run_generate(loaded, prompts: list[str], sampling, progress, heard, seeds: list[int]):
    """transformers' ``generate``, one stem at a time: batch 1 under ``torch.manual_seed`` of
    the stem's seed, so each stem draws from its own stream here too.

    Call it inside a forked RNG (``musicgen._seeded``): it seeds the global RNG.

    Parameters
    ----------
    loaded, sampling, progress, heard
        As for :func:`run_musicstems` (one window: ``generate`` continues no codes).
    prompts : list of str
        Each stem's prompt as sent.
    seeds : list of int
        Each stem's seed (``stems.stem_seed``).

    Returns
    -------
    audio : torch.Tensor [shape=(stems, channels, samples)]
    ran : dict
        ``codec_decoder`` and ``decoder_layers``: transformers' own, inside ``generate``.
    """
    import torch
    from transformers import StoppingCriteriaList

    model, out = loaded.model, []
    for index, (prompt, seed) in enumerate(zip(prompts, seeds)):
        torch.manual_seed(seed)
        out.append(model.generate(
            **tokenize(loaded, [prompt]), **heard.row(index).generate_kwargs(model),
            do_sample=True, guidance_scale=sampling.guidance_scale,
            temperature=sampling.temperature, top_k=sampling.top_k,
            top_p=sampling.top_p if sampling.top_p > 0 else None,
            max_new_tokens=sampling.max_new_tokens,
            stopping_criteria=StoppingCriteriaList([progress.as_stopping_criterion()])))
    return torch.cat(out), {"codec_decoder": "transformers (inside generate)",
                            "decoder_layers": "transformers"}


def timing_report(load_start: float, start: float, end: float, progress) -> dict:
    """Seconds of the load, the whole generation and its parts, from the step clock.

    Parameters
    ----------
    load_start, start, end : float
        ``time.perf_counter()`` before the load, before sampling and after the decode.
    progress : progress.StepProgress
        Its clock of the first and the last decoder step.

    Returns
    -------
    dict
        ``load_s``, ``generate_s``, ``ms_per_step``, ``encode_s``, ``decode_s``.
    """
    steps = progress.total
    return {
        # load_s is ~0 when the model came from the cache
        "load_s": round(start - load_start, 3), "generate_s": round(end - start, 3),
        # the decoder loop alone: between the first and the last step (with a long song's
        # later windows' prefills in it)
        "ms_per_step": round(1000 * (progress.last_s - progress.first_s)
                             / max(steps - 1, 1), 2),
        # text encoder + first step, and the batched EnCodec decode of all stems
        "encode_s": round(progress.first_s - start, 3),
        "decode_s": round(end - progress.last_s, 3),
    }
