"""Checks that no accepted job was lost or duplicated, read from the database.

Each benchmark request uploads under a unique source file name
("<scenario>-<index>.jpg"), stored on the job row, so the rows of one request
can be counted: one row per accepted request, none missing, none extra.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg

from benchkit.client import FINAL_JOB_STATUSES, Submission


@dataclass
class RequestOutcome:
    """One logical client request: every attempt it made and what came back."""

    scenario: str
    phase: str
    kind: str
    filename: str
    offset: float
    idempotency_key: str | None = None
    attempts: list[Submission] = field(default_factory=list)

    @property
    def first_sent_at(self) -> float:
        return self.attempts[0].sent_at

    @property
    def accepted_job_ids(self) -> set[str]:
        return {a.job_id for a in self.attempts if a.accepted and a.job_id}

    @property
    def accepted(self) -> bool:
        return bool(self.accepted_job_ids)

    @property
    def accepted_attempt(self) -> Submission | None:
        return next((a for a in self.attempts if a.accepted), None)


@dataclass(frozen=True)
class JobRow:
    job_id: str
    status: str
    filename: str
    created_at: float
    finished_at: float | None


def fetch_job_rows(psycopg_url: str, filename_prefix: str) -> list[JobRow]:
    with psycopg.connect(psycopg_url, connect_timeout=10) as connection:
        rows = connection.execute(
            "SELECT id, status, source_filename, created_at, finished_at FROM jobs "
            "WHERE source_filename LIKE %s",
            (filename_prefix.replace("%", r"\%") + "%",),
        ).fetchall()
    return [
        JobRow(
            job_id=str(job_id),
            status=str(status),
            filename=str(filename),
            created_at=created.timestamp(),
            finished_at=finished.timestamp() if finished is not None else None,
        )
        for job_id, status, filename, created, finished in rows
    ]


def fetch_jobs_per_key(psycopg_url: str, filename_prefix: str) -> dict[str, int]:
    """Distinct jobs recorded for each Idempotency-Key of the scenario's jobs."""
    with psycopg.connect(psycopg_url, connect_timeout=10) as connection:
        rows = connection.execute(
            "SELECT r.key, count(DISTINCT r.job_id) FROM idempotency_records r "
            "JOIN jobs j ON j.id = r.job_id WHERE j.source_filename LIKE %s "
            "GROUP BY r.key",
            (filename_prefix.replace("%", r"\%") + "%",),
        ).fetchall()
    return {str(key): int(count) for key, count in rows}


def wait_until_final(
    psycopg_url: str, filename_prefix: str, timeout: float, poll: float = 0.5
) -> tuple[list[JobRow], float]:
    """Poll until every job row of the prefix is final; return rows and wait time."""
    start = time.monotonic()
    while True:
        rows = fetch_job_rows(psycopg_url, filename_prefix)
        pending = [row for row in rows if row.status not in FINAL_JOB_STATUSES]
        elapsed = time.monotonic() - start
        if not pending or elapsed >= timeout:
            return rows, elapsed
        time.sleep(poll)


def evaluate(
    outcomes: list[RequestOutcome],
    rows: list[JobRow],
    jobs_per_key: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Compare the client's view (accepted responses) with the job rows."""
    rows_by_filename: dict[str, list[JobRow]] = defaultdict(list)
    for row in rows:
        rows_by_filename[row.filename].append(row)
    row_ids = {row.job_id for row in rows}

    accepted = [o for o in outcomes if o.accepted]
    lost = [o for o in accepted if not o.accepted_job_ids <= row_ids]
    inconsistent = [o for o in accepted if len(o.accepted_job_ids) > 1]
    duplicates = sum(
        len(group) - 1 for group in rows_by_filename.values() if len(group) > 1
    )
    unanswered_filenames = {o.filename for o in outcomes if not o.accepted}
    rows_without_acceptance = sum(
        len(rows_by_filename.get(name, [])) for name in unanswered_filenames
    )

    attempts = [a for o in outcomes for a in o.attempts]
    status_counts = Counter(
        str(a.status_code)
        if a.status_code is not None
        else (a.error or "error").split(":")[0]
        for a in attempts
    )
    http_failures = sum(
        1 for a in attempts if a.status_code is not None and a.status_code != 202
    )
    client_errors = sum(1 for a in attempts if a.status_code is None)

    result: dict[str, Any] = {
        "requests": len(outcomes),
        "attempts": len(attempts),
        "accepted_requests": len(accepted),
        "unanswered_requests": len(outcomes) - len(accepted),
        "attempt_outcomes": dict(status_counts),
        "http_failures": http_failures,
        "client_timeouts_or_errors": client_errors,
        "job_rows": len(rows),
        "lost_jobs": len(lost),
        "duplicate_jobs": duplicates,
        "inconsistent_replays": len(inconsistent),
        "replayed_responses": sum(1 for a in attempts if a.accepted and a.replayed),
        "rows_without_accepted_response": rows_without_acceptance,
        "job_statuses": dict(Counter(row.status for row in rows)),
        "unfinished_jobs": sum(
            1 for row in rows if row.status not in FINAL_JOB_STATUSES
        ),
    }
    if jobs_per_key is not None:
        keys = {o.idempotency_key for o in outcomes if o.idempotency_key}
        result["idempotency_keys"] = len(keys)
        result["keys_with_more_than_one_job"] = sum(
            1 for count in jobs_per_key.values() if count > 1
        )
        result["jobs_without_key_record"] = len(rows) - sum(jobs_per_key.values())
    result["ok"] = (
        result["lost_jobs"] == 0
        and result["duplicate_jobs"] == 0
        and result["inconsistent_replays"] == 0
        and result.get("keys_with_more_than_one_job", 0) == 0
    )
    return result
