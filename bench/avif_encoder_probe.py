"""Time AVIF encoding in the running Python and check what metadata it copies.

Runs under any Python with Pillow, so one script measures Pillow's own AVIF
support and, in another virtual environment, pillow-avif-plugin (--use-plugin).
It needs only Pillow; bench/benchkit/avif_compare.py starts it and reads the
JSON it prints.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, features

# Width of the copy used to check metadata handling; its pixels do not matter.
METADATA_CHECK_WIDTH = 256


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument("--input", required=True, help="RGB reference image (PNG)")
    parser.add_argument(
        "--exif-source", required=True, help="JPEG with EXIF and GPS for the check"
    )
    parser.add_argument("--output", required=True, help="where to write the AVIF")
    parser.add_argument("--quality", type=int, default=60)
    parser.add_argument("--speed", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--use-plugin", action="store_true", help="import pillow_avif first"
    )
    return parser.parse_args()


def codec_versions(use_plugin: bool) -> str | None:
    module_name = "pillow_avif._avif" if use_plugin else "PIL._avif"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    versions = getattr(module, "codec_versions", None)
    return str(versions()) if callable(versions) else None


def encode(image: Image.Image, arguments: argparse.Namespace, **extra: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(
        buffer,
        format="AVIF",
        quality=arguments.quality,
        speed=arguments.speed,
        max_threads=arguments.threads,
        **extra,
    )
    return buffer.getvalue()


def metadata_found(data: bytes) -> dict[str, bool]:
    reopened = Image.open(io.BytesIO(data))
    exif = reopened.getexif()
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    return {"exif": len(exif) > 0, "gps": len(gps) > 0}


def check_metadata(arguments: argparse.Namespace) -> dict[str, Any]:
    """Save a photo's copy without and with exif=b"" and look for EXIF and GPS."""
    source = Image.open(arguments.exif_source)
    height = round(source.height * METADATA_CHECK_WIDTH / source.width)
    source.draft("RGB", (METADATA_CHECK_WIDTH, height))
    # resize() keeps the info dict, so the EXIF read from the file comes along.
    small = source.resize((METADATA_CHECK_WIDTH, height))
    default = metadata_found(encode(small, arguments))
    stripped = metadata_found(encode(small, arguments, exif=b"", xmp=b""))
    return {
        "exif_copied_by_default": default["exif"],
        "gps_copied_by_default": default["gps"],
        "exif_after_empty_argument": stripped["exif"],
        "gps_after_empty_argument": stripped["gps"],
    }


def main() -> int:
    arguments = parse_arguments()
    plugin_version = None
    if arguments.use_plugin:
        plugin = importlib.import_module("pillow_avif")
        plugin_version = getattr(plugin, "__version__", "unknown")

    reference = Image.open(arguments.input)
    reference.load()
    encode(reference, arguments)

    times_ms: list[float] = []
    cpu_times_ms: list[float] = []
    data = b""
    for _ in range(max(1, arguments.repeats)):
        start = time.perf_counter()
        cpu_start = time.process_time()
        data = encode(reference, arguments)
        times_ms.append((time.perf_counter() - start) * 1000)
        cpu_times_ms.append((time.process_time() - cpu_start) * 1000)
    Path(arguments.output).write_bytes(data)

    import PIL

    report = {
        "pillow": PIL.__version__,
        "pillow_avif_plugin": plugin_version,
        "libavif": features.version("avif"),
        "codecs": codec_versions(arguments.use_plugin),
        "saver_module": Image.SAVE["AVIF"].__module__,
        "quality": arguments.quality,
        "speed": arguments.speed,
        "threads": arguments.threads,
        "width": reference.width,
        "height": reference.height,
        "times_ms": [round(value, 2) for value in times_ms],
        "cpu_times_ms": [round(value, 2) for value in cpu_times_ms],
        "size_bytes": len(data),
        "metadata": check_metadata(arguments),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
