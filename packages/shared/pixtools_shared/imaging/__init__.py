"""Image decoding, conversion and metadata extraction for PixTools operations.

Every function takes untrusted bytes and either returns a result or raises a
PixToolsError subclass from pixtools_shared.errors.
"""

from pixtools_shared.imaging.convert import EncodedImage, convert_image
from pixtools_shared.imaging.decode import decode_image
from pixtools_shared.imaging.encode import EncodeOptions, encode_image
from pixtools_shared.imaging.formats import ALLOWED_INPUT_FORMATS, sniff_format
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.metadata import extract_metadata
from pixtools_shared.imaging.probe import ImageInfo, probe_image
from pixtools_shared.imaging.resize import fit_size, resize_image

__all__ = [
    "ALLOWED_INPUT_FORMATS",
    "EncodeOptions",
    "EncodedImage",
    "ImageInfo",
    "ImageLimits",
    "convert_image",
    "decode_image",
    "encode_image",
    "extract_metadata",
    "fit_size",
    "probe_image",
    "resize_image",
    "sniff_format",
]
