"""Tests of the streaming multipart reader, fed with hand-built multipart bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import pytest

from pixtools_api.errors import (
    FormFieldTooLargeError,
    InvalidRequestError,
    UnsupportedMediaTypeError,
)
from pixtools_api.upload import (
    FormLimits,
    MultipartForm,
    clean_filename,
    max_body_bytes,
    read_multipart_form,
)
from pixtools_shared.errors import UploadTooLargeError

BOUNDARY = "test-boundary-0123456789"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
LIMITS = FormLimits(max_file_bytes=1000, max_field_bytes=100)
TEXT_FIELDS = ("operations", "operation_params", "webhook_url")


def build_part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    headers = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if filename is not None:
        headers += "Content-Type: application/octet-stream\r\n"
    return headers.encode("utf-8") + b"\r\n" + value + b"\r\n"


def build_body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


class ChunkSource:
    """Async iterator over fixed-size chunks that counts how many were read."""

    def __init__(self, body: bytes, chunk_size: int = 64) -> None:
        self.chunks = [
            body[i : i + chunk_size] for i in range(0, len(body), chunk_size)
        ]
        self.read_count = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.read_count += 1
            yield chunk


def parse(
    body: bytes | ChunkSource,
    content_type: str | None = CONTENT_TYPE,
    content_length: str | None = None,
    text_fields: Iterable[str] = TEXT_FIELDS,
) -> MultipartForm:
    source = body if isinstance(body, ChunkSource) else ChunkSource(body)
    return asyncio.run(
        read_multipart_form(
            source.__aiter__(),
            content_type=content_type,
            content_length=content_length,
            file_field="file",
            text_fields=tuple(text_fields),
            limits=LIMITS,
        )
    )


def test_reader_returns_file_and_fields() -> None:
    body = build_body(
        build_part("file", b"\x89PNG\r\n\x1a\nrest", filename="photo.png"),
        build_part("operations", b'["png"]'),
    )

    form = parse(body)

    assert form.file.data == b"\x89PNG\r\n\x1a\nrest"
    assert form.file.filename == "photo.png"
    assert form.file.content_type == "application/octet-stream"
    assert form.fields == {"operations": '["png"]'}


def test_reader_decodes_utf8_filename() -> None:
    body = build_body(build_part("file", b"x", filename="été.jpg"))

    form = parse(body)

    assert form.file.filename == "été.jpg"


def test_reader_stops_reading_at_file_limit() -> None:
    source = ChunkSource(
        build_body(build_part("file", b"a" * 50_000, filename="big.bin")), 64
    )

    with pytest.raises(UploadTooLargeError):
        parse(source)

    # 1000 bytes of limit need about 17 chunks of 64 bytes; the body has ~780.
    assert source.read_count < 25
    assert len(source.chunks) > 700


def test_reader_accepts_file_at_limit() -> None:
    body = build_body(build_part("file", b"a" * 1000, filename="edge.bin"))

    form = parse(body)

    assert len(form.file.data) == 1000


def test_reader_rejects_large_content_length_before_reading() -> None:
    source = ChunkSource(build_body(build_part("file", b"a", filename="a.bin")))
    declared = str(max_body_bytes(LIMITS, len(TEXT_FIELDS)) + 1)

    with pytest.raises(UploadTooLargeError):
        parse(source, content_length=declared)

    assert source.read_count == 0


def test_reader_rejects_long_text_field() -> None:
    body = build_body(
        build_part("file", b"x", filename="a.png"),
        build_part("operations", b"[" + b" " * 200 + b"]"),
    )

    with pytest.raises(FormFieldTooLargeError):
        parse(body)


def test_reader_rejects_unknown_field() -> None:
    body = build_body(
        build_part("file", b"x", filename="a.png"), build_part("extra", b"1")
    )

    with pytest.raises(InvalidRequestError) as caught:
        parse(body)

    assert caught.value.details == [{"field": "extra", "message": "unknown field"}]


def test_reader_rejects_duplicate_field() -> None:
    body = build_body(
        build_part("file", b"x", filename="a.png"),
        build_part("operations", b"[]"),
        build_part("operations", b"[]"),
    )

    with pytest.raises(InvalidRequestError) as caught:
        parse(body)

    assert caught.value.details == [
        {"field": "operations", "message": "duplicate field"}
    ]


def test_reader_requires_file_part() -> None:
    body = build_body(build_part("operations", b'["png"]'))

    with pytest.raises(InvalidRequestError) as caught:
        parse(body)

    assert caught.value.details == [{"field": "file", "message": "field required"}]


def test_reader_rejects_file_sent_as_text_field() -> None:
    body = build_body(build_part("file", b"not a file part"))

    with pytest.raises(InvalidRequestError):
        parse(body)


def test_reader_rejects_truncated_body() -> None:
    body = build_body(build_part("file", b"abc", filename="a.png"))

    with pytest.raises(InvalidRequestError) as caught:
        parse(body[:-20])

    assert "closing boundary" in caught.value.message


def test_reader_rejects_invalid_utf8_field() -> None:
    body = build_body(
        build_part("file", b"x", filename="a.png"),
        build_part("operations", b"\xff\xfe"),
    )

    with pytest.raises(InvalidRequestError) as caught:
        parse(body)

    assert caught.value.details == [{"field": "operations", "message": "invalid UTF-8"}]


def test_reader_rejects_other_content_type() -> None:
    with pytest.raises(UnsupportedMediaTypeError) as caught:
        parse(b"{}", content_type="application/json")

    assert "application/json" in caught.value.message


def test_reader_rejects_missing_boundary() -> None:
    with pytest.raises(InvalidRequestError):
        parse(b"", content_type="multipart/form-data")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("C:\\Users\\me\\photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("a\x00b\x1f.png", "ab.png"),
        ("...", None),
        ("", None),
        (None, None),
        ("x" * 300, "x" * 255),
    ],
)
def test_clean_filename(raw: str | None, expected: str | None) -> None:
    assert clean_filename(raw) == expected
