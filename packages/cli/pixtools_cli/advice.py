"""What to do next for each error code of the API, shown after its message."""

from __future__ import annotations

from pixtools_cli.errors import ApiRejectedError

ERROR_ADVICE: dict[str, str] = {
    "upload-too-large": "Send a smaller file; GET /api/limits shows the maximum.",
    "image-too-large": "Scale the image down below the pixel and side limits "
    "(GET /api/limits) before uploading.",
    "unsupported-format": "Convert the file to JPEG, PNG, WebP, AVIF, GIF or TIFF.",
    "invalid-image": "The file is damaged or not an image; check that it opens "
    "in an image viewer.",
    "invalid-operations": "Check the --op names and the --quality, --width and "
    "--height values.",
    "invalid-request": "Check the options; the details name the field.",
    "invalid-webhook-url": "Use an https:// URL on a host the API may call.",
    "form-field-too-large": "Shorten the webhook URL or the options.",
    "idempotency-key-reused": "Run the command again; each run sends new keys.",
    "idempotency-key-expired": "Run the command again; each run sends new keys.",
    "job-not-found": "Check the job id; jobs are deleted when they expire.",
    "download-link-expired": "Run 'pixtools download JOB_ID' again for new links.",
    "invalid-download-link": "Run 'pixtools download JOB_ID' again for new links.",
    "file-not-found": "The result was deleted, probably because the job expired.",
}

# Advice by HTTP status, for codes missing from ERROR_ADVICE.
STATUS_ADVICE: dict[int, str] = {
    401: "Pass --api-key or set PIXTOOLS_API_KEY.",
    403: "Check the API key (--api-key or PIXTOOLS_API_KEY).",
    413: "Send a smaller file.",
    429: "Too many requests; wait a little and run the command again.",
}


def advice_for(error: ApiRejectedError) -> str | None:
    return ERROR_ADVICE.get(error.code) or STATUS_ADVICE.get(error.status)


def describe_rejection(error: ApiRejectedError) -> list[str]:
    """Lines for a 4xx: status, code and message, then details and advice."""
    lines = [f"HTTP {error.status} {error.code}: {error.message}"]
    for detail in error.details:
        field = detail.get("field")
        message = detail.get("message", "")
        lines.append(f"  - {field}: {message}" if field else f"  - {message}")
    advice = advice_for(error)
    if advice:
        lines.append(f"  {advice}")
    return lines
