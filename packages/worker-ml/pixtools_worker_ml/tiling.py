"""Tile geometry of an image, and the threads that denoise its tiles side by side.

``tile_spans`` cuts one side of an image into overlapping windows. ``run_parallel``
runs one call per tile on several threads, each with a single torch thread, in
place of one tile at a time with torch's threads splitting every operation.

One thread per tile needs no barrier between the threads after each operation, so a
thread that loses its core for a while holds back only its own tile, and the other
takes the next tiles from the queue. bench/bench_tile_threads.py measured it on an
AMD EPYC with AVX2 only and 2 cores, with a 2 MP photo, pair-limited int8 and one
view. The medians of 5 rounds were 2.22 s per megapixel this way, 2.56 with two
torch threads on one tile at a time, and 4.46 on one thread. With another process
spinning on one of the two cores they were 3.36, 6.25 and 4.13 s/MP, so sharing
every operation between two threads was then slower than one thread alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

import torch

ItemT = TypeVar("ItemT")
# One side of a tile: core start and end, input window start and end.
Span = tuple[int, int, int, int]


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def tile_spans(length: int, tile: int, overlap: int, align: int) -> list[Span]:
    """Split ``[0, length)`` into (core_start, core_end, input_start, input_end).

    Input windows are at most ``tile + 2 * overlap`` long, and the fewest windows
    that fit are spread evenly over the length, so they all share one size (the
    last may be up to ``align - 1`` pixels longer, to end at an odd ``length``).
    oneDNN builds its kernels for each input shape, and one shape per image keeps it
    from rebuilding them tile after tile. Neighbouring windows overlap by at least
    ``2 * overlap`` and the core boundary sits in the middle, so every core has at
    least ``overlap`` pixels of real context on each inner side. Even spreading
    keeps the extra work near ``2 * overlap`` per boundary. For example, a 1155-pixel
    side with 512-pixel tiles and 32 of overlap runs three windows of 428 pixels
    (1285 in all, the last one a pixel longer), where fixed 576-pixel windows ran
    1729.
    Starts fall on multiples of ``align``, so the tiles see the same
    pixel-unshuffle phase as a whole-image pass.
    """
    overlap = round_up(overlap, align)
    longest = round_up(tile, align) + 2 * overlap
    if tile <= 0 or length <= longest:
        return [(0, length, 0, length)]

    count = -(-(length - 2 * overlap) // round_up(tile, align))
    window = round_up(-(-(length + (count - 1) * 2 * overlap) // count), align)
    # Rounding the starts down to ``align`` can take up to ``align - 1`` pixels
    # from an overlap, and one or two steps of ``align`` make up for it.
    while window < length:
        spans = _spread_windows(length, count, window, align)
        if _context_is_enough(spans, length, overlap):
            return spans
        window += align
    return [(0, length, 0, length)]


def _spread_windows(length: int, count: int, window: int, align: int) -> list[Span]:
    last_start = (length - window) // align * align
    starts = [
        last_start * index // (count - 1) // align * align for index in range(count)
    ]
    ends = [start + window for start in starts[:-1]] + [length]
    cuts = [0]
    for index in range(count - 1):
        middle = (starts[index + 1] + ends[index]) // 2
        cuts.append(middle // align * align)
    cuts.append(length)
    return [
        (cuts[index], cuts[index + 1], starts[index], ends[index])
        for index in range(count)
    ]


def _context_is_enough(spans: list[Span], length: int, overlap: int) -> bool:
    for core_start, core_end, input_start, input_end in spans:
        if core_start >= core_end:
            return False
        if core_start > 0 and core_start - input_start < overlap:
            return False
        if core_end < length and input_end - core_end < overlap:
            return False
    return True


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Set torch's thread count for the block, and restore the previous one after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_parallel(
    work: Callable[[ItemT], None], items: Sequence[ItemT], workers: int
) -> None:
    """Call ``work`` on every item from ``workers`` threads, one torch thread each.

    Items start in order, each on the first free thread. Once an item raises, the
    items not yet started are cancelled, and the first exception in item order is
    raised after the running ones have ended. torch's thread count is process-wide,
    so torch work that other threads of this process start meanwhile may run on one
    thread too. The ML worker runs one task at a time per process.
    """
    with torch_threads(1):
        pool = ThreadPoolExecutor(workers, thread_name_prefix="denoise-tile")
        try:
            futures = [pool.submit(work, item) for item in items]
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    for future in futures:
        if not future.cancelled():
            future.result()
