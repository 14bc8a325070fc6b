from __future__ import annotations

import numpy as np
import pytest

from pixtools_worker_ml.data import add_gaussian_noise, psnr_uint8
from pixtools_worker_ml.inference import Denoiser, TileOptions
from pixtools_worker_ml.testimages import synthetic_photo, to_uint8
from pixtools_worker_ml.views import (
    VIEW_COUNTS,
    VIEWS,
    from_view,
    parse_views,
    to_view,
    views_within,
)


@pytest.fixture(scope="module")
def single() -> Denoiser:
    return Denoiser.load(tiles=TileOptions(0, 0), precision="fp32", threads=1)


def test_views_are_the_eight_symmetries_of_the_square() -> None:
    array = np.arange(3 * 5 * 2).reshape(3, 5, 2)

    seen = {to_view(array, index).tobytes() for index in range(len(VIEWS))}

    assert len(VIEWS) == 8
    assert len(seen) == 8


@pytest.mark.parametrize("index", range(len(VIEWS)))
def test_from_view_undoes_to_view(index: int) -> None:
    array = np.arange(4 * 7 * 3).reshape(4, 7, 3)

    viewed = to_view(array, index)

    assert viewed.shape in ((4, 7, 3), (7, 4, 3))
    np.testing.assert_array_equal(from_view(viewed, index), array)


def test_parse_views() -> None:
    assert parse_views("auto") is None
    assert [parse_views(str(count)) for count in VIEW_COUNTS] == list(VIEW_COUNTS)
    assert parse_views(4) == 4
    for bad in ("3", "0", "two", 16):
        with pytest.raises(ValueError, match="views must be auto or one of"):
            parse_views(bad)


@pytest.mark.parametrize(
    ("seconds", "target", "expected"),
    [(0.1, 0.8, 8), (0.2, 0.8, 4), (0.3, 0.8, 2), (0.45, 0.8, 1), (2.0, 0.8, 1)],
)
def test_views_within_target(seconds: float, target: float, expected: int) -> None:
    assert views_within(seconds, target) == expected


def test_two_views_beat_one_on_a_noisy_photo(single: Denoiser) -> None:
    clean = synthetic_photo(150, 190)
    noisy = add_gaussian_noise(clean, 25.0, seed=11)
    double = Denoiser(single.model, tiles=TileOptions(0, 0), precision="fp32", views=2)

    one_view_psnr = psnr_uint8(single.denoise_array(noisy), clean)
    two_view_psnr = psnr_uint8(double.denoise_array(noisy), clean)

    assert double.views == 2
    assert one_view_psnr > psnr_uint8(noisy, clean) + 3.0
    assert two_view_psnr > one_view_psnr, (one_view_psnr, two_view_psnr)


def test_tiled_views_match_whole_image_at_odd_sizes(single: Denoiser) -> None:
    # Odd sides make the last tile odd, so the views see a padded tile.
    clean = synthetic_photo(131, 97)
    source = to_uint8(add_gaussian_noise(clean, 25.0, seed=5))
    whole = Denoiser(single.model, tiles=TileOptions(0, 0), precision="fp32", views=4)
    tiled = Denoiser(single.model, tiles=TileOptions(48, 32), precision="fp32", views=4)

    whole_output = whole.denoise_array(source)
    tiled_output = tiled.denoise_array(source)

    assert tiled_output.shape == source.shape
    assert tiled_output.dtype == np.uint8
    difference = abs(psnr_uint8(whole_output, clean) - psnr_uint8(tiled_output, clean))
    assert difference < 0.01
    changed = np.abs(whole_output.astype(int) - tiled_output.astype(int))
    assert changed.max() <= 2


def test_auto_views_follow_the_measured_speed(single: Denoiser) -> None:
    def build(target: float) -> Denoiser:
        return Denoiser(
            single.model,
            tiles=TileOptions(64, 16),
            precision="fp32",
            views="auto",
            target_seconds_per_megapixel=target,
        )

    measured = build(1.0).seconds_per_megapixel()

    assert measured > 0
    assert build(1e-6).views == 1
    assert build(1e6).views == 8


def test_denoiser_rejects_unknown_views(single: Denoiser) -> None:
    with pytest.raises(ValueError, match="views must be auto or one of"):
        Denoiser(single.model, precision="fp32", views="3")
