"""Stack configuration: defaults, stack files and validation errors."""

from __future__ import annotations

import contextvars
from typing import Any

import pulumi
import pytest
from pulumi.runtime.settings import _set_stack

from pixtools_platform.stack_config import (
    StackConfig,
    StackConfigError,
    load_stack_config,
)
from pixtools_platform.testing.harness import load_config, run_stack


def read(stack: str, overrides: dict[str, Any] | None = None) -> StackConfig:
    config, secret_keys = load_config(stack, overrides)

    def inner() -> StackConfig:
        pulumi.runtime.set_all_config(config, secret_keys)
        _set_stack(stack)
        return load_stack_config()

    return contextvars.Context().run(inner)


def test_stack_files_valid():
    dev = read("dev")
    prod = read("prod")
    assert (dev.environment, prod.environment) == ("dev", "prod")
    assert prod.protect is True
    assert dev.protect is False
    assert dev.retention_seconds == dev.retention_days * 86_400


def test_prod_stricter_than_dev():
    dev, prod = read("dev"), read("prod")
    assert prod.az_count >= 3
    assert prod.nat_gateway_per_az is True
    assert prod.db_multi_az is True
    assert prod.api_replicas.min_replicas >= 2
    assert prod.agent_max_size >= dev.agent_max_size


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"agentMaxSize": 0, "agentMinSize": 1}, "agentMaxSize"),
        ({"agentDesiredSize": 9}, "agentDesiredSize"),
        ({"retentionDays": 0}, "retentionDays"),
        ({"retentionDays": -3}, "retentionDays"),
        ({"environment": "staging"}, "environment"),
        ({"environment": "prod"}, "does not match the stack"),
        ({"k3sVersion": "v1.31.2+k3s1"}, "Kubernetes minor"),
        ({"k3sVersion": "1.33"}, "k3sVersion"),
        ({"apiImageDigest": "latest"}, "apiImageDigest"),
        ({"vpcCidr": "10.0.0.1/16"}, "vpcCidr"),
        ({"azCount": 1}, "azCount"),
        ({"apiAllowedCidrs": []}, "apiAllowedCidrs"),
        ({"agentInstanceTypes": ["m6i.large"]}, "agentInstanceTypes"),
        ({"githubRepository": "just-a-name"}, "githubRepository"),
        ({"apiMinReplicas": 4, "apiMaxReplicas": 2}, "apiMaxReplicas"),
        ({"metricsRemoteWriteUrl": "http://metrics.example.com"}, "https"),
        ({"redisImage": "redis:latest"}, "redisImage"),
        ({"dbBackupRetentionDays": 0}, "dbBackupRetentionDays"),
    ],
)
def test_invalid_dev_settings_rejected(overrides, message):
    with pytest.raises(StackConfigError, match=message):
        read("dev", overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"apiAllowedCidrs": ["0.0.0.0/0"]}, "opens the prod Kubernetes API"),
        ({"apiMinReplicas": 1}, "at least 2 API pods"),
        ({"dbBackupRetentionDays": 3}, "at least 7 days"),
    ],
)
def test_invalid_prod_settings_rejected(overrides, message):
    with pytest.raises(StackConfigError, match=message):
        read("prod", overrides)


def test_all_errors_reported_together():
    with pytest.raises(StackConfigError) as caught:
        read("dev", {"retentionDays": 0, "azCount": 9, "agentMaxSize": -1})
    text = str(caught.value)
    assert "retentionDays" in text
    assert "azCount" in text
    assert "agentMaxSize" in text


def test_digests_required_for_workloads():
    with pytest.raises(StackConfigError, match="required when deployWorkloads"):
        read("dev", {"apiImageDigest": ""})
    config = read("dev", {"apiImageDigest": "", "deployWorkloads": False})
    assert config.image_digests is None


def test_program_stops_on_invalid_config():
    with pytest.raises(StackConfigError, match="retentionDays"):
        run_stack("dev", overrides={"retentionDays": 0})
