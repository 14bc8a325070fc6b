"""Timing loops and summary statistics (percentiles with linear interpolation)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0..100) of `values`, interpolating linearly.

    This is numpy's default "linear" method: the rank is q/100 * (n - 1).
    Raises ValueError for an empty sequence.
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be from 0 to 100, got {q}")
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    lower = math.floor(rank)
    upper = math.ceil(rank)
    if lower == upper:
        return ordered[lower]
    weight = rank - lower
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def summarize(values: Sequence[float], digits: int = 2) -> dict[str, Any]:
    """Count, mean, min, p50, p90, p99 and max of `values`, rounded to `digits`.

    An empty sequence gives count 0 and None for every statistic.
    """
    if not values:
        return {
            "count": 0,
            "mean": None,
            "min": None,
            "p50": None,
            "p90": None,
            "p99": None,
            "max": None,
        }
    return {
        "count": len(values),
        "mean": round(sum(values) / len(values), digits),
        "min": round(min(values), digits),
        "p50": round(percentile(values, 50), digits),
        "p90": round(percentile(values, 90), digits),
        "p99": round(percentile(values, 99), digits),
        "max": round(max(values), digits),
    }


@dataclass
class Samples:
    """Wall-clock and CPU times of repeated calls, in milliseconds."""

    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)

    def add(self, wall_seconds: float, cpu_seconds: float) -> None:
        self.wall_ms.append(wall_seconds * 1000)
        self.cpu_ms.append(cpu_seconds * 1000)

    @property
    def wall_p50(self) -> float:
        return percentile(self.wall_ms, 50)

    @property
    def cpu_p50(self) -> float:
        return percentile(self.cpu_ms, 50)


def time_call(function: Callable[[], Any], samples: Samples) -> Any:
    """Call `function` once, add its wall and process CPU time to `samples`.

    Process CPU time counts every thread of this process, so it stays close to the
    wall time for single-threaded work unless other processes take the CPU.
    """
    wall_start = time.perf_counter()
    cpu_start = time.process_time()
    result = function()
    samples.add(time.perf_counter() - wall_start, time.process_time() - cpu_start)
    return result


def ratio(numerator: float, denominator: float, digits: int = 3) -> float | None:
    """Return numerator / denominator rounded, or None when the denominator is 0."""
    if denominator == 0:
        return None
    return round(numerator / denominator, digits)
