"""Fixtures of the cross-service tests: the whole platform in two profiles.

See e2e_platform.py for what each profile starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from e2e_platform import Platform, start_embedded, start_servers
from e2e_servers import WebhookReceiver, webhook_receiver


@pytest.fixture(scope="session")
def webhooks() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module", params=["embedded", "servers"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    tmp = tmp_path_factory.mktemp(f"platform-{request.param}")
    with ExitStack() as stack:
        if request.param == "embedded":
            started = start_embedded(tmp)
            stack.callback(started.stop)
        else:
            started = start_servers(tmp, stack)
        yield started
