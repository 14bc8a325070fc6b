"""Size limits applied to every image before its pixels are decoded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pixtools_shared.errors import ImageTooLargeError

# Match the defaults of Settings.MAX_IMAGE_PIXELS and Settings.MAX_IMAGE_SIDE.
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_SIDE = 20_000


class LimitSettings(Protocol):
    """The part of Settings that ImageLimits reads."""

    MAX_IMAGE_PIXELS: int
    MAX_IMAGE_SIDE: int


@dataclass(frozen=True)
class ImageLimits:
    """Maximum pixel count (width * height) and maximum side length in pixels."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_side: int = DEFAULT_MAX_SIDE

    def __post_init__(self) -> None:
        if self.max_pixels < 1 or self.max_side < 1:
            raise ValueError(
                f"image limits must be positive, got max_pixels={self.max_pixels} "
                f"and max_side={self.max_side}"
            )

    @classmethod
    def from_settings(cls, settings: LimitSettings) -> ImageLimits:
        return cls(
            max_pixels=settings.MAX_IMAGE_PIXELS, max_side=settings.MAX_IMAGE_SIDE
        )

    def check(self, width: int, height: int, subject: str = "The image") -> None:
        """Raise ImageTooLargeError when width x height breaks either limit.

        `subject` starts the error message ("The image", "The requested output").
        """
        if max(width, height) > self.max_side:
            raise ImageTooLargeError(
                f"{subject} is {width}x{height} pixels; each side may be at most "
                f"{self.max_side} pixels."
            )
        if width * height > self.max_pixels:
            raise ImageTooLargeError(
                f"{subject} is {width}x{height} pixels ({width * height} in total); "
                f"the maximum is {self.max_pixels} pixels."
            )
