from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pixtools_shared.settings import (
    DEV_SIGNING_SECRET,
    Settings,
    get_settings,
    reset_settings_cache,
)

ENV_NAMES = (
    "ENVIRONMENT",
    "DATA_DIR",
    "DATABASE_URL",
    "BROKER_URL",
    "REDIS_URL",
    "STORAGE_BACKEND",
    "SIGNING_SECRET",
    "WEBHOOK_ALLOWED_HOSTS",
    "TASK_TIME_LIMIT_SECONDS",
    "TASK_SOFT_TIME_LIMIT_SECONDS",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    reset_settings_cache()


def test_defaults_form_embedded_profile(tmp_path: Path) -> None:
    settings = Settings(DATA_DIR=tmp_path)

    assert settings.database_url == f"sqlite:///{(tmp_path / 'pixtools.db').resolve()}"
    assert settings.BROKER_URL == "filesystem://"
    assert settings.uses_filesystem_broker is True
    assert settings.REDIS_URL is None
    assert settings.STORAGE_BACKEND == "filesystem"
    assert settings.storage_root == tmp_path / "storage"
    assert settings.broker_folder == tmp_path / "broker" / "queue"
    assert settings.broker_processed_folder == tmp_path / "broker" / "processed"
    assert settings.RETENTION_SECONDS == 86_400
    assert settings.MAX_UPLOAD_BYTES == 50 * 1024 * 1024
    assert settings.JPEG_BACKGROUND == "#ffffff"
    assert settings.WEBHOOK_ALLOW_HTTP is False
    assert settings.WEBHOOK_ALLOWED_HOSTS == []


def test_env_overrides_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@127.0.0.1/db")
    monkeypatch.setenv("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")

    settings = Settings()

    assert settings.database_url == "postgresql+psycopg://u@127.0.0.1/db"
    assert settings.uses_filesystem_broker is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hooks.internal, Example.COM", ["hooks.internal", "example.com"]),
        ('["a.local", "b.local"]', ["a.local", "b.local"]),
        ("", []),
    ],
)
def test_webhook_allowed_hosts_parsing(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", raw)

    hosts = Settings().WEBHOOK_ALLOWED_HOSTS

    assert hosts == expected


def test_production_rejects_dev_secret() -> None:
    with pytest.raises(ValidationError, match="SIGNING_SECRET is the development"):
        Settings(ENVIRONMENT="production")


def test_production_rejects_short_secret() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(ENVIRONMENT="production", SIGNING_SECRET="short")


def test_production_accepts_strong_secret() -> None:
    secret = "x" * 48
    settings = Settings(
        ENVIRONMENT="production", SIGNING_SECRET=secret, ALLOW_ANONYMOUS=True
    )

    stored = settings.SIGNING_SECRET

    assert stored == secret
    assert stored != DEV_SIGNING_SECRET


def test_hard_limit_must_exceed_soft_limit() -> None:
    with pytest.raises(ValidationError, match="TASK_TIME_LIMIT_SECONDS"):
        Settings(TASK_SOFT_TIME_LIMIT_SECONDS=100, TASK_TIME_LIMIT_SECONDS=100)


def test_out_of_range_value_rejected() -> None:
    with pytest.raises(ValidationError, match="AVIF_SPEED"):
        Settings(AVIF_SPEED=11)


def test_get_settings_cached_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("RETENTION_SECONDS", "120")

    assert get_settings() is first
    reset_settings_cache()
    assert get_settings().RETENTION_SECONDS == 120


def test_denoise_views_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DENOISE_VIEWS", "2")
    monkeypatch.setenv("DENOISE_TARGET_SECONDS_PER_MEGAPIXEL", "0.5")

    settings = Settings()

    assert settings.DENOISE_VIEWS == "2"
    assert settings.DENOISE_TARGET_SECONDS_PER_MEGAPIXEL == 0.5
    assert Settings.model_fields["DENOISE_VIEWS"].default == "auto"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DENOISE_VIEWS": "3"}, "DENOISE_VIEWS"),
        ({"DENOISE_TARGET_SECONDS_PER_MEGAPIXEL": 0}, "greater than 0"),
        ({"DENOISE_TILE_SIZE": 513}, "must be even"),
        ({"DENOISE_TILE_OVERLAP": 33}, "must be even"),
        ({"DENOISE_TILE_OVERLAP": 256}, "less than half of DENOISE_TILE_SIZE"),
        (
            {"ML_TASK_SOFT_TIME_LIMIT_SECONDS": 100, "ML_TASK_TIME_LIMIT_SECONDS": 200},
            "must be at least 310",
        ),
    ],
)
def test_denoise_settings_checked(
    overrides: dict[str, int | str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        {"TEST_OPERATION_DELAY_SECONDS": 1.0},
        {"TEST_POISON_FILE": Path("/tmp/poison")},
        {"TEST_STORAGE_FAILURES": 2},
    ],
)
def test_test_hooks_rejected_outside_test(overrides: dict[str, object]) -> None:
    # The check runs before the production checks, so development covers both.
    values: dict[str, object] = {"ENVIRONMENT": "development", **overrides}
    with pytest.raises(ValidationError, match="only be set when ENVIRONMENT is test"):
        Settings(**values)  # type: ignore[arg-type]


def test_test_hooks_allowed_in_test() -> None:
    settings = Settings(ENVIRONMENT="test", TEST_STORAGE_FAILURES=2)

    assert settings.TEST_STORAGE_FAILURES == 2


def test_delivery_limit_covers_operation_attempts() -> None:
    with pytest.raises(ValidationError, match="BROKER_DELIVERY_LIMIT"):
        Settings(OPERATION_MAX_ATTEMPTS=5, BROKER_DELIVERY_LIMIT=4)


def test_time_limits_below_consumer_timeout() -> None:
    with pytest.raises(ValidationError, match="BROKER_CONSUMER_TIMEOUT_SECONDS"):
        Settings(BROKER_CONSUMER_TIMEOUT_SECONDS=600)

    assert Settings().longest_task_seconds() == 660
