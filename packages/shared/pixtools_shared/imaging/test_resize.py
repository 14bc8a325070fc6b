from __future__ import annotations

import pytest
from PIL import Image

from pixtools_shared.imaging.resize import fit_size, resize_image, resize_to

FIT_CASES = [
    # (source, width, height, allow_upscale, expected)
    ((640, 480), None, None, False, (640, 480)),
    ((640, 480), 320, None, False, (320, 240)),
    ((640, 480), None, 240, False, (320, 240)),
    ((640, 480), 100, None, False, (100, 75)),
    ((640, 480), 333, None, False, (333, 250)),  # 249.75 rounds up
    ((640, 480), 200, 200, False, (200, 150)),  # fits inside, no stretch
    ((480, 640), 200, 200, False, (150, 200)),
    ((640, 480), 1000, 100, False, (133, 100)),  # height limits
    ((640, 480), 100, 1000, False, (100, 75)),  # width limits
    ((10_000, 1), 100, None, False, (100, 1)),  # never 0 px
    ((1, 10_000), None, 100, False, (1, 100)),
    ((10_000, 1), 100, 100, False, (100, 1)),
    ((10_000, 3), 10, None, False, (10, 1)),
    ((640, 480), 1280, None, False, (640, 480)),  # no upscale by default
    ((640, 480), 1280, 1280, False, (640, 480)),
    ((640, 480), 1280, None, True, (1280, 960)),
    ((640, 480), 1280, 1280, True, (1280, 960)),
    ((640, 480), 640, 480, False, (640, 480)),
    ((640, 480), 640, None, True, (640, 480)),
    ((3, 2), 2, None, False, (2, 1)),  # 1.333 rounds to 1
    ((3, 2), None, 1, False, (2, 1)),  # 1.5 rounds half up
    ((1, 1), 5, 5, True, (5, 5)),
]


@pytest.mark.parametrize(
    ("source", "width", "height", "upscale", "expected"), FIT_CASES
)
def test_fit_size_table(
    source: tuple[int, int],
    width: int | None,
    height: int | None,
    upscale: bool,
    expected: tuple[int, int],
) -> None:
    assert fit_size(source[0], source[1], width, height, upscale) == expected


@pytest.mark.parametrize(("width", "height"), [(0, None), (None, -1), (5, 0)])
def test_fit_size_rejects_non_positive_request(
    width: int | None, height: int | None
) -> None:
    with pytest.raises(ValueError, match="positive"):
        fit_size(640, 480, width, height)


def test_fit_size_box_never_exceeded() -> None:
    for src_w in (1, 7, 333, 1001, 4096):
        for src_h in (1, 3, 250, 999):
            for box in (1, 2, 17, 100):
                out = fit_size(src_w, src_h, box, box, True)
                assert 1 <= out[0] <= box
                assert 1 <= out[1] <= box
                assert max(out) == box


def test_resize_image_exact_size() -> None:
    image = Image.new("RGB", (64, 48), (1, 2, 3))
    resized = resize_image(image, 32, None)
    assert resized.size == (32, 24)
    assert resized.getpixel((10, 10)) == (1, 2, 3)


def test_resize_image_unchanged_returns_same_pixels() -> None:
    image = Image.new("RGB", (64, 48), (1, 2, 3))
    resized = resize_image(image, 100, 100)
    assert resized.size == (64, 48)
    assert resized.tobytes() == image.tobytes()


def test_resize_palette_uses_smooth_resampling() -> None:
    # A black/white checkerboard in P mode averages to grey with LANCZOS; NEAREST
    # (Pillow's choice for P images) would keep only black and white.
    board = Image.new("L", (64, 48))
    board.putdata([255 * ((x + y) % 2) for y in range(48) for x in range(64)])
    palette_image = board.convert("P")
    resized = resize_image(palette_image, 16, None)
    assert resized.mode == "RGB"
    red, _, _ = resized.getpixel((8, 6))  # type: ignore[misc]
    assert 100 <= red <= 155


def test_resize_keeps_transparency_as_alpha() -> None:
    image = Image.new("P", (64, 48), 0)
    image.putpalette([0, 0, 0, 255, 255, 255])
    image.info["transparency"] = 0
    resized = resize_image(image, 32, None)
    assert resized.mode == "RGBA"
    assert resized.getpixel((5, 5)) == (0, 0, 0, 0)


def test_resize_alpha_has_no_dark_fringe() -> None:
    # Fully transparent black next to opaque white must not darken the white.
    image = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    image.paste((255, 255, 255, 255), (0, 0, 32, 48))
    resized = resize_to(image, (16, 12))
    for x in range(16):
        red, green, blue, alpha = resized.getpixel((x, 6))  # type: ignore[misc]
        if alpha > 0:
            assert (red, green, blue) == (255, 255, 255)


def test_resize_one_bit_image() -> None:
    image = Image.new("1", (64, 48), 1)
    resized = resize_image(image, 8, None)
    assert resized.mode == "L"
    assert resized.size == (8, 6)
    assert resized.getpixel((4, 3)) == 255
