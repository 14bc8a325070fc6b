"""Tests of the API edge settings: API keys, CORS origins, webhook limits."""

from __future__ import annotations

import pytest

from pixtools_shared.settings import Settings

DIGEST = "ab" * 32


def test_api_keys_from_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", f"ci:{DIGEST.upper()}, web:{'cd' * 32}")

    settings = Settings()

    assert [f"ci:{DIGEST}", f"web:{'cd' * 32}"] == settings.API_KEYS
    assert settings.allows_anonymous is False


def test_api_keys_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", f'["ci:{DIGEST}"]')

    assert [f"ci:{DIGEST}"] == Settings().API_KEYS


def test_anonymous_by_default_without_keys() -> None:
    assert Settings().allows_anonymous is True
    assert Settings(ALLOW_ANONYMOUS=False).allows_anonymous is False
    assert Settings(API_KEYS=[f"ci:{DIGEST}"], ALLOW_ANONYMOUS=True).allows_anonymous


def test_duplicate_key_ids_rejected() -> None:
    with pytest.raises(ValueError, match="lists the id 'ci' twice"):
        Settings(API_KEYS=[f"ci:{DIGEST}", f"ci:{'cd' * 32}"])


def test_plain_key_rejected_with_hint() -> None:
    with pytest.raises(ValueError, match="never the key itself"):
        Settings(API_KEYS=["local-dev-key"])


def test_origins_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CORS_ALLOWED_ORIGINS", "https://App.Example.com, http://localhost:3000/"
    )

    assert Settings().CORS_ALLOWED_ORIGINS == [
        "https://app.example.com",
        "http://localhost:3000",
    ]


@pytest.mark.parametrize(
    "origin",
    ["*", "app.example.com", "https://app.example.com/path", "ftp://x.example"],
)
def test_bad_origins_rejected(origin: str) -> None:
    with pytest.raises(ValueError, match="CORS_ALLOWED_ORIGINS"):
        Settings(CORS_ALLOWED_ORIGINS=[origin])


def test_webhook_secret_checked() -> None:
    with pytest.raises(ValueError, match="WEBHOOK_SIGNING_SECRET is invalid"):
        Settings(WEBHOOK_SIGNING_SECRET="whsec_%%%")

    assert Settings(WEBHOOK_SIGNING_SECRET="whsec_aGVsbG8=").WEBHOOK_SIGNING_SECRET


def test_attempt_deadline_fits_task_limit() -> None:
    with pytest.raises(
        ValueError, match="WEBHOOK_ATTEMPT_DEADLINE_SECONDS must be at most 30"
    ):
        Settings(WEBHOOK_ATTEMPT_DEADLINE_SECONDS=31)

    assert (
        Settings(
            WEBHOOK_TIMEOUT_SECONDS=60, WEBHOOK_ATTEMPT_DEADLINE_SECONDS=80
        ).WEBHOOK_ATTEMPT_DEADLINE_SECONDS
        == 80
    )


def test_metrics_token_minimum_length() -> None:
    with pytest.raises(ValueError, match="METRICS_TOKEN"):
        Settings(METRICS_TOKEN="short")
