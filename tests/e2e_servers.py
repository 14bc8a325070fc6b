"""Local servers of the end-to-end tests: PostgreSQL, RabbitMQ, moto S3, webhooks.

Everything binds or connects to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import psycopg
from kombu import Connection
from moto.server import ThreadedMotoServer

LOCALHOST = "127.0.0.1"
POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
REDIS_URL = "redis://127.0.0.1:6379/13"
# moto accepts any credentials; these are its documented test values.
S3_ACCESS_KEY = "testing"
S3_SECRET_KEY = "testing"  # noqa: S105
S3_REGION = "us-east-1"
PIXTOOLS_QUEUES = ("standard", "ml", "webhooks")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        port: int = probe.getsockname()[1]
    return port


def port_open(port: int, host: str = LOCALHOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty database for one test session; yield its SQLAlchemy URL."""
    name = f"pixtools_test_e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def purge_rabbitmq_queues() -> None:
    """Delete waiting messages of the PixTools queues on the shared vhost "/".

    The guest user of a stock RabbitMQ has access to "/" only, so the tests
    cannot get a vhost of their own. Purging before and after each session keeps
    one run's messages out of the next.
    """
    with Connection(RABBITMQ_URL, connect_timeout=5) as connection:
        channel = connection.channel()
        for name in PIXTOOLS_QUEUES:
            try:
                channel.queue_purge(name)
            except Exception:
                channel = connection.channel()


@dataclass
class MotoS3:
    """A moto S3 server on 127.0.0.1 with the PixTools buckets created."""

    endpoint_url: str
    buckets: dict[str, str]


@contextmanager
def moto_s3_server() -> Iterator[MotoS3]:
    port = free_port()
    server = ThreadedMotoServer(ip_address=LOCALHOST, port=port, verbose=False)
    server.start()
    endpoint = f"http://{LOCALHOST}:{port}"
    suffix = uuid.uuid4().hex[:8]
    buckets = {
        "S3_BUCKET_UPLOADS": f"e2e-uploads-{suffix}",
        "S3_BUCKET_OUTPUTS": f"e2e-outputs-{suffix}",
        "S3_BUCKET_BUNDLES": f"e2e-bundles-{suffix}",
    }
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name=S3_REGION,
    )
    for bucket in buckets.values():
        client.create_bucket(Bucket=bucket)
    try:
        yield MotoS3(endpoint, buckets)
    finally:
        server.stop()


@dataclass
class ReceivedWebhook:
    """One POST: its path, headers (lower-case names) and JSON body."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class WebhookReceiver:
    """HTTP server that records every JSON POST and responds with 204."""

    url: str
    received: list[ReceivedWebhook] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, job_id: str, timeout: float) -> ReceivedWebhook | None:
        """Wait until a webhook mentioning `job_id` has arrived."""

        def find() -> ReceivedWebhook | None:
            for event in self.received:
                if job_id in json.dumps(event.body):
                    return event
            return None

        with self.condition:
            self.condition.wait_for(lambda: find() is not None, timeout=timeout)
            return find()


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"unparsed": raw.decode("utf-8", errors="replace")}
            with receiver.condition:
                receiver.received.append(
                    ReceivedWebhook(
                        self.path,
                        {name.lower(): value for name, value in self.headers.items()},
                        body,
                    )
                )
                receiver.condition.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
    receiver.url = f"http://{LOCALHOST}:{server.server_address[1]}/hooks/pixtools"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
