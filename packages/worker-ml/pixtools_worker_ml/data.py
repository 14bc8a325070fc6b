"""Training and validation data for the denoiser.

Training draws random patches from the CBSD432 photos, decoded once into memory as
uint8 arrays, with one of the 8 flips/rotations of the square and a blind noise level
sigma drawn uniformly from ``[0, max_sigma]`` (on the 0-255 scale) per patch. A share
of the noisy patches (``clip_fraction``) is clipped to [0, 1] and rounded to 8 bits,
as a noisy photo saved to PNG is, so the network also learns the biased noise
of clipped highlights and shadows that it meets through the API.
Validation uses fixed centre crops of a few CBSD68 photos with noise drawn from fixed
seeds, so PSNR numbers in the training log are comparable between runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

DATASETS_ENV = "PIXTOOLS_DATASETS_DIR"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

UInt8Array = NDArray[np.uint8]
FloatArray = NDArray[np.float32]


def resolve_datasets_dir(argument: str | None) -> Path:
    """Return the datasets folder from the argument, else from PIXTOOLS_DATASETS_DIR."""
    value = argument or os.environ.get(DATASETS_ENV)
    if not value:
        raise SystemExit(
            f"no datasets folder: pass --datasets-dir or set {DATASETS_ENV} to the "
            "folder that contains CBSD432 and CBSD68"
        )
    path = Path(value)
    if not path.is_dir():
        raise SystemExit(f"datasets folder not found: {path}")
    return path


def list_images(folder: Path) -> list[Path]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"no images found in {folder}")
    return paths


def load_rgb(path: Path) -> UInt8Array:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def load_images(folder: Path) -> list[UInt8Array]:
    """Decode every image of a folder into memory as HxWx3 uint8 arrays."""
    return [load_rgb(path) for path in list_images(folder)]


def dihedral(array: NDArray[np.generic], index: int) -> NDArray[np.generic]:
    """Apply one of the 8 flips/rotations (index 0..7) to an HxWxC array."""
    rotated = np.rot90(array, k=index % 4, axes=(0, 1))
    if index >= 4:
        rotated = rotated[:, ::-1]
    return rotated


class PatchSampler:
    """Random noisy/clean patch batches from in-memory photos.

    All randomness comes from the numpy Generator in ``rng``. Its state is saved in
    training checkpoints, so a resumed run draws the same batches as an unbroken one.
    """

    def __init__(
        self,
        images: list[UInt8Array],
        patch_size: int,
        max_sigma: float,
        seed: int,
        clip_fraction: float = 0.0,
    ) -> None:
        self.images = [img for img in images if min(img.shape[:2]) >= patch_size]
        if not self.images:
            raise ValueError(f"no training image is at least {patch_size} px")
        if not 0.0 <= clip_fraction <= 1.0:
            raise ValueError(f"clip_fraction must be in [0, 1], got {clip_fraction}")
        self.patch_size = patch_size
        self.max_sigma = max_sigma
        self.clip_fraction = clip_fraction
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int) -> tuple[FloatArray, FloatArray]:
        """Return (noisy, clean) float32 arrays of shape (N, 3, P, P) on [0, 1]."""
        size = self.patch_size
        clean = np.empty((batch_size, size, size, 3), dtype=np.uint8)

        for i in range(batch_size):
            image = self.images[int(self.rng.integers(len(self.images)))]
            top = int(self.rng.integers(image.shape[0] - size + 1))
            left = int(self.rng.integers(image.shape[1] - size + 1))
            patch = image[top : top + size, left : left + size]
            clean[i] = dihedral(patch, int(self.rng.integers(8)))

        clean_float = clean.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        sigmas = self.rng.uniform(0.0, self.max_sigma, size=(batch_size, 1, 1, 1))
        noise = self.rng.standard_normal(clean_float.shape, dtype=np.float32)
        noisy = clean_float + noise * (sigmas / 255.0).astype(np.float32)
        # Without clipping no draw is made, so runs from before clip_fraction
        # existed still see the same batches when they resume.
        if self.clip_fraction > 0.0:
            clipped = self.rng.random(batch_size) < self.clip_fraction
            noisy[clipped] = to_eight_bit(noisy[clipped])
        return noisy, clean_float


@dataclass(frozen=True)
class ValidationSet:
    """Fixed noisy/clean crops per sigma: ``pairs[sigma]`` is (noisy, clean)."""

    pairs: dict[int, tuple[FloatArray, FloatArray]]


def noise_seed(index: int, sigma: float) -> int:
    """Return the noise seed of image ``index`` at ``sigma`` (fixed per pair)."""
    return 1_000_003 * (index + 1) + round(sigma * 100)


def add_gaussian_noise(clean: FloatArray, sigma: float, seed: int) -> FloatArray:
    """Add white Gaussian noise of ``sigma`` (0-255 scale) to a [0, 1] float image.

    The result is not clipped, as in the published DnCNN/FFDNet evaluations.
    """
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(clean.shape, dtype=np.float32)
    return (clean + noise * np.float32(sigma / 255.0)).astype(np.float32)


def to_eight_bit(noisy: FloatArray) -> FloatArray:
    """Clip to [0, 1] and round to 8-bit levels, as saving to an 8-bit file does."""
    levels = np.rint(np.clip(noisy, 0.0, 1.0) * 255.0)
    return (levels / 255.0).astype(np.float32)


def build_validation_set(
    folder: Path, count: int, crop: int, sigmas: tuple[int, ...]
) -> ValidationSet:
    """Centre-crop the first ``count`` images of ``folder`` and add seeded noise."""
    crops: list[FloatArray] = []
    for path in list_images(folder)[:count]:
        image = load_rgb(path)
        top = max((image.shape[0] - crop) // 2, 0)
        left = max((image.shape[1] - crop) // 2, 0)
        patch = image[top : top + crop, left : left + crop]
        crops.append(patch.transpose(2, 0, 1).astype(np.float32) / 255.0)

    clean = np.stack(crops)
    pairs: dict[int, tuple[FloatArray, FloatArray]] = {}
    for sigma in sigmas:
        noisy = np.stack(
            [
                add_gaussian_noise(c, sigma, noise_seed(i, sigma))
                for i, c in enumerate(crops)
            ]
        )
        pairs[sigma] = (noisy, clean)
    return ValidationSet(pairs=pairs)


def psnr_uint8(restored: NDArray[Any], clean: NDArray[Any]) -> float:
    """Return the PSNR in dB after clipping to [0, 1] and rounding to 8 bits."""
    restored_u8 = np.round(np.clip(restored, 0.0, 1.0) * 255.0)
    clean_u8 = np.round(np.clip(clean, 0.0, 1.0) * 255.0)
    mse = float(np.mean((restored_u8 - clean_u8) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(255.0**2 / mse))
