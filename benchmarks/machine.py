"""The machine a benchmark ran on, its memory bandwidth, and how busy other processes kept it."""

from __future__ import annotations

import os
import platform
import time

__all__ = ["describe", "read_bandwidth_gbs", "CpuShare"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni",
                              "amx_bf16", "amx_int8", "avx512_fp16")
                    return [f for f in line.split(":", 1)[1].split() if f in wanted]
    except OSError:
        pass
    return []


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError, AttributeError):
        return None


def read_bandwidth_gbs(repeats: int = 7, size_mib: int = 1024) -> float:
    """Memory read bandwidth in GB/s: the best of ``repeats`` sums of a ``size_mib`` fp32 tensor
    with torch's threads -- the same threads and the same streaming reads a decoder step does."""
    import torch

    x = torch.ones(size_mib * 2 ** 20 // 4)
    x.sum()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best / 1e9


def describe(bandwidth_gbs: float | None = None) -> dict:
    import torch
    import transformers

    return {
        "cpu": _cpu_model(), "flags": _cpu_flags(), "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "memory_gib": _memory_gib(),
        "read_bandwidth_gbs": bandwidth_gbs, "torch": torch.__version__,
        "transformers": transformers.__version__, "python": platform.python_version(),
    }


class CpuShare:
    """CPU time other processes took while a measurement ran, as a share of the machine
    (``/proc/stat`` counts every process on the machine, ``getrusage`` only ours and our
    children)."""

    def __init__(self):
        self.start = self._busy()
        self.own = self._own()
        self.wall = time.perf_counter()

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat", encoding="utf-8") as stat:
                fields = [int(v) for v in stat.readline().split()[1:]]
        except OSError:
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        import resource

        usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                     resource.RUSAGE_CHILDREN)]
        return sum(u.ru_utime + u.ru_stime for u in usage)

    def others(self) -> float | None:
        """Share of all cores used by other processes since this object was made, 0..1."""
        busy = self._busy()
        if busy is None or self.start is None:
            return None
        wall = time.perf_counter() - self.wall
        others = (busy - self.start) - (self._own() - self.own)
        return max(0.0, others / (wall * (os.cpu_count() or 1)))
