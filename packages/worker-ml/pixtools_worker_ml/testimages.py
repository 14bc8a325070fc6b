"""Synthetic photo-like test images (gradients, shapes, edges, mild texture)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def synthetic_photo(height: int, width: int, seed: int = 7) -> NDArray[np.float32]:
    """Build an HxWx3 float32 image on [0, 1] with smooth areas and sharp edges."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    y = rows / max(height - 1, 1)
    x = columns / max(width - 1, 1)

    image = np.stack(
        [
            0.25 + 0.5 * x,
            0.2 + 0.4 * y + 0.1 * np.sin(6.0 * x),
            0.6 - 0.3 * x * y,
        ],
        axis=-1,
    )
    for _ in range(6):
        centre_y, centre_x = rng.uniform(0.1, 0.9, size=2)
        radius = rng.uniform(0.08, 0.22)
        colour = rng.uniform(0.05, 0.95, size=3)
        inside = (y - centre_y) ** 2 + (x - centre_x) ** 2 < radius**2
        image[inside] = colour * (0.85 + 0.15 * y[inside, None])
    top, left = int(0.6 * height), int(0.1 * width)
    image[top : top + height // 5, left : left + width // 3] = (0.9, 0.85, 0.2)
    stripes = (np.floor(columns / 6) % 2 == 0) & (y > 0.85)
    image[stripes] = image[stripes] * 0.5
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def to_uint8(image: NDArray[np.float32]) -> NDArray[np.uint8]:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
