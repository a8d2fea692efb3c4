"""Wall-clock timing of encoder work for analyses that compare methods by measured time.

Ratios between methods are only meaningful when both sides run under the same machine
conditions: on a shared host the matmul rate drifts by 2x within seconds. So methods are
timed in interleaved rounds (A, B, C, A, B, C, ...) and each keeps its best round; CUDA
is synchronised around every call so queued GPU work is inside the timed region.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from .measure import synchronize


def wall_seconds(fn: Callable[[], Any], device: str = "cpu") -> tuple[float, Any]:
    """(seconds, result) of one call of fn, CUDA-synchronised before and after."""
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - t0, out


def interleaved_best(fns: Mapping[str, Callable[[], Any]], rounds: int = 1, device: str = "cpu") -> dict[str, float]:
    """Best-of-`rounds` seconds per named function, the functions taking turns every round."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1; got {rounds}")
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], wall_seconds(fn, device)[0])
    return best
