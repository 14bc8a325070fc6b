from __future__ import annotations

import numpy as np
import pytest

from pixtools_worker_ml.data import (
    PatchSampler,
    add_gaussian_noise,
    dihedral,
    noise_seed,
    psnr_uint8,
    to_eight_bit,
)
from pixtools_worker_ml.testimages import synthetic_photo, to_uint8


def test_dihedral_gives_eight_distinct_arrays() -> None:
    array = np.arange(12).reshape(3, 4, 1)

    variants = {dihedral(array, index).tobytes() + bytes(index) for index in range(8)}
    shapes = {dihedral(array, index).shape for index in range(8)}
    contents = {dihedral(array, index).tobytes() for index in range(8)}

    assert len(variants) == 8
    assert shapes == {(3, 4, 1), (4, 3, 1)}
    assert len(contents) == 8


def test_sampler_restores_from_rng_state() -> None:
    images = [to_uint8(synthetic_photo(40, 50, seed=s)) for s in range(2)]
    sampler = PatchSampler(images, patch_size=16, max_sigma=55.0, seed=5)
    sampler.sample(3)
    state = sampler.rng.bit_generator.state

    expected_noisy, expected_clean = sampler.sample(4)
    sampler.rng.bit_generator.state = state
    noisy, clean = sampler.sample(4)

    assert noisy.shape == clean.shape == (4, 3, 16, 16)
    assert np.array_equal(noisy, expected_noisy)
    assert np.array_equal(clean, expected_clean)
    assert clean.min() >= 0.0
    assert clean.max() <= 1.0


def test_sampler_noise_levels_stay_in_range() -> None:
    images = [to_uint8(synthetic_photo(64, 64))]
    sampler = PatchSampler(images, patch_size=32, max_sigma=55.0, seed=1)

    noisy, clean = sampler.sample(64)

    sigmas = (noisy - clean).reshape(64, -1).std(axis=1) * 255.0
    assert sigmas.max() < 60.0
    assert sigmas.min() >= 0.0
    assert sigmas.mean() > 15.0


def test_noise_is_fixed_per_seed() -> None:
    clean = synthetic_photo(20, 20)

    first = add_gaussian_noise(clean, 25.0, noise_seed(3, 25.0))
    second = add_gaussian_noise(clean, 25.0, noise_seed(3, 25.0))
    other = add_gaussian_noise(clean, 25.0, noise_seed(4, 25.0))

    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)
    assert noise_seed(0, 15.0) != noise_seed(0, 25.0)
    assert abs((first - clean).std() * 255.0 - 25.0) < 2.0


def test_psnr_uint8_known_value() -> None:
    clean = np.full((4, 4, 3), 100 / 255.0, dtype=np.float32)
    restored = clean + np.float32(10 / 255.0)

    assert abs(psnr_uint8(restored, clean) - 28.1308) < 1e-3
    assert psnr_uint8(clean, clean) == float("inf")


def test_sampler_clips_a_share_to_eight_bits() -> None:
    images = [to_uint8(synthetic_photo(64, 64))]
    sampler = PatchSampler(
        images, patch_size=32, max_sigma=55.0, seed=2, clip_fraction=0.5
    )

    noisy, _clean = sampler.sample(200)

    flat = noisy.reshape(200, -1)
    in_range = (flat.min(axis=1) >= 0.0) & (flat.max(axis=1) <= 1.0)
    on_grid = np.all(np.abs(flat * 255.0 - np.rint(flat * 255.0)) < 1e-4, axis=1)
    clipped = in_range & on_grid
    assert 70 <= clipped.sum() <= 130
    # The other patches keep their unclipped float noise.
    assert not on_grid[~clipped].any()


def test_sampler_without_clipping_keeps_its_batches() -> None:
    images = [to_uint8(synthetic_photo(40, 50))]
    plain = PatchSampler(images, patch_size=16, max_sigma=55.0, seed=9)
    zero = PatchSampler(images, patch_size=16, max_sigma=55.0, seed=9, clip_fraction=0)

    first, _ = plain.sample(4)
    second, _ = zero.sample(4)

    assert np.array_equal(first, second)


def test_sampler_rejects_bad_clip_fraction() -> None:
    images = [to_uint8(synthetic_photo(40, 50))]

    with pytest.raises(ValueError, match="clip_fraction"):
        PatchSampler(images, patch_size=16, max_sigma=55.0, seed=1, clip_fraction=1.5)


def test_to_eight_bit_clips_and_rounds() -> None:
    noisy = np.array([-0.2, 0.0, 0.5001, 1.3], dtype=np.float32)

    result = to_eight_bit(noisy)

    assert result.dtype == np.float32
    assert np.allclose(result * 255.0, [0.0, 0.0, 128.0, 255.0])
