"""The denoise operation on encoded bytes: decode, denoise, resize, encode."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from pixtools_shared.errors import InvalidImageError, PixToolsError
from pixtools_shared.imaging.decode import decode_image
from pixtools_shared.imaging.encode import EncodeOptions, encode_image, normalize_format
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.modes import to_working_mode
from pixtools_shared.imaging.probe import probe_image
from pixtools_shared.imaging.resize import fit_size, resize_to
from pixtools_shared.operations import CONTENT_TYPES
from pixtools_shared.pipeline import OperationResult
from pixtools_worker_ml.inference import Denoiser, time_budget_seconds

logger = structlog.get_logger(__name__)


def denoise_bytes(
    data: bytes,
    params: Mapping[str, Any],
    denoiser: Denoiser,
    limits: ImageLimits,
    options: EncodeOptions | None = None,
    budget: Callable[[int], float] = time_budget_seconds,
) -> OperationResult:
    """Denoise an encoded image and encode the result as ``params["format"]``.

    The source is checked against the image limits and the denoiser's pixel cap
    from its header before any pixel is decoded. Denoising runs at the source
    resolution, then the result is resized like a conversion (width, height,
    allow_upscale) and encoded. ``budget`` maps the source pixel count to the
    seconds denoising may take before DenoiseTimeoutError. Raises only
    PixToolsError subclasses.
    """
    fmt = normalize_format(str(params.get("format") or "png"))
    info = probe_image(data, limits)
    denoiser.check_size(info.width, info.height)

    pixels = info.width * info.height
    deadline = time.monotonic() + budget(pixels)
    target = fit_size(
        info.width,
        info.height,
        params.get("width"),
        params.get("height"),
        bool(params.get("allow_upscale", False)),
    )
    limits.check(*target, "The requested output size")

    try:
        image = to_working_mode(decode_image(data, limits))
        started = time.monotonic()
        denoised = denoiser.denoise_image(image, deadline=deadline)
        seconds = time.monotonic() - started
        del image
        resized = resize_to(denoised, target)
        encoded = encode_image(resized, fmt, params.get("quality"), options=options)
    except PixToolsError:
        raise
    except (OSError, ValueError) as exc:
        logger.warning("denoise_image_failed", format=fmt, error=repr(exc))
        raise InvalidImageError(f"The image could not be denoised: {exc}") from exc

    logger.info(
        "image_denoised",
        width=info.width,
        height=info.height,
        seconds=round(seconds, 3),
        seconds_per_megapixel=round(seconds / max(pixels / 1e6, 1e-6), 3),
        precision=denoiser.precision,
        views=denoiser.views,
        output_format=fmt,
        output_width=resized.width,
        output_height=resized.height,
        size_bytes=len(encoded),
    )
    return OperationResult(
        data=encoded,
        content_type=CONTENT_TYPES[fmt],
        extension=fmt,
        width=resized.width,
        height=resized.height,
    )
