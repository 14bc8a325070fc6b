"""Runs the denoise operation over a folder of awkward real-world images.

PIXTOOLS_AWKWARD_CORPUS names the folder, and the tests are skipped without it.
Every file must either come back denoised at its displayed size, as a PNG that
decodes, or raise the PixToolsError that its header or its damage calls for. The
denoiser here caps sources at 4 MP, so a larger scan in the corpus checks the
rejection path instead of spending CI time on a long denoise.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from pixtools_shared.errors import ImageTooLargeError, InvalidImageError, PixToolsError
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.probe import probe_image
from pixtools_shared.testing import (
    AWKWARD_CORPUS_ENV,
    awkward_corpus,
    awkward_corpus_files,
    corpus_id,
)
from pixtools_worker_ml.inference import Denoiser
from pixtools_worker_ml.operation import denoise_bytes

FILES = awkward_corpus_files()
pytestmark = pytest.mark.skipif(
    awkward_corpus() is None, reason=f"{AWKWARD_CORPUS_ENV} is not set"
)

LIMITS = ImageLimits()
MAX_PIXELS = 4_000_000

# Files of the reference corpus whose headers pass but whose pixel data is cut
# short: decoding them must fail with InvalidImageError.
DAMAGED = {"pillow__truncated_jpeg.jpg", "pillow__truncated_image.png"}


@pytest.fixture(scope="module")
def denoiser() -> Denoiser:
    return Denoiser.load(max_pixels=MAX_PIXELS, threads=1)


@pytest.mark.parametrize("path", FILES, ids=[corpus_id(path) for path in FILES])
def test_denoise_corpus_file(path: Path, denoiser: Denoiser) -> None:
    data = path.read_bytes()
    try:
        info = probe_image(data, LIMITS)
    except PixToolsError as exc:
        # A file rejected from its header must be rejected the same way here.
        with pytest.raises(type(exc)):
            denoise_bytes(data, {"format": "png"}, denoiser, LIMITS)
        return

    if info.width * info.height > MAX_PIXELS:
        with pytest.raises(ImageTooLargeError):
            denoise_bytes(data, {"format": "png"}, denoiser, LIMITS)
        return

    if path.name in DAMAGED:
        with pytest.raises(InvalidImageError):
            denoise_bytes(data, {"format": "png"}, denoiser, LIMITS)
        return

    result = denoise_bytes(data, {"format": "png"}, denoiser, LIMITS)

    assert (result.width, result.height) == (info.width, info.height)
    assert result.content_type == "image/png"
    with Image.open(io.BytesIO(result.data)) as output:
        output.load()
        assert output.format == "PNG"
        assert output.size == (info.width, info.height)
        assert output.mode in ("RGB", "RGBA", "L", "LA")
