from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from PIL import Image

from pixtools_shared.errors import ImageTooLargeError
from pixtools_worker_ml.data import add_gaussian_noise, psnr_uint8
from pixtools_worker_ml.inference import (
    Denoiser,
    DenoiseTimeoutError,
    TileOptions,
    tile_spans,
)
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
