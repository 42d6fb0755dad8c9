"""transformers' notices that are wrong about MusicGen, dropped; every other notice is kept.

transformers 5's composite ``MusicgenConfig`` checks its decoder's special tokens with the
generic rule (``0 <= id < vocab_size``), not the decoder config's own (``<= vocab_size``):
MusicGen's decoder embeds ``vocab_size + 1`` codes, its pad and start token being the last, so
every MusicGen (facebook/musicgen-small's pad 2048 of 2048 codes, the tiny test model's 64 of
64) logs two "must be within the vocabulary" warnings that are false.
"""

from __future__ import annotations

import logging
import re

__all__ = ["drop_false_musicgen_notices"]

# the id one past the last code: exactly MusicGen's pad/start token, nothing else matches
_FALSE_TOKEN_NOTICE = re.compile(
    r"Model config: (pad|bos|decoder_start)_token_id must be `None` or an integer within the "
    r"vocabulary \(between 0 and (\d+)\), got (\d+)\.")


class _MusicgenTokenFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        match = _FALSE_TOKEN_NOTICE.match(record.getMessage())
        return not (match and int(match.group(3)) == int(match.group(2)) + 1)


_FILTER = _MusicgenTokenFilter()


def drop_false_musicgen_notices() -> None:
    """Install the filter on transformers' config logger (once; idempotent)."""
    logger = logging.getLogger("transformers.configuration_utils")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
