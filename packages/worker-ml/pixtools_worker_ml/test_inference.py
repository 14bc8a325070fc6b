from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from pixtools_shared.errors import ImageTooLargeError
from pixtools_worker_ml.data import add_gaussian_noise, psnr_uint8
from pixtools_worker_ml.inference import Denoiser, DenoiseTimeoutError, TileOptions
from pixtools_worker_ml.testimages import synthetic_photo, to_uint8


@pytest.fixture(scope="module")
def whole() -> Denoiser:
    # fp32 on every CPU, so the tiled copies below run the same network.
    return Denoiser.load(tiles=TileOptions(0, 0), precision="fp32", threads=1)


def noisy_pair(height: int, width: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    clean = synthetic_photo(height, width)
    return add_gaussian_noise(clean, sigma, seed=123), clean


def test_bundled_weights_beat_noisy_input(whole: Denoiser) -> None:
    noisy, clean = noisy_pair(160, 200, 25.0)

    restored = whole.denoise_array(noisy)

    noisy_psnr = psnr_uint8(noisy, clean)
    restored_psnr = psnr_uint8(restored, clean)
    assert restored.shape == clean.shape
    assert restored_psnr > noisy_psnr + 3.0, (noisy_psnr, restored_psnr)


def test_uint8_image_beats_noisy_input(whole: Denoiser) -> None:
    noisy, clean = noisy_pair(128, 144, 25.0)
    noisy_image = Image.fromarray(to_uint8(noisy), "RGB")

    result = whole.denoise_image(noisy_image)

    restored = np.asarray(result, dtype=np.float32) / 255.0
    assert result.mode == "RGB"
    assert result.size == (144, 128)
    assert psnr_uint8(restored, clean) > psnr_uint8(noisy, clean) + 3.0


def test_tiled_matches_whole_image(whole: Denoiser) -> None:
    noisy, clean = noisy_pair(150, 190, 25.0)
    tiled = Denoiser(
        whole.model, tiles=TileOptions(48, 32), precision="fp32", threads=1
    )

    whole_output = whole.denoise_array(noisy)
    tiled_output = tiled.denoise_array(noisy)

    difference = abs(psnr_uint8(whole_output, clean) - psnr_uint8(tiled_output, clean))
    assert difference < 0.01
    assert np.abs(whole_output - tiled_output).max() < 0.02


def test_tiled_uint8_output_matches(whole: Denoiser) -> None:
    noisy, _clean = noisy_pair(97, 131, 15.0)
    source = to_uint8(noisy)
    tiled = Denoiser(
        whole.model, tiles=TileOptions(32, 32), precision="fp32", threads=1
    )

    whole_output = whole.denoise_array(source)
    tiled_output = tiled.denoise_array(source)

    assert tiled_output.dtype == np.uint8
    changed = np.abs(whole_output.astype(int) - tiled_output.astype(int))
    assert changed.max() <= 1
    assert np.mean(changed > 0) < 0.01


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 3), (53, 37), (64, 33)])
def test_odd_sizes_keep_shape(whole: Denoiser, size: tuple[int, int]) -> None:
    width, height = size
    pixels = to_uint8(synthetic_photo(height, width))
    tiled = Denoiser(whole.model, tiles=TileOptions(16, 8), threads=1)

    for denoiser in (whole, tiled):
        result = denoiser.denoise_image(Image.fromarray(pixels, "RGB"))
        assert result.size == (width, height)
        assert result.mode == "RGB"


def test_rgba_alpha_passes_through(whole: Denoiser) -> None:
    noisy, _clean = noisy_pair(40, 56, 25.0)
    alpha = np.tile(np.arange(56, dtype=np.uint8) * 4, (40, 1))
    rgba = np.dstack([to_uint8(noisy), alpha])

    result = whole.denoise_image(Image.fromarray(rgba, "RGBA"))

    assert result.mode == "RGBA"
    assert np.array_equal(np.asarray(result)[..., 3], alpha)
    assert not np.array_equal(np.asarray(result)[..., :3], rgba[..., :3])


def test_greyscale_modes_round_trip(whole: Denoiser) -> None:
    grey = to_uint8(noisy_pair(30, 44, 25.0)[0].mean(axis=2))
    alpha = np.full((30, 44), 77, dtype=np.uint8)
    alpha[:, :10] = 0

    grey_result = whole.denoise_image(Image.fromarray(grey, "L"))
    la_result = whole.denoise_image(Image.fromarray(np.dstack([grey, alpha]), "LA"))

    assert grey_result.mode == "L"
    assert grey_result.size == (44, 30)
    assert la_result.mode == "LA"
    assert np.array_equal(np.asarray(la_result)[..., 1], alpha)


def test_icc_profile_is_kept(whole: Denoiser) -> None:
    image = Image.fromarray(to_uint8(synthetic_photo(16, 16)), "RGB")
    image.info["icc_profile"] = b"fake-profile-bytes"

    assert whole.denoise_image(image).info["icc_profile"] == b"fake-profile-bytes"


def test_pixel_cap_rejects_larger_image(whole: Denoiser) -> None:
    capped = Denoiser(whole.model, tiles=TileOptions(0, 0), max_pixels=1000, threads=1)
    at_cap = Image.new("RGB", (40, 25), (90, 120, 200))
    over_cap = Image.new("RGB", (41, 25), (90, 120, 200))

    assert capped.denoise_image(at_cap).size == (40, 25)
    with pytest.raises(ImageTooLargeError) as caught:
        capped.denoise_image(over_cap)
    assert caught.value.code == "image-too-large"
    assert "1025" in caught.value.message
    assert "at most 1000 pixels" in caught.value.message


def test_passed_deadline_raises(whole: Denoiser) -> None:
    pixels = to_uint8(synthetic_photo(20, 20))

    with pytest.raises(DenoiseTimeoutError) as caught:
        whole.denoise_array(pixels, deadline=time.monotonic() - 1.0)
    assert caught.value.code == "denoise-timed-out"


def test_unsupported_mode_raises(whole: Denoiser) -> None:
    with pytest.raises(ValueError, match="got CMYK"):
        whole.denoise_image(Image.new("CMYK", (8, 8)))


def record_tile_calls(
    denoiser: Denoiser, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[int, int]]:
    """Record the thread id and torch thread count of each run_tile call."""
    calls: list[tuple[int, int]] = []
    run_tile = denoiser.run_tile

    def recording(tile: np.ndarray) -> np.ndarray:
        calls.append((threading.get_ident(), torch.get_num_threads()))
        return run_tile(tile)

    monkeypatch.setattr(denoiser, "run_tile", recording)
    return calls


def test_parallel_tiles_match_serial_tiles(
    whole: Denoiser, monkeypatch: pytest.MonkeyPatch
) -> None:
    noisy, _clean = noisy_pair(150, 190, 25.0)
    tiles = TileOptions(48, 16)
    shared = Denoiser(
        whole.model, tiles=tiles, precision="fp32", threads=2, parallel_tiles=False
    )
    parallel = Denoiser(whole.model, tiles=tiles, precision="fp32", threads=2)
    calls = record_tile_calls(parallel, monkeypatch)

    expected = shared.denoise_array(noisy)
    result = parallel.denoise_array(noisy)

    callers = {ident for ident, _ in calls}
    assert len(callers) == 2
    assert threading.get_ident() not in callers
    assert torch.get_num_threads() == 2
    # One torch thread may add up a convolution in another order than two.
    assert np.abs(result - expected).max() < 1e-5


def test_leftover_tiles_run_with_every_thread(
    whole: Denoiser, monkeypatch: pytest.MonkeyPatch
) -> None:
    parallel = Denoiser(whole.model, tiles=TileOptions(48, 16), threads=2)
    calls = record_tile_calls(parallel, monkeypatch)

    # 150 rows and columns make three windows each: nine tiles for two threads.
    parallel.denoise_array(to_uint8(synthetic_photo(150, 150)))

    assert len(calls) == 9
    assert all(threads == 1 for _, threads in calls[:8])
    assert calls[8] == (threading.get_ident(), 2)


def test_tile_workers_by_option_and_count(whole: Denoiser) -> None:
    parallel = Denoiser(whole.model, tiles=TileOptions(48, 16), threads=2)
    shared = Denoiser(
        whole.model, tiles=TileOptions(48, 16), threads=2, parallel_tiles=False
    )
    untiled = Denoiser(whole.model, tiles=TileOptions(0, 0), threads=2)

    assert [parallel.tile_workers(count) for count in (1, 2, 9)] == [1, 2, 2]
    assert shared.tile_workers(9) == 1
    assert untiled.tile_workers(9) == 1
    assert whole.tile_workers(9) == 1


def test_fewer_tiles_than_threads_share_threads(
    whole: Denoiser, monkeypatch: pytest.MonkeyPatch
) -> None:
    parallel = Denoiser(whole.model, tiles=TileOptions(48, 16), threads=3)
    calls = record_tile_calls(parallel, monkeypatch)

    # A side of 100 pixels makes two windows, and one of 80 a single window.
    parallel.denoise_array(to_uint8(synthetic_photo(100, 100)))
    assert len(calls) == 4
    assert all(threads == 1 for _, threads in calls[:3])
    assert calls[3] == (threading.get_ident(), 3)

    calls.clear()
    parallel.denoise_array(to_uint8(synthetic_photo(80, 100)))
    assert calls == [(threading.get_ident(), 3)] * 2
    assert [parallel.tile_workers(count) for count in (2, 3, 9)] == [1, 3, 3]


def test_auto_views_timed_before_tile_threads(
    whole: Denoiser, monkeypatch: pytest.MonkeyPatch
) -> None:
    parallel = Denoiser(whole.model, tiles=TileOptions(48, 16), threads=2, views="auto")
    timings: list[tuple[int, int]] = []

    def timing() -> float:
        timings.append((threading.get_ident(), torch.get_num_threads()))
        # Long enough for the other tile thread to read the views meanwhile.
        time.sleep(0.2)
        return 1e-6

    monkeypatch.setattr(parallel, "seconds_per_megapixel", timing)

    parallel.denoise_array(to_uint8(synthetic_photo(150, 150)))

    # Timed inside the tile threads, the probe would run once in each, side by side
    # on one torch thread, and measure the network slower than it runs.
    assert len(timings) == 1
    assert timings[0][0] == threading.get_ident()
    assert timings[0][1] == 2
    assert parallel.views == 8


def test_passed_deadline_raises_with_parallel_tiles(whole: Denoiser) -> None:
    parallel = Denoiser(whole.model, tiles=TileOptions(16, 8), threads=2)
    pixels = to_uint8(synthetic_photo(64, 64))

    with pytest.raises(DenoiseTimeoutError):
        parallel.denoise_array(pixels, deadline=time.monotonic() - 1.0)
    assert torch.get_num_threads() == 2


def test_auto_with_one_candidate_skips_timing(
    whole: Denoiser, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(candidates: object) -> None:
        raise AssertionError(f"timed {candidates} with a single candidate")

    monkeypatch.setattr("pixtools_worker_ml.inference.bfloat16_is_fast", lambda: False)
    monkeypatch.setattr("pixtools_worker_ml.inference.fastest_choice", fail)

    automatic = Denoiser(whole.model, precision="auto", threads=1)

    assert automatic.precision == "fp32"
    assert automatic.network is automatic.model
