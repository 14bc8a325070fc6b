"""Compose file for local runs: services, start order and settings."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "local" / "compose.yaml"
REQUIRED_SETTINGS = {
    "DATABASE_URL",
    "BROKER_URL",
    "REDIS_URL",
    "STORAGE_BACKEND",
    "S3_BUCKET_UPLOADS",
    "S3_BUCKET_OUTPUTS",
    "S3_BUCKET_BUNDLES",
    "S3_REGION",
    "SIGNING_SECRET",
    "WEBHOOK_SIGNING_SECRET",
    "API_KEYS",
    "ENVIRONMENT",
    "RETENTION_SECONDS",
}
APP_SERVICES = ("api", "worker-standard", "worker-ml", "beat")


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_expected_services_present():
    assert set(services()) >= {
        *APP_SERVICES,
        "migrate",
        "postgres",
        "redis",
        "rabbitmq",
        "minio",
        "buckets",
    }


def test_app_waits_for_migration_and_buckets():
    found = services()
    for name in APP_SERVICES:
        depends = found[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["buckets"]["condition"] == "service_completed_successfully", name
        assert depends["rabbitmq"]["condition"] == "service_healthy", name
    assert found["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert found["migrate"]["command"] == ["migrate"]


def test_app_settings_complete():
    found = services()
    for name in (*APP_SERVICES, "migrate"):
        environment = found[name]["environment"]
        assert set(environment) >= REQUIRED_SETTINGS, name
        assert environment["STORAGE_BACKEND"] == "s3"
        assert environment["S3_ENDPOINT_URL"] == "http://minio:9000"
        assert environment["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert environment["BROKER_URL"].startswith("amqp://")


def test_buckets_created_match_settings():
    found = services()
    script = " ".join(found["buckets"]["command"])
    environment = found["api"]["environment"]
    for key in ("S3_BUCKET_UPLOADS", "S3_BUCKET_OUTPUTS", "S3_BUCKET_BUNDLES"):
        assert f"local/{environment[key]}" in script


def test_ports_bound_to_loopback():
    for name, service in services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), name


def test_worker_commands():
    found = services()
    assert found["worker-standard"]["command"] == ["worker"]
    assert found["worker-ml"]["command"] == ["worker"]
    assert found["beat"]["command"] == ["beat"]
    assert found["beat"]["image"] == found["worker-standard"]["image"]
