"""Synchronised wall-clock timing, device ceilings, and a deadline so one call fits its lease."""

from __future__ import annotations

import statistics
import time

import torch

# Dense bf16 peak from NVIDIA's H100/H200 SXM datasheet (no sparsity); MFU is quoted against it.
DATASHEET_BF16 = 989e12


def timed(fn) -> tuple[float, object]:
    """(seconds, result) of fn(), with the device synchronised on both sides."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def repeat(fn, warmup: int, reps: int) -> tuple[list[float], list]:
    """Per-repeat seconds and results after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times, outs = [], []
    for _ in range(reps):
        t, out = timed(fn)
        times.append(t)
        outs.append(out)
    return times, outs


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def _event_ms(fn, reps: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ms = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        ms.append(start.elapsed_time(end))
    return statistics.median(ms)


def copy_bandwidth(gib: int = 2) -> float:
    """Device-to-device copy rate in bytes/s, counting bytes read plus bytes written."""
    n = gib * (1 << 30) // 2
    src = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    ms = _event_ms(lambda: dst.copy_(src), 20)
    if not torch.equal(dst, src):
        raise RuntimeError("device copy produced a different tensor")
    return 2 * n * 2 / (ms / 1e3)


def matmul_rate(n: int = 8192) -> float:
    """bf16 FLOP/s of an n x n x n product on random data."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    ms = _event_ms(lambda: a @ b, 10)
    return 2 * n**3 / (ms / 1e3)


class Deadline:
    """Skips work that would not finish inside the call's budget, and says so in the results."""

    def __init__(self, budget_s: float):
        self.end = time.monotonic() + budget_s

    def left(self) -> float:
        return self.end - time.monotonic()

    def allows(self, need_s: float) -> bool:
        return self.left() > need_s
