"""Streaming multipart/form-data reader with size limits enforced while reading.

Starlette's `Request.form()` spools a whole file part to disk before the endpoint
runs, so a 10 GB upload would be written out before any limit applies. This reader
feeds the request stream chunk by chunk into python-multipart's push parser and
raises as soon as a part crosses its limit, so the server buffers at most the
limit plus one chunk per part. A Content-Length header that already exceeds what the
limits allow is rejected before the first body byte is read.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field

import structlog
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from pixtools_api.errors import (
    FormFieldTooLargeError,
    InvalidRequestError,
    UnsupportedMediaTypeError,
)
from pixtools_shared.errors import PixToolsError, UploadTooLargeError

logger = structlog.get_logger(__name__)

# Bytes allowed for boundaries and part headers on top of the file and field
# limits when the Content-Length header is checked up front.
MULTIPART_OVERHEAD_BYTES = 16 * 1024

MAX_FILENAME_LENGTH = 255


class UploadTimedOutError(PixToolsError):
    """The request body did not arrive within UPLOAD_READ_TIMEOUT_SECONDS."""

    code = "upload-timed-out"
    http_status = 408
    default_message = "The upload took too long to arrive."


@dataclass(frozen=True)
class FormLimits:
    """Byte limits of one multipart form, and the time the whole body may take."""

    max_file_bytes: int
    max_field_bytes: int
    read_timeout_seconds: float | None = None
    """Wall-clock limit on receiving the whole body; None sets no limit."""


@dataclass(frozen=True)
class UploadedFile:
    """The file part of a form: its client-side name, declared type and bytes."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class MultipartForm:
    """A parsed form: the one file part and the text fields by name."""

    file: UploadedFile
    fields: dict[str, str]


@dataclass
class _Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytearray = field(default_factory=bytearray)


class _FormCollector:
    """Callbacks for MultipartParser that collect parts and enforce the limits."""

    def __init__(
        self, file_field: str, text_fields: Collection[str], limits: FormLimits
    ) -> None:
        self.file_field = file_field
        self.text_fields = frozenset(text_fields)
        self.limits = limits
        self.parts: dict[str, _Part] = {}
        self.finished = False
        self._current: _Part | None = None
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}

    def on_part_begin(self) -> None:
        self._current = None
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        name = bytes(self._header_name).decode("latin-1").strip().lower()
        self._headers[name] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(
            self._headers.get("content-disposition")
        )
        if disposition != b"form-data" or b"name" not in options:
            raise InvalidRequestError(
                "A multipart part has no Content-Disposition form-data name."
            )

        name = _decode_header_text(options[b"name"])
        if name != self.file_field and name not in self.text_fields:
            expected = ", ".join([self.file_field, *sorted(self.text_fields)])
            raise InvalidRequestError(
                f"Unknown form field {name!r}; the form takes {expected}.",
                [{"field": name, "message": "unknown field"}],
            )
        if name in self.parts:
            raise InvalidRequestError(
                f"The form field {name!r} appears more than once.",
                [{"field": name, "message": "duplicate field"}],
            )

        filename = options.get(b"filename")
        content_type = self._headers.get("content-type")
        self._current = _Part(
            name=name,
            filename=None if filename is None else _decode_header_text(filename),
            content_type=None
            if content_type is None
            else content_type.decode("latin-1"),
        )
        self.parts[name] = self._current

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current
        assert part is not None
        part.data += data[start:end]

        if part.name == self.file_field:
            if len(part.data) > self.limits.max_file_bytes:
                raise UploadTooLargeError(
                    f"The uploaded file exceeds the maximum size of "
                    f"{self.limits.max_file_bytes} bytes.",
                    [{"field": part.name, "message": "file too large"}],
                )
        elif len(part.data) > self.limits.max_field_bytes:
            raise FormFieldTooLargeError(
                f"The form field {part.name!r} exceeds the maximum size of "
                f"{self.limits.max_field_bytes} bytes.",
                [{"field": part.name, "message": "field too large"}],
            )

    def on_part_end(self) -> None:
        self._current = None

    def on_end(self) -> None:
        self.finished = True


def _decode_header_text(raw: bytes) -> str:
    # python-multipart decodes header bytes as Latin-1, while browsers send UTF-8
    # field and file names; undo the first to apply the second.
    return raw.decode("latin-1").encode("latin-1").decode("utf-8", errors="replace")


def clean_filename(name: str | None) -> str | None:
    """Reduce a client-side file name to a safe base name, or None when nothing is left.

    Folders (either slash) and control characters are dropped, the result is NFC
    normalised and at most MAX_FILENAME_LENGTH characters long.
    """
    if name is None:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(char for char in base if unicodedata.category(char)[0] != "C")
    base = base.strip().strip(".")
    if not base:
        return None
    return base[:MAX_FILENAME_LENGTH]


def max_body_bytes(limits: FormLimits, text_field_count: int) -> int:
    """Return the largest Content-Length that a form within the limits can have."""
    return (
        limits.max_file_bytes
        + limits.max_field_bytes * text_field_count
        + MULTIPART_OVERHEAD_BYTES
    )


def check_content_length(header: str | None, limit: int) -> None:
    """Raise UploadTooLargeError when a declared Content-Length exceeds `limit`."""
    if header is None:
        return
    try:
        declared = int(header)
    except ValueError:
        raise InvalidRequestError(
            "The Content-Length header is not a number."
        ) from None
    if declared > limit:
        raise UploadTooLargeError(
            f"The request body of {declared} bytes exceeds the maximum of "
            f"{limit} bytes.",
            [{"field": "file", "message": "file too large"}],
        )


def multipart_boundary(content_type: str | None) -> bytes:
    """Return the boundary of a multipart/form-data Content-Type header."""
    media_type, options = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        received = content_type or "none"
        raise UnsupportedMediaTypeError(
            f"The request body must be multipart/form-data, not {received}.",
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidRequestError("The multipart Content-Type has no boundary.")
    return boundary


async def read_multipart_form(
    chunks: AsyncIterator[bytes],
    *,
    content_type: str | None,
    content_length: str | None,
    file_field: str,
    text_fields: Collection[str],
    limits: FormLimits,
) -> MultipartForm:
    """Parse a multipart body from `chunks`, enforcing `limits` while reading.

    Raises UnsupportedMediaTypeError for a body that is not multipart/form-data.
    Raises UploadTooLargeError for a file, or a declared Content-Length, over the
    limit, and FormFieldTooLargeError for a text field over its limit. Raises
    InvalidRequestError for unknown, duplicate or missing fields and for a
    truncated or malformed body, and UploadTimedOutError when the body takes
    longer than ``limits.read_timeout_seconds``.
    """
    boundary = multipart_boundary(content_type)
    check_content_length(content_length, max_body_bytes(limits, len(text_fields)))

    collector = _FormCollector(file_field, text_fields, limits)
    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": collector.on_part_begin,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
            "on_end": collector.on_end,
        },
    )

    try:
        # One deadline for the whole body: a client that trickles a byte now
        # and then would never trip a timeout per read.
        async with asyncio.timeout(limits.read_timeout_seconds):
            async for chunk in chunks:
                if chunk:
                    parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise InvalidRequestError(f"The multipart body is malformed: {exc}") from None
    except TimeoutError:
        raise UploadTimedOutError(
            f"The request body did not arrive within "
            f"{limits.read_timeout_seconds:g} seconds."
        ) from None

    if not collector.finished:
        raise InvalidRequestError(
            "The multipart body ended before its closing boundary."
        )
    return _build_form(collector)


def _build_form(collector: _FormCollector) -> MultipartForm:
    file_part = collector.parts.get(collector.file_field)
    if file_part is None or file_part.filename is None:
        raise InvalidRequestError(
            f"The form has no file part named {collector.file_field!r}.",
            [{"field": collector.file_field, "message": "field required"}],
        )

    fields: dict[str, str] = {}
    for name, part in collector.parts.items():
        if name == collector.file_field:
            continue
        try:
            fields[name] = part.data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequestError(
                f"The form field {name!r} is not valid UTF-8 text.",
                [{"field": name, "message": "invalid UTF-8"}],
            ) from None

    uploaded = UploadedFile(
        filename=clean_filename(file_part.filename),
        content_type=file_part.content_type,
        data=bytes(file_part.data),
    )
    return MultipartForm(file=uploaded, fields=fields)
