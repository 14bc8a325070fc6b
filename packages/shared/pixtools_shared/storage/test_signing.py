from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from pixtools_shared.storage.errors import (
    DownloadLinkExpiredError,
    DownloadLinkInvalidError,
)
from pixtools_shared.storage.signing import (
    build_signed_url,
    content_disposition,
    verify_signed_url,
)

SECRET = "unit-test-secret-with-enough-length-0001"
NOW = 1_900_000_000.0


def _fields(url: str) -> tuple[str, str, dict[str, str]]:
    parts = urlsplit(url)
    area, key = parts.path.removeprefix("/api/files/").split("/", 1)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return area, unquote(key), query


def test_signed_url_layout() -> None:
    url = build_signed_url(
        SECRET, "http://127.0.0.1:8000/", "outputs", "j/jpg.jpg", "a.jpg", 60, now=NOW
    )
    parts = urlsplit(url)

    assert parts.netloc == "127.0.0.1:8000"
    assert parts.path == "/api/files/outputs/j/jpg.jpg"
    area, key, query = _fields(url)
    assert (area, key) == ("outputs", "j/jpg.jpg")
    assert query["expires"] == str(int(NOW) + 60)
    assert query["filename"] == "a.jpg"
    assert len(query["signature"]) == 64


def test_valid_url_verifies() -> None:
    url = build_signed_url(SECRET, "http://h", "bundles", "j.zip", "r.zip", 60, now=NOW)
    area, key, query = _fields(url)

    verify_signed_url(SECRET, area, key, now=NOW + 59, **query)


def test_expired_url_rejected() -> None:
    url = build_signed_url(SECRET, "http://h", "bundles", "j.zip", "r.zip", 60, now=NOW)
    area, key, query = _fields(url)

    with pytest.raises(DownloadLinkExpiredError):
        verify_signed_url(SECRET, area, key, now=NOW + 61, **query)


@pytest.mark.parametrize("field", ["key", "area", "expires", "filename", "secret"])
def test_tampered_url_rejected(field: str) -> None:
    url = build_signed_url(
        SECRET, "http://h", "outputs", "j/a.png", "a.png", 60, now=NOW
    )
    area, key, query = _fields(url)
    secret = SECRET
    if field == "key":
        key = "j/b.png"
    elif field == "area":
        area = "uploads"
    elif field == "expires":
        query["expires"] = str(int(query["expires"]) + 3600)
    elif field == "filename":
        query["filename"] = "evil.html"
    else:
        secret = "another-secret-with-enough-length-000002"

    with pytest.raises(DownloadLinkInvalidError):
        verify_signed_url(secret, area, key, now=NOW, **query)


@pytest.mark.parametrize(
    ("expires", "signature", "key"),
    [
        ("-5", "0" * 64, "j/a.png"),
        ("1e9", "0" * 64, "j/a.png"),
        ("1900000000", "zz", "j/a.png"),
        ("1900000000", "0" * 64, "../etc/passwd"),
    ],
)
def test_malformed_fields_rejected(expires: str, signature: str, key: str) -> None:
    with pytest.raises(DownloadLinkInvalidError):
        verify_signed_url(
            SECRET,
            "outputs",
            key,
            expires=expires,
            filename="a.png",
            signature=signature,
            now=NOW,
        )


def test_content_disposition_ascii() -> None:
    assert (
        content_disposition("photo-jpg.jpg") == 'attachment; filename="photo-jpg.jpg"'
    )


def test_content_disposition_unicode_and_quotes() -> None:
    value = content_disposition('fé"te.png')

    assert value == (
        "attachment; filename=\"f__te.png\"; filename*=UTF-8''f%C3%A9%22te.png"
    )
