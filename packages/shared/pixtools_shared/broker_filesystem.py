"""kombu's filesystem transport with atomic message writes.

kombu (5.7) creates each message file under its final ``*.msg`` name and then
writes the payload. A consumer in another process may move the file away in
between and read an empty or partial message. This transport writes to a temp
name that no queue matches, flushes it to disk and renames it into place, so a
consumer reads either no file or the whole message.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from time import monotonic
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps

# URL scheme that create_celery_app uses in place of "filesystem://".
SCHEME = "pixtoolsfs"

# Consumers match files named "{stamp}.{queue}.msg" (see filesystem.Channel._get);
# this prefix gives temp files a name no queue matches.
TEMP_PREFIX = ".tmp-"


class Channel(filesystem.Channel):
    # kombu's own filesystem Channel renames the base method's "message"
    # parameter to "payload", so either name breaks one supertype for mypy.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        folder = Path(self.data_folder_out)
        target = folder / f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        temp = folder / f"{TEMP_PREFIX}{uuid.uuid4()}"
        try:
            with temp.open("wb") as handle:
                handle.write(dumps(payload).encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            temp.replace(target)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise filesystem.ChannelError(
                f"Cannot add file {str(target)!r} to directory"
            ) from exc


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    """Make ``pixtoolsfs://`` broker URLs resolve to this transport."""
    TRANSPORT_ALIASES[SCHEME] = f"{__name__}:Transport"
