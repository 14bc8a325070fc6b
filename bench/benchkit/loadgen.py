"""Open-loop load: requests start on a schedule, whether or not earlier ones ended.

A closed loop (each client waits for the response) slows down with the server and
hides overload. Here arrivals follow a Poisson process per phase, with a fixed
seed, so a spike really sends several times the baseline rate.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class Phase:
    """A stretch of constant arrival rate (requests per second)."""

    name: str
    seconds: float
    rate: float


@dataclass(frozen=True)
class Arrival:
    index: int
    phase: str
    offset: float


def arrival_schedule(phases: Sequence[Phase], seed: int = 0) -> list[Arrival]:
    """Poisson arrival offsets (seconds from the start) for consecutive phases."""
    rng = random.Random(seed)
    arrivals: list[Arrival] = []
    phase_start = 0.0
    for phase in phases:
        offset = phase_start
        phase_end = phase_start + phase.seconds
        while phase.rate > 0:
            offset += rng.expovariate(phase.rate)
            if offset >= phase_end:
                break
            arrivals.append(Arrival(len(arrivals), phase.name, offset))
        phase_start = phase_end
    return arrivals


async def run_open_loop(
    arrivals: Sequence[Arrival],
    fire: Callable[[Arrival], Coroutine[Any, Any, ResultT]],
) -> list[ResultT]:
    """Start `fire(arrival)` at each arrival's offset; wait for all of them."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: list[asyncio.Task[ResultT]] = []
    for arrival in arrivals:
        delay = start + arrival.offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(arrival)))
    return list(await asyncio.gather(*tasks))
