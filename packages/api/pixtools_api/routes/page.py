"""The upload page at `/`: plain HTML plus JavaScript modules, no build step.

The files are read with importlib.resources instead of StaticFiles, which needs a
real folder, so the page also works when the package runs from a zip (PEX).
"""

from __future__ import annotations

from importlib import resources
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from pixtools_api.dependencies import SettingsDep
from pixtools_shared.errors import PixToolsError
from pixtools_shared.settings import Settings

router = APIRouter(tags=["page"])

STATIC_FOLDER = "static"
INDEX_FILE = "index.html"

# Media type of each servable static file, by extension.
STATIC_MEDIA_TYPES: dict[str, str] = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

STATIC_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


class StaticFileNotFoundError(PixToolsError):
    code = "not-found"
    http_status = 404
    default_message = "The file was not found."


def static_folder() -> resources.abc.Traversable:
    return resources.files("pixtools_api").joinpath(STATIC_FOLDER)


def list_static_files() -> dict[str, str]:
    """Map the servable file names under static/ to their media types."""
    files: dict[str, str] = {}
    for entry in static_folder().iterdir():
        extension = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and extension in STATIC_MEDIA_TYPES:
            files[entry.name] = STATIC_MEDIA_TYPES[extension]
    return files


# Read once at import: the package's files do not change while it runs, and the
# table is also the allow-list, so no other name under static/ is ever opened.
STATIC_FILES = list_static_files()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def result_image_origins(settings: Settings) -> list[str]:
    """Return the origins that result downloads come from, other than the page's.

    The page shows result previews, so the Content-Security-Policy must allow
    images from the storage that signs the download links.
    """
    if settings.STORAGE_BACKEND == "filesystem":
        return [_origin(settings.PUBLIC_BASE_URL)]

    bucket = settings.S3_BUCKET_OUTPUTS
    endpoint = settings.S3_PUBLIC_ENDPOINT_URL or settings.S3_ENDPOINT_URL
    if endpoint is not None:
        parts = urlsplit(endpoint)
        return [
            _origin(endpoint),
            f"{parts.scheme}://{bucket}.{parts.netloc}",
        ]

    # AWS itself: presigned URLs use the regional or the global virtual host
    # name of the bucket, or the regional host with path-style addressing.
    region = settings.S3_REGION
    return [
        f"https://{bucket}.s3.{region}.amazonaws.com",
        f"https://{bucket}.s3.amazonaws.com",
        f"https://s3.{region}.amazonaws.com",
    ]


def build_content_security_policy(settings: Settings) -> str:
    """Build the page's policy: its own scripts, styles and API, and result images."""
    image_sources = " ".join(
        ["'self'", "data:", "blob:", *result_image_origins(settings)]
    )
    return (
        f"default-src 'self'; img-src {image_sources}; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


def read_static_text(name: str) -> str:
    """Read a file of the static package data as UTF-8 text."""
    return static_folder().joinpath(name).read_text("utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def read_page(settings: SettingsDep) -> HTMLResponse:
    return HTMLResponse(
        read_static_text(INDEX_FILE),
        headers={
            "Content-Security-Policy": build_content_security_policy(settings),
            **STATIC_HEADERS,
        },
    )


@router.get("/static/{name}", include_in_schema=False)
def read_static_file(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise StaticFileNotFoundError(f"No static file named {name!r}.")
    return Response(
        read_static_text(name), media_type=media_type, headers=STATIC_HEADERS
    )
