"""AVIF encoders side by side: Pillow's own AVIF support and pillow-avif-plugin.

Both are timed by bench/avif_encoder_probe.py, each in its own interpreter (the
plugin lives in a separate virtual environment), on the same reference image at
the same quality, speed and thread count. Quality is compared by PSNR against the
reference, decoded here with this environment's Pillow.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import avif_encoder_probe
import numpy as np
from PIL import Image

from benchkit.images import BenchImage
from benchkit.pillow_baseline import AVIF_QUALITY, AVIF_SPEED, AVIF_THREADS
from benchkit.report import markdown_table
from benchkit.stats import percentile
from pixtools_shared.imaging import ImageLimits, convert_image

# Imported only to locate the script, which also makes build tools that infer
# dependencies from imports ship it with this module.
PROBE_SCRIPT = Path(avif_encoder_probe.__file__).resolve()
PROBE_TIMEOUT_SECONDS = 600


def psnr(reference: Image.Image, data: bytes) -> float | None:
    """Peak signal-to-noise ratio in dB of decoded `data` against `reference`."""
    decoded = Image.open(io.BytesIO(data)).convert("RGB")
    if decoded.size != reference.size:
        return None
    expected = np.asarray(reference.convert("RGB"), dtype=np.float64)
    actual = np.asarray(decoded, dtype=np.float64)
    mse = float(np.mean((expected - actual) ** 2))
    if mse == 0:
        return None
    return round(10 * math.log10(255**2 / mse), 2)


def write_inputs(image: BenchImage, width: int, folder: Path) -> tuple[Path, Path]:
    """Write the resized RGB reference (PNG) and the EXIF source JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    source_path = folder / "source.jpg"
    source_path.write_bytes(image.data)

    decoded = Image.open(io.BytesIO(image.data))
    height = round(decoded.height * width / decoded.width)
    decoded.draft("RGB", (width, height))
    reference = decoded.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    reference_path = folder / "reference.png"
    reference.save(reference_path, format="PNG", compress_level=1)
    return reference_path, source_path


def run_probe(
    python: Path | str,
    label: str,
    reference_path: Path,
    source_path: Path,
    repeats: int,
    use_plugin: bool,
) -> dict[str, Any]:
    output = reference_path.with_name(f"{label}.avif")
    command = [
        str(python),
        str(PROBE_SCRIPT),
        "--input",
        str(reference_path),
        "--exif-source",
        str(source_path),
        "--output",
        str(output),
        "--quality",
        str(AVIF_QUALITY),
        "--speed",
        str(AVIF_SPEED),
        "--threads",
        str(AVIF_THREADS),
        "--repeats",
        str(repeats),
    ]
    if use_plugin:
        command.append("--use-plugin")
    completed = subprocess.run(  # noqa: S603  (fixed argv built above)
        command,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        return {"label": label, "error": completed.stderr.strip()[-2000:]}
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    report["label"] = label
    report["p50_ms"] = round(percentile(report["times_ms"], 50), 2)
    report["cpu_p50_ms"] = round(percentile(report["cpu_times_ms"], 50), 2)
    report["output"] = str(output)
    return report


def pixtools_avif_metadata(image: BenchImage, width: int) -> dict[str, bool]:
    """Check whether PixTools' AVIF output of the photo contains EXIF or GPS."""
    result = convert_image(image.data, "avif", {"width": width}, ImageLimits())
    exif = Image.open(io.BytesIO(result.data)).getexif()
    return {"exif": len(exif) > 0, "gps": len(exif.get_ifd(0x8825)) > 0}


def compare_encoders(
    image: BenchImage,
    width: int,
    folder: Path,
    *,
    plugin_python: Path | None,
    repeats: int,
) -> dict[str, Any]:
    """Time both encoders on `image` resized to `width`; see the module docstring."""
    reference_path, source_path = write_inputs(image, width, folder)
    reference = Image.open(reference_path)
    reference.load()

    encoders = [
        run_probe(
            sys.executable, "pillow-native", reference_path, source_path, repeats, False
        )
    ]
    skipped = None
    if plugin_python is None:
        skipped = "no --avif-plugin-python given"
    elif not Path(plugin_python).exists():
        skipped = f"{plugin_python} does not exist"
    else:
        encoders.append(
            run_probe(
                plugin_python,
                "pillow-avif-plugin",
                reference_path,
                source_path,
                repeats,
                True,
            )
        )

    for encoder in encoders:
        if "error" not in encoder:
            encoder["psnr_db"] = psnr(reference, Path(encoder["output"]).read_bytes())

    # CPU time, because wall time on a shared machine also counts other processes.
    timed = [encoder for encoder in encoders if "cpu_p50_ms" in encoder]
    fastest = (
        min(timed, key=lambda encoder: encoder["cpu_p50_ms"])["label"]
        if timed
        else None
    )
    return {
        "image": image.name,
        "width": reference.width,
        "height": reference.height,
        "encoders": encoders,
        "plugin_skipped": skipped,
        "fastest": fastest if len(timed) > 1 else None,
        "pixtools_output_metadata": pixtools_avif_metadata(image, width),
    }


def markdown(comparison: dict[str, Any]) -> str:
    """Render the comparison as a table plus one line per skipped or failed encoder."""
    headers = [
        "encoder",
        "Pillow",
        "libavif",
        "wall p50 ms",
        "CPU p50 ms",
        "bytes",
        "PSNR dB",
        "EXIF copied by default",
        "GPS copied by default",
    ]
    rows = []
    notes = []
    for encoder in comparison["encoders"]:
        if "error" in encoder:
            notes.append(f"- {encoder['label']} failed: {encoder['error'][-300:]}")
            continue
        metadata = encoder["metadata"]
        rows.append(
            [
                encoder["label"]
                + (
                    f" {encoder['pillow_avif_plugin']}"
                    if encoder.get("pillow_avif_plugin")
                    else ""
                ),
                encoder["pillow"],
                encoder["libavif"],
                encoder["p50_ms"],
                encoder["cpu_p50_ms"],
                encoder["size_bytes"],
                encoder.get("psnr_db"),
                "yes" if metadata["exif_copied_by_default"] else "no",
                "yes" if metadata["gps_copied_by_default"] else "no",
            ]
        )
    if comparison["plugin_skipped"]:
        notes.append(
            f"- pillow-avif-plugin not measured: {comparison['plugin_skipped']}"
        )
    pixtools = comparison["pixtools_output_metadata"]
    notes.append(
        "- PixTools' own AVIF output of the same photo: EXIF "
        f"{'present' if pixtools['exif'] else 'absent'}, GPS "
        f"{'present' if pixtools['gps'] else 'absent'}."
    )
    title = (
        f"AVIF encoders on {comparison['image']} resized to "
        f"{comparison['width']}x{comparison['height']} (quality {AVIF_QUALITY}, "
        f"speed {AVIF_SPEED}, {AVIF_THREADS} thread):"
    )
    return "\n\n".join([title, markdown_table(headers, rows), "\n".join(notes)])
