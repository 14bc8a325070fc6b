from __future__ import annotations

import itertools
import threading
import time

import pytest
import torch

from pixtools_worker_ml.tiling import run_parallel, tile_spans, torch_threads


@pytest.mark.parametrize(
    ("length", "tile", "overlap"),
    [(481, 128, 32), (321, 100, 10), (7, 4, 3), (64, 64, 8)],
)
def test_tile_spans_partition_length(length: int, tile: int, overlap: int) -> None:
    spans = tile_spans(length, tile, overlap, align=2)

    assert spans[0][0] == 0
    assert spans[-1][1] == length
    for (_, end, _, _), (start, _, _, _) in itertools.pairwise(spans):
        assert end == start
    for core_start, core_end, input_start, input_end in spans:
        assert input_start <= core_start < core_end <= input_end <= length
        assert core_start % 2 == 0
        assert input_start % 2 == 0


@pytest.mark.parametrize("length", [1155, 1156, 4243, 600, 3000, 5657])
def test_tile_windows_share_one_size(length: int) -> None:
    spans = tile_spans(length, 512, 32, align=2)
    sizes = [input_end - input_start for _, _, input_start, input_end in spans]

    assert len(spans) == -(-(length - 64) // 512)
    assert len(set(sizes[:-1])) == 1
    assert sizes[0] <= sizes[-1] <= sizes[0] + 1
    assert sizes[0] <= 576


@pytest.mark.parametrize("tile", [16, 64, 100, 512])
@pytest.mark.parametrize("overlap", [0, 8, 32])
def test_tile_cores_get_overlap_context(tile: int, overlap: int) -> None:
    for length in range(1, 1400, 37):
        spans = tile_spans(length, tile, overlap, align=2)

        assert spans[-1][1] == length
        for core_start, core_end, input_start, input_end in spans:
            assert input_end - input_start <= tile + 2 * overlap + 1 or len(spans) == 1
            if core_start > 0:
                assert core_start - input_start >= overlap
            if core_end < length:
                assert input_end - core_end >= overlap


def test_tiles_add_little_work_beyond_the_image() -> None:
    spans = tile_spans(1155, 512, 32, align=2)

    # Three windows of 428 pixels; fixed 576-pixel windows would cover 1729.
    assert sum(end - start for _, _, start, end in spans) <= 1155 + 2 * 2 * 32 + 2


def test_torch_threads_restored_after_error() -> None:
    with torch_threads(2):
        with pytest.raises(RuntimeError), torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("stop")
        assert torch.get_num_threads() == 2


def test_run_parallel_one_torch_thread_per_item() -> None:
    seen: dict[int, tuple[int, int]] = {}
    lock = threading.Lock()

    def work(item: int) -> None:
        time.sleep(0.01)
        with lock:
            seen[item] = (threading.get_ident(), torch.get_num_threads())

    with torch_threads(2):
        run_parallel(work, list(range(12)), workers=2)
        assert torch.get_num_threads() == 2

    assert sorted(seen) == list(range(12))
    assert {threads for _, threads in seen.values()} == {1}
    assert len({ident for ident, _ in seen.values()}) == 2
    assert threading.get_ident() not in {ident for ident, _ in seen.values()}


def test_run_parallel_stops_at_first_error() -> None:
    started: list[int] = []

    def work(item: int) -> None:
        started.append(item)
        if item == 1:
            raise ValueError(f"item {item} failed")
        time.sleep(0.3)

    with torch_threads(2):
        with pytest.raises(ValueError, match="item 1 failed"):
            run_parallel(work, list(range(40)), workers=2)
        assert torch.get_num_threads() == 2

    # At most one more item starts, on the thread that raised, before the rest
    # are cancelled.
    assert sorted(started)[:2] == [0, 1]
    assert len(started) <= 3
