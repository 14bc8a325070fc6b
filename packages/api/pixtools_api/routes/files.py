"""GET /api/files/{area}/{key}: signed downloads of the filesystem storage backend.

S3 storage returns presigned S3 URLs instead, so with S3 this route always
responds with 404. The link's signature covers area, key, expiry and file name, so
the name in Content-Disposition is the one the API chose when it signed it.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from pixtools_api.dependencies import ServicesDep
from pixtools_api.errors import FileNotFoundInStorageError
from pixtools_api.schemas import error_responses
from pixtools_shared.operations import CONTENT_TYPES
from pixtools_shared.storage import FilesystemStorage
from pixtools_shared.storage.signing import content_disposition, verify_signed_url

logger = structlog.get_logger(__name__)

router = APIRouter(prefix="/api", tags=["files"])

# Uploads are never downloaded; only results and bundles are.
DOWNLOADABLE_AREAS = frozenset({"outputs", "bundles"})


def media_type_for(filename: str) -> str:
    extension = filename.rpartition(".")[2].lower()
    if extension == "zip":
        return "application/zip"
    return CONTENT_TYPES.get(extension, "application/octet-stream")


@router.get(
    "/files/{area}/{key:path}",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"image/*": {}, "application/zip": {}},
            "description": "The file, with Content-Disposition: attachment.",
        },
        **error_responses(403, 404, 410, 422),
    },
)
def download_file(
    area: str,
    key: str,
    services: ServicesDep,
    expires: Annotated[str, Query(max_length=16)],
    filename: Annotated[str, Query(max_length=400)],
    signature: Annotated[str, Query(max_length=128)],
) -> FileResponse:
    """Serve one stored result or bundle named by a signed, expiring link."""
    storage = services.storage
    if not isinstance(storage, FilesystemStorage) or area not in DOWNLOADABLE_AREAS:
        raise FileNotFoundInStorageError()

    verify_signed_url(
        services.settings.SIGNING_SECRET,
        area,
        key,
        expires=expires,
        filename=filename,
        signature=signature,
    )

    path = storage.path_for(area, key)
    if not path.is_file():
        logger.info("download_missing_file", area=area, key=key)
        raise FileNotFoundInStorageError()

    return FileResponse(
        path,
        media_type=media_type_for(filename),
        headers={
            "Content-Disposition": content_disposition(filename),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=300",
        },
    )
