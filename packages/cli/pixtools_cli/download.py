"""Download a job's results and ZIP bundle into a folder.

The file name comes from the response's Content-Disposition (the API names
results `{source stem}-{operation}.{ext}`), reduced to a safe base name. Each
file is written to a temporary name in the target folder and renamed when
complete, so an interrupted download never leaves a truncated file under the
final name. Names already written in this run get the job id as a prefix, so
two sources called `photo.jpg` do not overwrite each other's results.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import structlog

from pixtools_cli.client import PixToolsClient
from pixtools_cli.errors import ApiUnavailableError

logger = structlog.get_logger(__name__)

MAX_FILENAME_LENGTH = 120
CHUNK_SIZE = 256 * 1024

_UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._ -]+")
_FILENAME_STAR = re.compile(r"filename\*\s*=\s*([^;]+)", re.IGNORECASE)
_FILENAME_PLAIN = re.compile(r'filename\s*=\s*("(?:[^"\\]|\\.)*"|[^;]+)', re.IGNORECASE)


@dataclass(frozen=True)
class DownloadItem:
    """One file of a job to fetch: its kind, its URL and a fallback name."""

    kind: str
    url: str
    fallback_name: str


@dataclass
class DownloadPlan:
    """Names written so far in one run, shared by every job's downloads."""

    folder: Path
    used_names: set[str] = field(default_factory=set)

    def claim(self, name: str, job_id: str) -> str:
        """Return `name`, or `{job id prefix}-{name}` when it is already used."""
        if name in self.used_names:
            name = f"{job_id[:8]}-{name}"
        self.used_names.add(name)
        return name


def parse_content_disposition(value: str | None) -> str | None:
    """File name from a Content-Disposition header (RFC 6266), or None."""
    if not value:
        return None
    star = _FILENAME_STAR.search(value)
    if star:
        encoded = star.group(1).strip().strip('"')
        charset, _, rest = encoded.partition("'")
        _language, _, quoted = rest.partition("'")
        if quoted:
            return unquote(quoted, encoding=charset or "utf-8", errors="replace")
    plain = _FILENAME_PLAIN.search(value)
    if plain:
        name = plain.group(1).strip()
        if name.startswith('"') and name.endswith('"') and len(name) >= 2:
            name = re.sub(r"\\(.)", r"\1", name[1:-1])
        return name or None
    return None


def name_from_url(url: str) -> str | None:
    """File name from a signed URL's `filename` query parameter, if any."""
    values = parse_qs(urlsplit(url).query).get("filename")
    return values[0] if values else None


def safe_filename(name: str | None, fallback: str) -> str:
    """Reduce a server-given name to a plain base name without path parts."""
    candidate = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    candidate = _UNSAFE_CHARACTERS.sub("_", candidate).strip(" .")
    if not candidate:
        candidate = fallback
    if len(candidate) > MAX_FILENAME_LENGTH:
        stem, dot, extension = candidate.rpartition(".")
        if dot and len(extension) <= 10:
            keep = MAX_FILENAME_LENGTH - len(extension) - 1
            candidate = f"{stem[:keep]}.{extension}"
        else:
            candidate = candidate[:MAX_FILENAME_LENGTH]
    return candidate


def items_of_job(job: dict[str, Any], *, include_archive: bool) -> list[DownloadItem]:
    """List the results that have a URL, then the ZIP bundle when there is one."""
    job_id = str(job.get("job_id", "job"))
    items = []
    for entry in job.get("operations") or []:
        url = entry.get("result_url")
        if url:
            name = str(entry.get("name", "result"))
            items.append(DownloadItem(name, str(url), f"{job_id}-{name}"))
    archive_url = job.get("archive_url")
    if include_archive and archive_url:
        items.append(DownloadItem("archive", str(archive_url), f"{job_id}.zip"))
    return items


def _write_stream(chunks: Iterable[bytes], folder: Path, name: str) -> Path:
    destination = folder / name
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (renamed, not closed, on success)
        dir=folder, prefix=f".{name}.", suffix=".part", delete=False
    )
    try:
        with handle:
            for chunk in chunks:
                handle.write(chunk)
        Path(handle.name).replace(destination)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return destination


def download_item(
    client: PixToolsClient, item: DownloadItem, plan: DownloadPlan, job_id: str
) -> Path:
    """Fetch one file into the plan's folder; retry when the body breaks off."""
    url = client.url_for(item.url)
    name: str | None = None
    last_problem = ""
    for attempt in range(1, client.retry.attempts + 1):
        try:
            with client.stream(url, description=f"download of {item.kind}") as response:
                if name is None:
                    header_name = parse_content_disposition(
                        response.headers.get("Content-Disposition")
                    )
                    given = header_name or name_from_url(url)
                    name = plan.claim(safe_filename(given, item.fallback_name), job_id)
                chunks = response.iter_bytes(CHUNK_SIZE)
                path = _write_stream(chunks, plan.folder, name)
        except httpx.TransportError as exc:
            last_problem = f"{type(exc).__name__}: {exc}"
            logger.info(
                "download_retrying",
                job_id=job_id,
                kind=item.kind,
                attempt=attempt,
                problem=last_problem,
            )
            client.sleep(client.retry.delay(attempt))
            continue
        logger.info("download_finished", job_id=job_id, kind=item.kind, path=str(path))
        return path
    raise ApiUnavailableError(
        f"download of {item.kind} of job {job_id} failed after "
        f"{client.retry.attempts} attempts ({last_problem})"
    )


def download_job(
    client: PixToolsClient,
    job: dict[str, Any],
    plan: DownloadPlan,
    *,
    include_archive: bool = True,
) -> list[Path]:
    """Download every result of `job` (and its ZIP) into `plan.folder`."""
    plan.folder.mkdir(parents=True, exist_ok=True)
    job_id = str(job.get("job_id", ""))
    return [
        download_item(client, item, plan, job_id)
        for item in items_of_job(job, include_archive=include_archive)
    ]
