"""structlog setup; kept for its callers, the code is in observability.log_config."""

from __future__ import annotations

from pixtools_shared.observability.log_config import configure_logging

__all__ = ["configure_logging"]
