"""The sampling half of MusicGen's loop: what ``generate`` samples and forces, step by step.

:class:`SamplingSettings` (guidance, temperature, top-k, top-p), :func:`process_logits` and
:func:`draw` (transformers' logits processors and multinomial draw, in their order: each stem from
its own random stream, :func:`stem_streams`, or all from torch's global RNG as ``generate``
draws them), :class:`DelayPattern` (where each codebook's codes are forced or sampled, laid out by
transformers' own ``build_delay_pattern_mask``) and :func:`run_steps`, the loop over decoder
steps that both the text loop (``decoding.sample_codes``) and the melody loop
(``melody.sample_melody_codes``) run. Imported only when MusicGen generation runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

__all__ = ["SamplingSettings", "process_logits", "stem_streams", "draw", "DelayPattern",
           "run_steps"]


@dataclass(frozen=True)
class SamplingSettings:
    """What the loop samples: ``max_new_tokens`` decoder steps, classifier-free guidance of
    ``guidance_scale`` (off at 1), then temperature, top-k and top-p (0: off), in
    ``generate``'s order."""

    max_new_tokens: int
    guidance_scale: float
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0  # 0: off

    @property
    def guided(self) -> bool:
        """Classifier-free guidance: a conditional and an unconditional row per prompt."""
        return self.guidance_scale > 1


def process_logits(scores: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    """transformers' logits processors for MusicGen, in their order: classifier-free guidance,
    temperature, top-k, top-p."""
    if settings.guided:
        cond, uncond = scores.split(scores.shape[0] // 2, dim=0)
        scores = uncond + (cond - uncond) * settings.guidance_scale
    if settings.temperature != 1.0:
        scores = scores / settings.temperature
    if settings.top_k:
        top_k = min(settings.top_k, scores.shape[-1])
        kth = torch.topk(scores, top_k)[0][..., -1, None]
        scores = scores.masked_fill(scores < kth, -math.inf)
    if settings.top_p and settings.top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(scores, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - settings.top_p)
        remove[..., -1:] = 0
        remove = remove.scatter(1, sorted_indices, remove)
        scores = scores.masked_fill(remove, -math.inf)
    return scores


def stem_streams(seeds, device) -> list[torch.Generator]:
    """One random stream per stem: a ``torch.Generator`` on ``device`` seeded with each of
    ``seeds`` (``musicstems.stems.stem_seed``).

    A generator seeded with s draws what torch's global RNG seeded with s draws, so a stem
    sampled alone from its stream gets the codes ``generate`` samples for it, batch 1, under
    ``torch.manual_seed(s)``; in a batch each stem still draws from its own stream only, so
    its codes do not depend on the other stems' prompts, order or number of draws.
    """
    return [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]


def draw(probs: torch.Tensor, streams: list[torch.Generator] | None = None) -> torch.Tensor:
    """One code per row of ``probs`` (rows, vocab).

    ``streams`` None: all rows in one draw on torch's global RNG, as ``generate`` draws them.
    Else one stream per stem, the rows split into as many equal blocks (a stem's codebooks,
    rows i*K .. (i+1)*K - 1 after guidance), each block drawn from its own stream -- the same
    draw ``generate`` makes for a batch of one.
    """
    if streams is None:
        return torch.multinomial(probs, num_samples=1).squeeze(1)
    blocks = probs.split(probs.shape[0] // len(streams), dim=0)
    return torch.cat([torch.multinomial(block, num_samples=1, generator=stream)
                      for block, stream in zip(blocks, streams)]).squeeze(1)


class DelayPattern:
    """Where MusicGen's codes are sampled and where they are forced, as ``generate`` lays
    them out: transformers' own ``build_delay_pattern_mask`` (mono and stereo) over the start
    token, a primer's codes if given, and ``max_new_tokens`` steps.

    Attributes
    ----------
    batch, num_codebooks, known, length : int
        Stems, codebooks, positions known before sampling (start token + primer frames), and
        the whole length.
    mask : torch.Tensor [shape=(batch * codebooks, length)]
        -1 where a code is sampled, else the code forced there (start token, primer, pads).
    codes : torch.Tensor [shape=(batch * codebooks, length)]
        The codes so far: the forced ones, the start token where a code is still to come.
    """

    def __init__(self, model, batch: int, max_new_tokens: int,
                 prefix_codes: torch.Tensor | None, device):
        num_codebooks = model.config.decoder.num_codebooks
        start_id = int(model.generation_config.decoder_start_token_id)
        self.pad_id = int(model.generation_config.pad_token_id)
        self.batch, self.num_codebooks = batch, num_codebooks
        self.known = 1 if prefix_codes is None else 1 + prefix_codes.shape[-1]
        self.length = self.known + max_new_tokens
        first = torch.full((batch * num_codebooks, 1), start_id, dtype=torch.long,
                           device=device)
        if prefix_codes is not None:
            first = torch.cat([first, prefix_codes.reshape(batch * num_codebooks, -1)], dim=1)
        _, self.mask = model.decoder.build_delay_pattern_mask(first, pad_token_id=start_id,
                                                              max_length=self.length)
        self.codes = torch.where(self.mask == -1, start_id, self.mask)

    def result(self) -> torch.Tensor:
        """The codes as ``generate`` hands them to the codec, the delay pattern undone:
        (1, batch, codebooks, frames)."""
        kept = self.codes[self.codes != self.pad_id]
        return kept.reshape(1, self.batch, self.num_codebooks, -1)


def run_steps(step, pattern: DelayPattern, settings: SamplingSettings, *,
              prefill: Callable[[torch.Tensor], torch.Tensor] | None = None,
              on_step: Callable[[int], Any] | None = None,
              streams: list[torch.Generator] | None = None) -> torch.Tensor:
    """Sample every code ``pattern`` leaves open, one decoder step at a time.

    ``prefill(seen)``, when given, runs the known positions (batch[*2], codebooks, known) in
    one pass and returns the last one's logits; else the first step is an ordinary ``step``
    call on the start token. Each step's logits go through ``generate``'s processing and
    draw (:func:`process_logits`, :func:`draw`: from ``streams``, one per stem, or the global
    RNG when None); forced codes stay forced. Returns :meth:`DelayPattern.result`.
    """
    if streams is not None and len(streams) != pattern.batch:
        raise ValueError(f"{len(streams)} random streams for {pattern.batch} stems")
    guided = settings.guided
    batch, num_codebooks, known = pattern.batch, pattern.num_codebooks, pattern.known
    codes = pattern.codes
    for t in range(known - 1, pattern.length - 1):
        if t == known - 1 and prefill is not None:
            seen = codes[:, :known].view(batch, num_codebooks, known)
            logits = prefill(seen.repeat(2, 1, 1) if guided else seen)
        else:
            last = codes[:, t].view(batch, num_codebooks)
            logits = step(last.repeat(2, 1) if guided else last)
        sampled = draw(F.softmax(process_logits(logits, settings), dim=-1), streams)
        forced = pattern.mask[:, t + 1]
        codes[:, t + 1] = torch.where(forced == -1, sampled, forced)
        if on_step is not None:
            on_step(t + 2 - known)
    return pattern.result()
