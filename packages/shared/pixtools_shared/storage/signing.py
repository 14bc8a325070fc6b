"""HMAC-signed, expiring download URLs of the filesystem storage backend.

A URL looks like ``{base}/api/files/{area}/{key}?expires={unix seconds}
&filename={name}&signature={hex}`` (one line).
The signature is HMAC-SHA256 over area, key, expiry and filename, so none of them
can be changed without the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import quote, urlencode

from pixtools_shared.storage.errors import (
    DownloadLinkExpiredError,
    DownloadLinkInvalidError,
)
from pixtools_shared.storage.keys import validate_area, validate_key

FILES_ROUTE = "/api/files"
MAX_FILENAME_LENGTH = 200

_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_SAFE_FILENAME = re.compile(r"[A-Za-z0-9._-]+")


def sign_download(secret: str, area: str, key: str, expires: int, filename: str) -> str:
    """Return the hex HMAC-SHA256 signature of one download."""
    message = "\n".join((area, key, str(expires), filename)).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def build_signed_url(
    secret: str,
    base_url: str,
    area: str,
    key: str,
    filename: str,
    expires_in: int,
    now: float | None = None,
) -> str:
    """Build a signed download URL that is valid for ``expires_in`` seconds."""
    validate_area(area)
    validate_key(key)
    filename = filename[:MAX_FILENAME_LENGTH]
    expires = int(now if now is not None else time.time()) + expires_in
    signature = sign_download(secret, area, key, expires, filename)
    query = urlencode(
        {"expires": str(expires), "filename": filename, "signature": signature}
    )
    path = f"{FILES_ROUTE}/{area}/{quote(key, safe='/')}"
    return f"{base_url.rstrip('/')}{path}?{query}"


def verify_signed_url(
    secret: str,
    area: str,
    key: str,
    *,
    expires: str,
    filename: str,
    signature: str,
    now: float | None = None,
) -> None:
    """Check a download URL's fields; raise if it is forged or expired.

    Raises DownloadLinkInvalidError for a bad area, key, expiry value or
    signature, and DownloadLinkExpiredError for a valid link past its expiry.
    """
    try:
        validate_area(area)
        validate_key(key)
    except ValueError:
        raise DownloadLinkInvalidError(
            "The download link names an invalid file."
        ) from None
    if not expires.isdigit() or len(expires) > 12:
        raise DownloadLinkInvalidError("The download link has an invalid expiry time.")
    if not _SIGNATURE.fullmatch(signature):
        raise DownloadLinkInvalidError("The download link has an invalid signature.")

    expected = sign_download(secret, area, key, int(expires), filename)
    if not hmac.compare_digest(expected, signature):
        raise DownloadLinkInvalidError("The download link has an invalid signature.")

    current = now if now is not None else time.time()
    if int(expires) < current:
        raise DownloadLinkExpiredError()


def content_disposition(filename: str) -> str:
    """Build an ``attachment`` Content-Disposition header value for ``filename``.

    Plain ASCII names go in ``filename=``; anything else is replaced by "_" there
    and also given in full as RFC 5987 ``filename*=UTF-8''...``.
    """
    filename = filename[:MAX_FILENAME_LENGTH] or "download"
    if _SAFE_FILENAME.fullmatch(filename):
        return f'attachment; filename="{filename}"'
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    encoded = quote(filename, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
