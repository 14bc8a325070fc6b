"""Browser tests of the upload page in headless Chromium against the real platform.

The API and the workers run on the embedded profile (see browser_support.py).
The tests drive the page like a user: choose a file, pick operations with the
keyboard, submit, watch the progress, open the results and the ZIP, reload and
find the job in the history.
"""

from __future__ import annotations

import email.policy
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from e2e_images import GPS_LATITUDE, GPS_LONGITUDE
from PIL import Image

from browser.browser_support import (
    BROWSER_MAX_UPLOAD_BYTES,
    CHROMIUM_ARGS,
    CHROMIUM_PATH,
    BrowserPlatform,
    build_gps_photo,
    build_oversized_png,
    build_truncated_jpeg,
    chromium_missing_reason,
    running_platform,
)

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.skipif(
    chromium_missing_reason() is not None, reason=str(chromium_missing_reason())
)

JOB_TIMEOUT_MS = 60_000
IMAGE_OPERATIONS = ("jpg", "png", "webp", "avif")
# The photo is 640 x 480 stored with EXIF orientation 6: 480 x 640 displayed,
# so a 320 px wide box gives 320 x 427.
RESIZED_SIZE = (320, 427)
PILLOW_FORMATS = {
    "jpg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "avif": "AVIF",
    "denoise": "PNG",
}

# Records every status the job summary shows, so a test can tell that the page
# showed progress before the final state.
STATUS_RECORDER = """
window.seenStatuses = [];
new MutationObserver(() => {
  const status = document.getElementById("job-summary").dataset.status;
  if (status && window.seenStatuses.at(-1) !== status) window.seenStatuses.push(status);
}).observe(document.getElementById("job-summary"), { attributes: true });
"""


@dataclass
class FinishedJob:
    """A job submitted through the page and followed until it completed."""

    page: Any
    job_id: str
    operations: list[str]
    seen_statuses: list[str]
    idempotency_keys: list[str]
    focused_after_submit: str
    page_errors: list[str]


@pytest.fixture(scope="module")
def browser_platform(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BrowserPlatform]:
    with running_platform(tmp_path_factory.mktemp("browser-platform")) as started:
        yield started


@pytest.fixture(scope="module")
def browser_context(browser_platform: BrowserPlatform) -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM_PATH), headless=True, args=CHROMIUM_ARGS
        )
        # A new context is a fresh profile: empty localStorage and cache.
        context = browser.new_context(
            base_url=browser_platform.base_url, viewport={"width": 1200, "height": 900}
        )
        context.set_default_timeout(JOB_TIMEOUT_MS)
        yield context
        context.close()
        browser.close()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("browser-images")
    return {
        "photo": build_gps_photo(folder / "holiday.jpg"),
        "oversized": build_oversized_png(
            folder / "huge.png", BROWSER_MAX_UPLOAD_BYTES + 1
        ),
        "damaged": build_truncated_jpeg(folder / "damaged.jpg"),
    }


def open_page(context: Any, errors: list[str] | None = None) -> Any:
    """Open the upload page; uncaught script errors go to `errors`."""
    page = context.new_page()
    if errors is not None:
        page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/")
    page.wait_for_selector("#op-jpg")
    return page


def wait_for_final(page: Any, status: str = "COMPLETED") -> None:
    page.wait_for_selector(
        f"#job-summary[data-status={status}]", timeout=JOB_TIMEOUT_MS
    )


@pytest.fixture(scope="module")
def finished_job(
    browser_context: Any, browser_platform: BrowserPlatform, images: dict[str, Path]
) -> FinishedJob:
    errors: list[str] = []
    page = open_page(browser_context, errors)
    keys: list[str] = []
    page.on(
        "request",
        lambda request: (
            keys.append(request.headers.get("idempotency-key", ""))
            if request.url.endswith("/api/process")
            else None
        ),
    )
    page.evaluate(STATUS_RECORDER)
    page.set_input_files("#file", str(images["photo"]))
    page.wait_for_selector("#file-details:has-text('px')")

    # In the order of the form, which is the order of GET /api/limits.
    operations = ["jpg", "png", "webp", "avif"]
    if browser_platform.has_ml_worker:
        operations.append("denoise")
    operations.append("metadata")
    # Keyboard only: Space toggles a checkbox, arrow keys move a slider.
    for name in ("png", "avif", "denoise"):
        if name in operations:
            page.focus(f"#op-{name}")
            page.keyboard.press("Space")
    page.focus("#quality-webp")
    for _ in range(10):
        page.keyboard.press("ArrowLeft")
    page.fill("#width", str(RESIZED_SIZE[0]))

    page.click("#submit")
    page.wait_for_selector("#job:not([hidden]) #job-id:not(:empty)")
    job_id = page.text_content("#job-id") or ""
    focused = page.evaluate("document.activeElement.id")
    wait_for_final(page)
    return FinishedJob(
        page=page,
        job_id=job_id,
        operations=operations,
        seen_statuses=page.evaluate("window.seenStatuses"),
        idempotency_keys=keys,
        focused_after_submit=focused,
        page_errors=errors,
    )


def test_job_view_follows_progress(
    finished_job: FinishedJob, browser_platform: BrowserPlatform
) -> None:
    page = finished_job.page

    rows = page.eval_on_selector_all(
        "#operation-progress li",
        "items => items.map(item => [item.dataset.operation, item.dataset.status])",
    )
    assert rows == [[name, "SUCCEEDED"] for name in finished_job.operations]
    assert finished_job.seen_statuses[0] in ("QUEUED", "RUNNING")
    assert finished_job.seen_statuses[-1] == "COMPLETED"
    assert page.text_content("#job-progress-text") == (
        f"{len(rows)} of {len(rows)} operations finished"
    )
    # The page followed the job over the event stream, not by polling.
    opened = re.compile(rf"event_stream_opened .* job_id={finished_job.job_id}")
    assert opened.search(browser_platform.api.log_tail(lines=10_000))
    assert finished_job.page_errors == []


def test_submission_sends_key_and_moves_focus(finished_job: FinishedJob) -> None:
    keys = finished_job.idempotency_keys

    assert len(keys) == 1
    assert len(keys[0]) == 36
    assert finished_job.focused_after_submit == "job-heading"


def test_job_params_follow_form(finished_job: FinishedJob) -> None:
    response = finished_job.page.request.get(f"/api/jobs/{finished_job.job_id}")
    operations = {entry["name"]: entry for entry in response.json()["operations"]}

    assert operations["webp"]["params"]["quality"] == 70
    assert operations["jpg"]["params"]["quality"] == 85
    assert operations["jpg"]["params"]["width"] == RESIZED_SIZE[0]
    assert "quality" not in operations["png"]["params"]
    assert operations["metadata"]["params"] == {}


def test_result_previews_load(finished_job: FinishedJob) -> None:
    widths = finished_job.page.eval_on_selector_all(
        "img.result-preview",
        "images => images.map(image => [image.complete, image.naturalWidth])",
    )
    image_count = len([name for name in finished_job.operations if name != "metadata"])

    assert len(widths) == image_count
    assert all(complete for complete, _width in widths)
    assert all(width == RESIZED_SIZE[0] for _complete, width in widths)


def test_result_links_decode_with_pillow(finished_job: FinishedJob) -> None:
    page = finished_job.page
    links = page.eval_on_selector_all(
        "a.download-link",
        "links => links.map(link => [link.dataset.operation, link.href])",
    )

    assert sorted(name for name, _href in links) == sorted(finished_job.operations)
    for name, href in links:
        response = page.request.get(href)
        assert response.status == 200, name
        body = response.body()
        if name == "metadata":
            document = json.loads(body)
            assert document["gps"]["latitude"] == pytest.approx(GPS_LATITUDE, abs=1e-6)
            continue
        with Image.open(io.BytesIO(body)) as image:
            image.load()
            assert image.size == RESIZED_SIZE, name
            assert image.format == PILLOW_FORMATS[name]


def test_archive_link_holds_every_result(finished_job: FinishedJob) -> None:
    page = finished_job.page
    href = page.get_attribute("#archive-link", "href")
    assert href is not None

    response = page.request.get(href)

    assert response.status == 200
    with zipfile.ZipFile(io.BytesIO(response.body())) as archive:
        names = archive.namelist()
        assert len(names) == len(finished_job.operations)
        for name in names:
            if name.endswith(".json"):
                assert "gps" in json.loads(archive.read(name))
                continue
            with Image.open(io.BytesIO(archive.read(name))) as image:
                image.load()
                assert image.size == RESIZED_SIZE, name


def test_metadata_flags_gps_as_private(finished_job: FinishedJob) -> None:
    page = finished_job.page
    private = page.text_content(".private-data") or ""

    assert "Private data: location" in private
    assert f"{GPS_LATITUDE:.6f}° N" in private
    assert f"{abs(GPS_LONGITUDE):.6f}° W" in private
    assert page.locator(".gps-table .private-flag").count() == 3
    assert "PixTestCam" in (page.text_content(".metadata") or "")


def test_denoise_comparison_slider(
    finished_job: FinishedJob, browser_platform: BrowserPlatform
) -> None:
    if not browser_platform.has_ml_worker:
        pytest.skip("the ML worker package is not importable here")
    page = finished_job.page
    slider = page.locator(".compare-slider")

    slider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")

    assert slider.get_attribute("aria-valuetext") == "55% original, 45% denoised"
    before = page.eval_on_selector(
        ".compare-before", "image => [image.src.slice(0, 5), image.naturalWidth]"
    )
    assert before[0] == "blob:"
    assert before[1] > 0


def test_history_survives_reload(
    finished_job: FinishedJob, browser_context: Any
) -> None:
    page = open_page(browser_context)
    page.reload()
    page.wait_for_selector("#op-jpg")
    item = page.locator(f"#history-list li[data-job-id='{finished_job.job_id}']")

    details = item.locator(".hint").text_content() or ""
    assert "completed" in details
    assert "expires in" in details

    item.locator("button").click()
    wait_for_final(page)
    assert page.get_attribute("#archive-link", "href")
    assert page.evaluate("document.activeElement.id") == "job-heading"
    page.close()


def test_oversized_file_rejected_locally(
    browser_context: Any, images: dict[str, Path]
) -> None:
    page = open_page(browser_context)
    posts: list[str] = []
    page.on(
        "request",
        lambda request: posts.append(request.url) if request.method == "POST" else None,
    )

    page.set_input_files("#file", str(images["oversized"]))
    page.wait_for_selector("#file-error:not([hidden])")
    page.click("#submit")

    file_error = page.text_content("#file-error") or ""
    assert "more than the limit of 390.6 KiB" in file_error
    assert "The form has problems" in (page.text_content("#error") or "")
    assert page.evaluate("document.activeElement.id") == "file"
    assert page.get_attribute("#file", "aria-invalid") == "true"
    assert posts == []
    page.close()


def test_damaged_file_shows_api_error(
    browser_context: Any, images: dict[str, Path]
) -> None:
    page = open_page(browser_context)

    page.set_input_files("#file", str(images["damaged"]))
    page.wait_for_selector("#file-details:has-text('no preview')")
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden]) .error-code")

    assert "damaged or truncated" in (page.text_content("#error .error-message") or "")
    assert "opens in an image viewer" in (
        page.text_content("#error .error-advice") or ""
    )
    assert page.text_content("#error .error-code") == (
        "Error code: invalid-image (HTTP 422)"
    )
    assert page.evaluate("document.activeElement.id") == "error"
    page.close()


def text_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The non-file fields of a multipart/form-data body."""
    header = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.default).parsebytes(header + body)
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is None and isinstance(name, str):
            fields[name] = part.get_content().strip()
    return fields


def test_lost_response_retried_with_same_key(
    browser_context: Any, images: dict[str, Path]
) -> None:
    page = open_page(browser_context)
    photo = images["photo"]
    keys: list[str] = []
    first_job: list[str] = []

    def drop_first_response(route: Any) -> None:
        request = route.request
        keys.append(request.headers["idempotency-key"])
        if len(keys) > 1:
            route.continue_()
            return
        # Send the page's request to the API, then fail it in the page: the job
        # exists, but the page never receives the response. Chromium hides the file
        # part of intercepted bodies, so the file is attached again here.
        fields = text_fields(request.headers["content-type"], request.post_data_buffer)
        file_part = {
            "name": photo.name,
            "mimeType": "image/jpeg",
            "buffer": photo.read_bytes(),
        }
        sent = page.request.post(
            request.url,
            headers={"Idempotency-Key": keys[0]},
            multipart={"file": file_part, **fields},
        )
        first_job.append(sent.json()["job_id"])
        route.abort("connectionreset")

    page.route("**/api/process", drop_first_response)
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#file-details:has-text('px')")
    for name in ("webp", "metadata"):
        page.focus(f"#op-{name}")
        page.keyboard.press("Space")
    with page.expect_response("**/api/process") as response_info:
        page.click("#submit")
    wait_for_final(page)

    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert response_info.value.headers.get("idempotent-replayed") == "true"
    assert page.text_content("#job-id") == first_job[0]
    page.close()


def test_phone_layout_fits_width(
    finished_job: FinishedJob, browser_context: Any
) -> None:
    page = browser_context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/#job={finished_job.job_id}")
    wait_for_final(page)

    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow == 0
    page.close()


def test_polling_when_event_stream_fails(
    browser_context: Any, images: dict[str, Path]
) -> None:
    page = open_page(browser_context)
    polls: list[str] = []
    page.on(
        "request",
        lambda request: (
            polls.append(request.url)
            if "/api/jobs/" in request.url and not request.url.endswith("/events")
            else None
        ),
    )
    # A 503 makes EventSource give up at once, as when the API is at its
    # EVENTS_MAX_STREAMS limit.
    page.route(
        "**/events",
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body=json.dumps({"error": {"code": "too-many-event-streams"}}),
        ),
    )

    page.set_input_files("#file", str(images["photo"]))
    page.wait_for_selector("#file-details:has-text('px')")
    page.click("#submit")
    wait_for_final(page)

    assert len(polls) >= 1
    assert page.locator("#operation-progress li[data-status=SUCCEEDED]").count() == 3
    page.close()
