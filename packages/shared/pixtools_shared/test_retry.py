from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from pixtools_shared.errors import InvalidImageError, TransientError
from pixtools_shared.retry import backoff_seconds, is_transient
from pixtools_shared.storage import StorageError


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TransientError("x"), True),
        (StorageError("x"), True),
        (OperationalError("SELECT 1", {}, Exception("server closed")), True),
        (IntegrityError("INSERT", {}, Exception("duplicate")), False),
        (InvalidImageError("x"), False),
        (ValueError("x"), False),
    ],
)
def test_is_transient(exc: BaseException, expected: bool) -> None:
    assert is_transient(exc) is expected


@pytest.mark.parametrize("retry", [0, 1, 2, 5, 10, 100])
def test_backoff_bounds(retry: int) -> None:
    ceiling = min(60.0, 1.0 * 2**retry)
    delays = [backoff_seconds(retry, 1.0, 60.0) for _ in range(200)]

    assert min(delays) >= ceiling * 0.5
    assert max(delays) <= ceiling


def test_backoff_jitter_varies() -> None:
    delays = {backoff_seconds(3, 1.0, 60.0) for _ in range(50)}

    assert len(delays) > 1
