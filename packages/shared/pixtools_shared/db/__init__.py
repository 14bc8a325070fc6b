"""Database models, sessions and migrations."""

from pixtools_shared.db.migrate import upgrade_database, wait_for_schema
from pixtools_shared.db.models import (
    Base,
    IdempotencyRecord,
    Job,
    JobOperation,
    JobStatus,
    OperationStatus,
    WebhookStatus,
)
from pixtools_shared.db.session import (
    dispose_engines,
    get_engine,
    get_session_factory,
    session_scope,
)

__all__ = [
    "Base",
    "IdempotencyRecord",
    "Job",
    "JobOperation",
    "JobStatus",
    "OperationStatus",
    "WebhookStatus",
    "dispose_engines",
    "get_engine",
    "get_session_factory",
    "session_scope",
    "upgrade_database",
    "wait_for_schema",
]
