"""Handing a memory-mapped checkpoint's pages back to the kernel once a recipe converted them.

transformers reads ``.safetensors`` through ``mmap``: a weight that is converted (quantized,
cast, packed) leaves its source pages resident -- and counted in the process's RSS -- until every
tensor of the file is gone. The recipes call :func:`release_checkpoint_pages` layer by layer so
no second copy of the decoder stays resident.
"""

from __future__ import annotations

import os
import sys

__all__ = ["release_checkpoint_pages"]


def _checkpoint_mappings() -> list[tuple[int, int]]:
    """Address ranges of this process's memory-mapped ``.safetensors`` files (Linux)."""
    ranges = []
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and fields[-1].endswith(".safetensors"):
                low, high = (int(x, 16) for x in fields[0].split("-"))
                ranges.append((low, high))
    return ranges


def release_checkpoint_pages(tensors) -> int:
    """Give back to the kernel the pages of a memory-mapped checkpoint that only ``tensors``
    used, once they are no longer needed.

    ``madvise(MADV_DONTNEED)`` drops them now. Only whole pages inside a tensor and inside a
    file mapping are touched: dropping a clean file page is always safe (it would be read back
    from the file if anything touched it again). A no-op off Linux or when the tensors do not
    live in a mapped checkpoint.

    Returns
    -------
    int
        Bytes released.
    """
    if not sys.platform.startswith("linux"):
        return 0
    import ctypes

    tensors = [t for t in tensors if t is not None and t.device.type == "cpu"]
    if not tensors:
        return 0
    try:
        mappings = _checkpoint_mappings()
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return 0
    if not mappings:
        return 0
    page = os.sysconf("SC_PAGE_SIZE")
    madv_dontneed = 4
    released = 0
    for tensor in tensors:
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        low, high = -(-start // page) * page, end // page * page
        if high <= low or not any(a <= low and high <= b for a, b in mappings):
            continue
        if libc.madvise(ctypes.c_void_p(low), ctypes.c_size_t(high - low), madv_dontneed) == 0:
            released += high - low
    return released
