"""Capture a screenshot of the finished job view for the README.

Starts the platform on the embedded profile in a temporary folder, submits a
photo with every operation through the page in headless Chromium, waits for
the job to complete and saves the job section as a PNG:

    /work/venv/bin/python tests/browser/capture_screenshot.py \\
        --out docs/images/job-view.png

Source roots are taken from this file's location, so the command works from
any folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = [
    REPOSITORY / "packages" / name
    for name in ("shared", "api", "worker-standard", "worker-ml")
] + [REPOSITORY / "tests"]

VIEWPORT_WIDTH = 1100
VIEWPORT_HEIGHT = 900
JOB_TIMEOUT_MS = 120_000


def capture(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    from browser.browser_support import (
        CHROMIUM_ARGS,
        CHROMIUM_PATH,
        build_gps_photo,
        running_platform,
    )

    with tempfile.TemporaryDirectory(prefix="pixtools-screenshot-") as folder:
        photo = build_gps_photo(Path(folder) / "harbour.jpg")
        with running_platform(Path(folder)) as platform, sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(
                viewport={"width": VIEWPORT_WIDTH, "height": VIEWPORT_HEIGHT},
                base_url=platform.base_url,
            )
            page.goto("/")
            page.wait_for_selector("#op-jpg")
            page.set_input_files("#file", str(photo))
            page.wait_for_selector("#file-details:has-text('px')")
            names = ["png", "avif"] + (["denoise"] if platform.has_ml_worker else [])
            for name in names:
                page.check(f"#op-{name}")
            page.fill("#width", "360")
            page.click("#submit")
            page.wait_for_selector(
                "#job-summary[data-status=COMPLETED]", timeout=JOB_TIMEOUT_MS
            )
            # Let the previews finish decoding before the capture.
            page.wait_for_function(
                "() => [...document.images].every(image => image.complete)"
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            page.locator("#job").screenshot(path=str(out))
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=REPOSITORY / "docs" / "images" / "job-view.png",
        help="PNG file to write (default docs/images/job-view.png)",
    )
    arguments = parser.parse_args()
    for root in SOURCE_ROOTS:
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
    capture(arguments.out.resolve())
    print(f"saved {arguments.out}")


if __name__ == "__main__":
    main()
