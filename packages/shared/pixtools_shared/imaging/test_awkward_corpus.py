"""Runs every file of a folder of awkward real-world images through the pipeline.

Set PIXTOOLS_AWKWARD_CORPUS to the folder; the tests are skipped when it is unset.
Each file must either succeed (probe, every conversion and metadata, with outputs
that decode and carry no EXIF or XMP) or raise a PixToolsError subclass.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pixtools_shared.errors import (
    ImageTooLargeError,
    InvalidImageError,
    PixToolsError,
    UnsupportedFormatError,
)
from pixtools_shared.imaging.conftest import reopen
from pixtools_shared.imaging.convert import convert_image
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.metadata import extract_metadata
from pixtools_shared.imaging.probe import probe_image
from pixtools_shared.testing import (
    AWKWARD_CORPUS_ENV,
    awkward_corpus,
    awkward_corpus_files,
    corpus_id,
)

CORPUS = awkward_corpus()
FILES = awkward_corpus_files()

# Skipping test by test (not the whole module) keeps at least one collected test,
# so pytest does not exit with "no tests collected" when the corpus is absent.
pytestmark = pytest.mark.skipif(
    CORPUS is None, reason=f"{AWKWARD_CORPUS_ENV} is not set"
)
LIMITS = ImageLimits()

# Known outcomes for files of the reference corpus, checked when present:
# the rejection type and detected name, or the expected displayed size.
EXPECTED_ERRORS: dict[str, tuple[type[PixToolsError], str | None]] = {
    "exifsamples__IMG_5195.HEIC": (UnsupportedFormatError, "HEIC"),
    "exiftool__JXL2.jxl": (UnsupportedFormatError, "JXL"),
    "exiftool__CanonRaw.cr2": (UnsupportedFormatError, "CR2"),
    "exiftool__Nikon.nef": (UnsupportedFormatError, "NEF"),
    "exiftool__DNG.dng": (UnsupportedFormatError, "DNG"),
    "MANIFEST.txt": (UnsupportedFormatError, "text"),
    "pillow__decompression_bomb.gif": (ImageTooLargeError, None),
}
EXPECTED_CONVERT_ERRORS: dict[str, type[PixToolsError]] = {
    "pillow__truncated_jpeg.jpg": InvalidImageError,
    "pillow__truncated_image.png": InvalidImageError,
}
EXPECTED_SIZES: dict[str, tuple[int, int]] = {
    "exifsamples__landscape_1.jpg": (600, 450),
    "exifsamples__landscape_2.jpg": (600, 450),
    "exifsamples__landscape_3.jpg": (600, 450),
    "exifsamples__landscape_4.jpg": (600, 450),
    "exifsamples__landscape_6.jpg": (600, 450),
    "exifsamples__landscape_8.jpg": (600, 450),
    "pillow__sugarshack.mpo": (640, 480),
    "pillow__iss634.gif": (245, 245),
}


@pytest.fixture(params=FILES, ids=[corpus_id(path) for path in FILES])
def corpus_file(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


def test_probe(corpus_file: Path) -> None:
    data = corpus_file.read_bytes()
    expected = EXPECTED_ERRORS.get(corpus_file.name)
    try:
        info = probe_image(data, LIMITS)
    except PixToolsError as exc:
        if expected is not None:
            assert isinstance(exc, expected[0])
            if expected[1] is not None:
                assert isinstance(exc, UnsupportedFormatError)
                assert exc.detected == expected[1]
        return
    assert expected is None, f"{corpus_file.name} should have been rejected"
    assert info.width >= 1
    assert info.height >= 1
    if corpus_file.name in EXPECTED_SIZES:
        assert (info.width, info.height) == EXPECTED_SIZES[corpus_file.name]


@pytest.mark.parametrize("fmt", ["jpg", "png", "webp", "avif"])
def test_convert(corpus_file: Path, fmt: str) -> None:
    data = corpus_file.read_bytes()
    try:
        result = convert_image(data, fmt, {"width": 96}, LIMITS)
    except PixToolsError as exc:
        expected = EXPECTED_CONVERT_ERRORS.get(corpus_file.name)
        if expected is not None:
            assert isinstance(exc, expected)
        return
    assert corpus_file.name not in EXPECTED_ERRORS
    assert corpus_file.name not in EXPECTED_CONVERT_ERRORS

    output = reopen(result.data)
    assert output.size == (result.width, result.height)
    assert dict(output.getexif()) == {}
    assert "xmp" not in output.info
    assert getattr(output, "n_frames", 1) == 1
    if corpus_file.name in EXPECTED_SIZES:
        source_width, source_height = EXPECTED_SIZES[corpus_file.name]
        expected_height = max(1, round(source_height * 96 / source_width))
        assert (result.width, result.height) == (96, expected_height)


def test_metadata(corpus_file: Path) -> None:
    data = corpus_file.read_bytes()
    try:
        document = extract_metadata(data, LIMITS)
    except PixToolsError:
        assert corpus_file.name not in EXPECTED_SIZES
        return
    json.dumps(document, allow_nan=False)
    assert document["width"] >= 1
    assert isinstance(document["warnings"], list)


def test_orientation_series_matches_reference() -> None:
    # The landscape_N files show the same photo with EXIF orientation N; once
    # upright they must all look alike. Files 2-8 share one encoding and differ
    # by under 2 grey levels on average. landscape_1 was encoded differently and
    # differs by about 14, while a wrongly mirrored or flipped result differs by
    # over 40.
    assert CORPUS is not None
    paths = {
        number: CORPUS / f"exifsamples__landscape_{number}.jpg"
        for number in (1, 2, 3, 4, 6, 8)
    }
    present = {number: path for number, path in paths.items() if path.exists()}
    if 1 not in present or len(present) < 2:
        pytest.skip("landscape orientation series not in this corpus")

    upright = {
        number: reopen(convert_image(path.read_bytes(), "png", {}, LIMITS).data)
        for number, path in present.items()
    }
    reference = upright.pop(1)
    for number, image in upright.items():
        assert image.size == reference.size
        difference = _mean_difference(reference, image)
        assert difference < 25, f"orientation {number}: mean difference {difference}"
    first, *others = upright.values()
    for image in others:
        assert _mean_difference(first, image) < 4


def _mean_difference(first: Image.Image, second: Image.Image) -> float:
    small_first = first.convert("L").resize((60, 45))
    small_second = second.convert("L").resize((60, 45))
    pairs = zip(
        small_first.get_flattened_data(), small_second.get_flattened_data(), strict=True
    )
    total = sum(abs(int(a) - int(b)) for a, b in pairs)  # type: ignore[call-overload]
    return total / (60 * 45)


def test_gps_sample_decimal_degrees() -> None:
    assert CORPUS is not None
    path = CORPUS / "exifsamples__DSCN0010.jpg"
    if not path.exists():
        pytest.skip("GPS sample not in this corpus")
    gps = extract_metadata(path.read_bytes(), LIMITS)["gps"]
    # 43 deg 28' 2.814" N, 11 deg 53' 6.456" E
    assert gps["latitude"] == pytest.approx(43.4674483, abs=1e-6)
    assert gps["longitude"] == pytest.approx(11.8851267, abs=1e-6)
