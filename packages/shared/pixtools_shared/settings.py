"""Runtime settings shared by the API and the workers.

Every field reads the environment variable of the same name in upper case
(``DATABASE_URL``, ``BROKER_URL``...). The defaults form the embedded profile:
SQLite, filesystem storage and a filesystem broker under ``DATA_DIR``, so a
single machine runs PixTools without any server.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pixtools_shared import edge_settings

MIB = 1024 * 1024

# The development signing secret is public (it is in this file), so a production
# deployment must set its own.
DEV_SIGNING_SECRET = "pixtools-dev-signing-secret-not-for-production"  # noqa: S105

MIN_SIGNING_SECRET_LENGTH = 32

# Extra seconds a webhook task gets on top of the HTTP timeout for its own work,
# and the gap between a soft and a hard time limit where only a soft one is set.
WEBHOOK_TASK_MARGIN_SECONDS = 30
HARD_LIMIT_MARGIN_SECONDS = 30


class Settings(BaseSettings):
    """Typed configuration; each field is one environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="",
        case_sensitive=False,
        extra="ignore",
        env_file=None,
    )

    ENVIRONMENT: Literal["development", "test", "production"] = "development"
    """Deployment kind; ``production`` rejects development secrets."""

    DATA_DIR: Path = Path("./.pixtools-data")
    """Root folder of the embedded profile (database, storage, broker, beat)."""

    DATABASE_URL: str | None = None
    """SQLAlchemy URL; defaults to ``sqlite:///{DATA_DIR}/pixtools.db``.
    PostgreSQL uses ``postgresql+psycopg://...``."""

    DATABASE_POOL_SIZE: int = Field(default=5, ge=1)
    DATABASE_MAX_OVERFLOW: int = Field(default=5, ge=0)
    DATABASE_POOL_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    DATABASE_STATEMENT_TIMEOUT_MS: int = Field(default=30_000, ge=0)
    """PostgreSQL statement timeout in milliseconds; 0 turns it off."""

    BROKER_URL: str = "filesystem://"
    """Celery broker URL: ``filesystem://`` (folders under DATA_DIR/broker) or
    ``amqp://user:password@host:5672//`` for RabbitMQ."""

    BROKER_QUEUE_TYPE: Literal["quorum", "classic"] = "quorum"
    """Type of the RabbitMQ queues (AMQP brokers only). Quorum queues count
    deliveries and dead-letter a message after BROKER_DELIVERY_LIMIT redeliveries;
    classic queues only dead-letter rejected and expired messages."""
    BROKER_DELIVERY_LIMIT: int = Field(default=4, ge=1)
    """Redeliveries RabbitMQ allows per message (``x-delivery-limit``) before it
    dead-letters it. It must be at least OPERATION_MAX_ATTEMPTS, so that the
    worker fails the operation with a message first."""
    BROKER_CONSUMER_TIMEOUT_SECONDS: int = Field(default=1800, ge=60)
    """RabbitMQ's ``consumer_timeout`` of the deployment (30 minutes by default in
    RabbitMQ 3.10). An unacknowledged message held longer closes the channel and
    is delivered again, so every task time limit must stay below it."""
    BROKER_PUBLISH_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    """Maximum wait for the broker when publishing: connecting and, on RabbitMQ,
    the publisher confirm."""

    REDIS_URL: str | None = None
    """Optional Redis URL (rate limits, caches); None in the embedded profile."""

    STORAGE_BACKEND: Literal["filesystem", "s3"] = "filesystem"
    S3_ENDPOINT_URL: str | None = None
    """Custom S3 endpoint (MinIO, moto); None uses AWS."""
    S3_REGION: str = "us-east-1"
    S3_ACCESS_KEY_ID: str | None = None
    S3_SECRET_ACCESS_KEY: str | None = None
    S3_BUCKET_UPLOADS: str = "pixtools-uploads"
    S3_BUCKET_OUTPUTS: str = "pixtools-outputs"
    S3_BUCKET_BUNDLES: str = "pixtools-bundles"
    S3_ADDRESSING_STYLE: Literal["auto", "path", "virtual"] = "path"
    S3_CONNECT_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    S3_READ_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)
    S3_MAX_ATTEMPTS: int = Field(default=3, ge=1)
    S3_PUBLIC_ENDPOINT_URL: str | None = None
    """Endpoint written into presigned download URLs when clients reach S3 under
    another address than the services do; None uses S3_ENDPOINT_URL."""

    SIGNING_SECRET: str = DEV_SIGNING_SECRET
    """HMAC key for filesystem download URLs; must be changed in production."""

    API_HOST: str = "127.0.0.1"
    """Bind address of the API server."""
    API_PORT: int = Field(default=8000, ge=1, le=65535)
    API_SHUTDOWN_GRACE_SECONDS: float = Field(default=10.0, gt=0)
    """Time the API server waits for open requests on shutdown."""
    MAX_FORM_FIELD_BYTES: int = Field(default=64 * 1024, ge=1024)
    """Largest non-file multipart field of an upload request."""

    PUBLIC_BASE_URL: str = "http://127.0.0.1:8000"
    """Base URL that clients use to reach the API (prefix of download URLs)."""

    DOWNLOAD_URL_EXPIRES_SECONDS: int = Field(default=3600, ge=1, le=7 * 86400)

    RETENTION_SECONDS: int = Field(default=86_400, ge=60)
    """How long finished jobs, their files and their rows are kept."""
    DELETE_UPLOAD_ON_FINISH: bool = False
    """Delete a job's uploaded source as soon as the job is finished, instead of
    keeping it until retention ends."""

    MAX_UPLOAD_BYTES: int = Field(default=50 * MIB, ge=1)
    MAX_IMAGE_PIXELS: int = Field(default=50_000_000, ge=1)
    MAX_IMAGE_SIDE: int = Field(default=20_000, ge=1)
    MAX_METADATA_BYTES: int = Field(default=1 * MIB, ge=1024)
    """Largest serialized metadata JSON stored on a job."""

    JPEG_BACKGROUND: str = "#ffffff"
    """Colour that transparent pixels are composited onto for JPEG output."""
    AVIF_SPEED: int = Field(default=8, ge=0, le=10)
    AVIF_THREADS: int = Field(default=1, ge=1)

    TASK_SOFT_TIME_LIMIT_SECONDS: int = Field(default=120, ge=1)
    TASK_TIME_LIMIT_SECONDS: int = Field(default=150, ge=1)
    ML_TASK_SOFT_TIME_LIMIT_SECONDS: int = Field(default=600, ge=1)
    ML_TASK_TIME_LIMIT_SECONDS: int = Field(default=660, ge=1)
    FINALIZE_TIME_LIMIT_SECONDS: int = Field(default=300, ge=1)
    MAINTENANCE_TIME_LIMIT_SECONDS: int = Field(default=600, ge=1)

    TASK_MAX_RETRIES: int = Field(default=5, ge=0)
    """Retries of a task after transient errors (storage, database, network)."""
    TASK_RETRY_BACKOFF_SECONDS: float = Field(default=1.0, gt=0)
    TASK_RETRY_BACKOFF_MAX_SECONDS: float = Field(default=60.0, gt=0)
    RETRY_INLINE_MAX_SECONDS: float = Field(default=10.0, ge=0)
    """Maximum retry delay a task waits out in its own process. A longer delay is
    written to the outbox and published again when it is due, so no message sits
    unacknowledged in a worker while it waits."""

    OUTBOX_RELAY_INTERVAL_SECONDS: float = Field(default=5.0, gt=0)
    """How often beat publishes outbox messages that are due and not yet sent."""
    OUTBOX_BATCH_SIZE: int = Field(default=500, ge=1)
    OUTBOX_CLAIM_SECONDS: float = Field(default=60.0, gt=0)
    """How long a relay owns the messages it claimed before another may take them."""
    OUTBOX_RETRY_BACKOFF_MAX_SECONDS: float = Field(default=60.0, gt=0)
    """Maximum pause before a message whose publish failed is tried again."""
    OUTBOX_SENT_RETENTION_SECONDS: int = Field(default=3600, ge=60)
    """How long sent outbox rows are kept (for inspection) before purge deletes
    them."""
    DEAD_LETTER_CHECK_INTERVAL_SECONDS: float = Field(default=60.0, gt=0)
    """How often beat counts the dead-letter queue into the pixtools_dead_letters
    gauge."""

    OPERATION_MAX_ATTEMPTS: int = Field(default=3, ge=1)
    """Times an operation is dispatched before it fails as stalled."""
    STALLED_OPERATION_SECONDS: int = Field(default=900, ge=10)
    """Age after which a QUEUED or RUNNING operation counts as stalled."""
    STALLED_FINALIZATION_SECONDS: int = Field(default=600, ge=10)
    """Age after which a job left in FINALIZING is finalized again."""
    RECOVERY_INTERVAL_SECONDS: float = Field(default=60.0, gt=0)
    PURGE_INTERVAL_SECONDS: float = Field(default=600.0, gt=0)
    PURGE_BATCH_SIZE: int = Field(default=200, ge=1)
    BROKER_PROCESSED_RETENTION_SECONDS: int = Field(default=3600, ge=60)
    """How long the filesystem broker's processed message files are kept."""

    WORKER_CONCURRENCY: int = Field(default=2, ge=1)
    """Processes of the standard worker."""
    WORKER_MAX_MEMORY_PER_CHILD_KB: int = Field(default=0, ge=0)
    """Replace a worker process after it uses this much memory; 0 turns it off."""
    SCHEMA_WAIT_SECONDS: float = Field(default=120.0, gt=0)
    """How long a worker waits at startup for the API to migrate the database."""
    WORKER_SHUTDOWN_GRACE_SECONDS: float = Field(default=30.0, ge=0)
    """After SIGTERM, how long a worker lets running tasks finish before it hands
    them back to the broker (they run again elsewhere); 0 waits for them until
    their time limits."""

    DENOISE_MAX_PIXELS: int = Field(default=25_000_000, ge=1)
    """Largest image, in pixels, that the denoise operation accepts."""
    DENOISE_TILE_SIZE: int = Field(default=384, ge=32)
    """Largest side in pixels of the part of a tile that the model writes; must be
    even. Peak memory grows with its square. On an AMX Xeon a 12 MP photo ran
    about as fast with 384 px tiles as with 512, but one 512 px tile timed slower
    per pixel than the whole photo, which misled DENOISE_VIEWS auto."""
    DENOISE_TILE_OVERLAP: int = Field(default=16, ge=0)
    """Pixels of image context each tile gets beyond its written part on every
    side with a neighbour; must be even. With 16, tiled and whole-image outputs
    differed by 0.0001 dB PSNR (bench/bench_denoise.py --check-whole)."""
    TORCH_THREADS: int | None = Field(default=None, ge=1)
    """Threads of torch; None uses the CPU share of the process."""
    DENOISE_PRECISION: Literal["auto", "bf16", "fp32", "int8"] = "auto"
    """Inference precision. auto times the network at start-up and runs the
    fastest of fp32, bf16 (where the CPU runs it fast) and int8 (where the int8
    weights sit beside the model and the CPU's int8 sums are exact, as with VNNI)."""
    DENOISE_VIEWS: Literal["auto", "1", "2", "4", "8"] = "auto"
    """Rotated and mirrored views of each tile that the network denoises and
    averages (a self-ensemble). Each view costs one pass of the network, and two
    gained about 0.05 dB PSNR over one. auto times one pass before the first
    denoise and runs the most views that fit DENOISE_TARGET_SECONDS_PER_MEGAPIXEL.
    DENOISE_SECONDS_PER_MEGAPIXEL bounds all views of an image together."""
    DENOISE_TARGET_SECONDS_PER_MEGAPIXEL: float = Field(default=0.8, gt=0)
    """Time per megapixel that DENOISE_VIEWS auto keeps all views within."""
    DENOISE_PARALLEL_TILES: bool = True
    """Whether each torch thread denoises whole tiles of an image with at least as
    many tiles as threads, instead of all threads working on one tile at a time. Holds
    one tile per thread in memory. On a 2-core AMD EPYC it took 13 % less time idle
    and ran 1.9 times as fast with another process busy on one core
    (bench/bench_tile_threads.py)."""
    ML_WORKER_CONCURRENCY: int = Field(default=1, ge=1)
    """Processes of the ML worker."""
    DENOISE_TIME_BASE_SECONDS: float = Field(default=60.0, gt=0)
    DENOISE_SECONDS_PER_MEGAPIXEL: float = Field(default=10.0, gt=0)
    """Per-image denoise time budget: base plus this rate times megapixels."""
    DENOISE_MODEL_PATH: Path | None = None
    """Weights file of the DnCNN model; None uses the file bundled with the worker."""

    WEBHOOK_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0, le=120)
    WEBHOOK_MAX_ATTEMPTS: int = Field(default=5, ge=1)
    WEBHOOK_RETRY_BACKOFF_SECONDS: float = Field(default=5.0, gt=0)
    WEBHOOK_RETRY_BACKOFF_MAX_SECONDS: float = Field(default=300.0, gt=0)
    WEBHOOK_ALLOW_HTTP: bool = False
    """Allow plain ``http://`` webhook URLs (off by default: HTTPS only)."""
    WEBHOOK_ALLOWED_HOSTS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Host names or IP addresses a webhook may target even when they resolve to a
    private address (for example a service on the same network)."""
    WEBHOOK_MAX_URL_LENGTH: int = Field(default=2048, ge=16)
    WEBHOOK_SIGNING_SECRET: str | None = None
    """Key of the Standard Webhooks signature (``webhook-signature`` header): a
    ``whsec_`` prefixed base64 string or any other text (used as UTF-8 bytes).
    Unset sends deliveries unsigned."""
    WEBHOOK_ATTEMPT_DEADLINE_SECONDS: float = Field(default=20.0, gt=0)
    """Wall-clock limit of one delivery attempt: DNS lookup, connect, TLS, sending
    the body and reading the response headers together."""
    WEBHOOK_BREAKER_FAIL_MAX: int = Field(default=5, ge=1)
    """Consecutive failed deliveries (timeouts, connection errors, 5xx) to one host
    that open its circuit breaker; while open, deliveries to it wait."""
    WEBHOOK_BREAKER_RESET_SECONDS: float = Field(default=60.0, gt=0)
    """Seconds an open breaker waits before it lets one trial delivery through."""

    API_KEYS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Accepted API keys as ``id:sha256hex`` entries (comma list or JSON array):
    the id names the client, the hex string is the SHA-256 digest of its key.
    ``python -m pixtools_api.api_keys`` creates a key and its entry."""
    ALLOW_ANONYMOUS: bool | None = None
    """Accept API requests that carry no key. Unset means: allowed only while
    API_KEYS is empty (the embedded local profile)."""
    METRICS_PUBLIC: bool = False
    """Serve /metrics without credentials; otherwise it takes an API key or
    METRICS_TOKEN (as ``Authorization: Bearer``)."""
    METRICS_TOKEN: str | None = Field(default=None, min_length=16)
    """Bearer token that grants access to /metrics only (for the scraper)."""
    RATE_LIMIT_PER_MINUTE: int = Field(default=600, ge=0)
    """Requests per client (API key, or address for anonymous callers) and
    minute, counted in Redis; 0 turns the limit off. Needs REDIS_URL."""
    MAX_BACKLOG_OPERATIONS: int = Field(default=10_000, ge=0)
    """Queued and running operations at which POST /api/process returns 503
    instead of accepting more work; 0 turns the check off."""
    CORS_ALLOWED_ORIGINS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins (``https://app.example.com``) whose pages may call the API from a
    browser; empty allows the API's own origin only."""
    UPLOAD_READ_TIMEOUT_SECONDS: float = Field(default=120.0, gt=0)
    """Maximum time to receive a whole upload request body; slower clients get
    408."""
    IDEMPOTENCY_KEY_TTL_SECONDS: int = Field(default=86_400, ge=60)
    """How long an Idempotency-Key is remembered after its first request."""
    IDEMPOTENCY_WAIT_SECONDS: float = Field(default=10.0, ge=0, le=60)
    """How long a repeat waits for the first request with its key to finish (then
    it gets the first response); past that it gets 409. 0 returns 409 at once."""

    LOG_LEVEL: str = "INFO"
    LOG_JSON: bool = False
    """One JSON object per log line (deployments) instead of console lines."""
    METRICS_HOST: str = "127.0.0.1"
    """Address a worker's /metrics server binds; containers set 0.0.0.0."""
    WORKER_METRICS_PORT: int | None = Field(default=None, ge=0, le=65535)
    """Port of a worker's /metrics server: None means 9100 for the standard
    worker and 9101 for the ML worker, 0 turns the server off."""

    # Fault injection for the durability tests. The validator rejects any
    # non-default value unless ENVIRONMENT is "test", and the code that reads
    # them checks ENVIRONMENT again.
    TEST_OPERATION_DELAY_SECONDS: float = Field(default=0.0, ge=0)
    """Test only: seconds every operation sleeps before its work starts."""
    TEST_POISON_FILE: Path | None = None
    """Test only: while this file exists, an operation whose source file name is a
    line of it ends its worker process with os._exit(1)."""
    TEST_STORAGE_FAILURES: int = Field(default=0, ge=0)
    """Test only: the first N reads and writes of each process's storage raise
    StorageError."""

    @field_validator("WEBHOOK_ALLOWED_HOSTS", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        # The env var is a comma-separated list or a JSON array.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip().lower() for part in text.split(",") if part.strip()]
        return value

    @field_validator("API_KEYS", "CORS_ALLOWED_ORIGINS", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        # Comma-separated list or JSON array; case is kept (digests, origins).
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("API_KEYS")
    @classmethod
    def _check_api_keys(cls, value: list[str]) -> list[str]:
        return edge_settings.check_api_key_entries(value)

    @field_validator("CORS_ALLOWED_ORIGINS")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        return edge_settings.check_origins(value)

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.TASK_TIME_LIMIT_SECONDS <= self.TASK_SOFT_TIME_LIMIT_SECONDS:
            raise ValueError(
                "TASK_TIME_LIMIT_SECONDS must be greater than "
                "TASK_SOFT_TIME_LIMIT_SECONDS"
            )
        if self.ML_TASK_TIME_LIMIT_SECONDS <= self.ML_TASK_SOFT_TIME_LIMIT_SECONDS:
            raise ValueError(
                "ML_TASK_TIME_LIMIT_SECONDS must be greater than "
                "ML_TASK_SOFT_TIME_LIMIT_SECONDS"
            )
        if self.DENOISE_TILE_SIZE % 2 or self.DENOISE_TILE_OVERLAP % 2:
            raise ValueError("DENOISE_TILE_SIZE and DENOISE_TILE_OVERLAP must be even")
        if self.DENOISE_TILE_OVERLAP * 2 >= self.DENOISE_TILE_SIZE:
            raise ValueError(
                "DENOISE_TILE_OVERLAP must be less than half of DENOISE_TILE_SIZE"
            )
        largest_budget = (
            self.DENOISE_TIME_BASE_SECONDS
            + self.DENOISE_SECONDS_PER_MEGAPIXEL * self.DENOISE_MAX_PIXELS / 1e6
        )
        if largest_budget > self.ML_TASK_SOFT_TIME_LIMIT_SECONDS:
            raise ValueError(
                f"ML_TASK_SOFT_TIME_LIMIT_SECONDS must be at least {largest_budget:g}, "
                "the denoise time budget of a DENOISE_MAX_PIXELS image"
            )
        self._check_broker_limits()
        self._check_test_hooks()
        if self.ENVIRONMENT == "production":
            if self.SIGNING_SECRET == DEV_SIGNING_SECRET:
                raise ValueError(
                    "SIGNING_SECRET is the development default; set a random "
                    f"secret of at least {MIN_SIGNING_SECRET_LENGTH} characters"
                )
            if len(self.SIGNING_SECRET) < MIN_SIGNING_SECRET_LENGTH:
                raise ValueError(
                    f"SIGNING_SECRET must have at least {MIN_SIGNING_SECRET_LENGTH} "
                    "characters in production"
                )
        edge_settings.check_edge_settings(self)
        return self

    def longest_task_seconds(self) -> float:
        """Return the largest hard time limit of any task (see celery_app)."""
        webhook = self.WEBHOOK_TIMEOUT_SECONDS + WEBHOOK_TASK_MARGIN_SECONDS + 10
        return max(
            self.TASK_TIME_LIMIT_SECONDS,
            self.ML_TASK_TIME_LIMIT_SECONDS,
            self.FINALIZE_TIME_LIMIT_SECONDS + HARD_LIMIT_MARGIN_SECONDS,
            self.MAINTENANCE_TIME_LIMIT_SECONDS + HARD_LIMIT_MARGIN_SECONDS,
            webhook,
        )

    def _check_broker_limits(self) -> None:
        if self.BROKER_DELIVERY_LIMIT < self.OPERATION_MAX_ATTEMPTS:
            raise ValueError(
                "BROKER_DELIVERY_LIMIT must be at least OPERATION_MAX_ATTEMPTS "
                f"({self.OPERATION_MAX_ATTEMPTS}), so that a worker fails a "
                "repeatedly interrupted operation before RabbitMQ drops its message"
            )
        longest = self.longest_task_seconds()
        consumer_timeout = self.BROKER_CONSUMER_TIMEOUT_SECONDS
        if longest >= consumer_timeout:
            raise ValueError(
                f"the maximum task time limit ({longest:g} s) must be below "
                f"BROKER_CONSUMER_TIMEOUT_SECONDS ({consumer_timeout} s); RabbitMQ "
                "would close the channel and deliver the task again"
            )

    def _check_test_hooks(self) -> None:
        if self.ENVIRONMENT == "test":
            return
        enabled = [
            name
            for name, value in (
                ("TEST_OPERATION_DELAY_SECONDS", self.TEST_OPERATION_DELAY_SECONDS),
                ("TEST_POISON_FILE", self.TEST_POISON_FILE),
                ("TEST_STORAGE_FAILURES", self.TEST_STORAGE_FAILURES),
            )
            if value
        ]
        if enabled:
            raise ValueError(
                f"{', '.join(enabled)} may only be set when ENVIRONMENT is test"
            )

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL, with the embedded SQLite default filled in."""
        if self.DATABASE_URL:
            return self.DATABASE_URL
        return f"sqlite:///{(self.DATA_DIR / 'pixtools.db').resolve()}"

    @property
    def broker_folder(self) -> Path:
        """Folder of the filesystem broker's message files."""
        return self.DATA_DIR / "broker" / "queue"

    @property
    def broker_processed_folder(self) -> Path:
        return self.DATA_DIR / "broker" / "processed"

    @property
    def broker_control_folder(self) -> Path:
        return self.DATA_DIR / "broker" / "control"

    @property
    def storage_root(self) -> Path:
        """Root folder of FilesystemStorage (one subfolder per area)."""
        return self.DATA_DIR / "storage"

    @property
    def beat_schedule_file(self) -> Path:
        return self.DATA_DIR / "beat" / "celerybeat-schedule"

    @property
    def uses_filesystem_broker(self) -> bool:
        return self.BROKER_URL.startswith("filesystem://")

    @property
    def allows_anonymous(self) -> bool:
        """ALLOW_ANONYMOUS, or when unset, whether API_KEYS is empty."""
        if self.ALLOW_ANONYMOUS is not None:
            return self.ALLOW_ANONYMOUS
        return not self.API_KEYS


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment once."""
    return Settings()


def reset_settings_cache() -> None:
    """Forget the cached settings so the next get_settings() rereads the env."""
    get_settings.cache_clear()
