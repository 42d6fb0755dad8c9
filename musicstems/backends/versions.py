"""The torch and transformers releases musicstems' own sampling path was tested against.

The path -- the decoder step and KV cache (``decoding.py``, ``int8_layers.py``), the logits
processing, the windowed codec (``codec.py``) -- re-implements what transformers' ``generate``
does, reads transformers' MusicGen and EnCodec internals (module layout,
``build_delay_pattern_mask``, the order of the logits processors and of the RNG draws) and
calls private torch ops. A release that changes any of them can change the songs without an
error, so on a release not listed here the backend runs ``generate`` itself, and the manifest
says so. No torch import here: the gate is a pure function of the version strings.
"""

from __future__ import annotations

import re

__all__ = ["TESTED_VERSIONS", "untested_reason", "installed_versions"]

#: Per library, the (major, minor) releases the custom path was tested against. Granularity is
#: major.minor: both projects change internals and private ops in minor releases and keep patch
#: releases to fixes, so a patch release is taken as tested (a table of patch releases would send
#: every user of a fixed release to the slow path); a pre-release of a listed minor counts as it.
#: To widen this table, run tests/test_decoding.py on the new release: its tests that compare
#: the loop's codes with ``generate``'s bit for bit (and the windowed codec with transformers'
#: decode, tests/test_codec.py) are the guard. Add the release only when they all pass.
TESTED_VERSIONS = {
    "torch": ((2, 13),),
    "transformers": ((5, 25),),
}

_RELEASE = re.compile(r"^\s*v?(\d+)\.(\d+)")


def _release(version: str) -> tuple[int, int] | None:
    """(major, minor) of a version string such as ``"2.13.0+cpu"`` or ``"5.25.0.dev0"``, or
    None where it does not start with two numbers."""
    match = _RELEASE.match(version)
    return None if match is None else (int(match.group(1)), int(match.group(2)))


def untested_reason(torch_version: str, transformers_version: str) -> str | None:
    """Why musicstems' own sampling path must not run with these releases (None: it may).

    Parameters
    ----------
    torch_version, transformers_version : str
        ``torch.__version__`` and ``transformers.__version__``.

    Returns
    -------
    str or None
        e.g. ``"torch 2.14.0 is untested (tested: 2.13)"``; None when both releases are in
        :data:`TESTED_VERSIONS`.
    """
    reasons = []
    for library, version in (("torch", torch_version), ("transformers", transformers_version)):
        tested = TESTED_VERSIONS[library]
        if _release(version) not in tested:
            listed = ", ".join(f"{major}.{minor}" for major, minor in tested)
            reasons.append(f"{library} {version} is untested (tested: {listed})")
    return "; ".join(reasons) or None


def installed_versions() -> tuple[str, str]:
    """The installed torch and transformers versions (imports both)."""
    import torch
    import transformers

    return str(torch.__version__), str(transformers.__version__)
