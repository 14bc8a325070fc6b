"""Typed, validated stack configuration read from ``pulumi.Config``.

``load_stack_config`` reads the ``pixtools:*`` keys (declared with descriptions in
``pulumi/Pulumi.yaml``) and ``aws:region``, and raises StackConfigError listing
every invalid key at once, before any resource is registered.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import pulumi

ENVIRONMENTS = ("dev", "prod")
# The Kubernetes minor that K3s must run; the offline schema checks use it too.
KUBERNETES_MINOR = 33

_K3S_VERSION = re.compile(r"^v1\.(?P<minor>\d+)\.\d+\+k3s\d+$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_PINNED_IMAGE = re.compile(
    r"^[a-z0-9./_-]+(:(?!latest$)[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$"
)


class StackConfigError(ValueError):
    """Raised when the stack configuration has invalid or missing values."""


@dataclass(frozen=True)
class ImageDigests:
    """Digests of the service images, set by CD for each release."""

    api: str
    worker_standard: str
    worker_ml: str


@dataclass(frozen=True)
class ReplicaRange:
    """Autoscaling bounds of one Deployment."""

    min_replicas: int
    max_replicas: int


@dataclass(frozen=True)
class StackConfig:
    """Every setting the program reads, typed and checked."""

    environment: str
    region: str
    vpc_cidr: str
    az_count: int
    nat_gateway_per_az: bool
    api_allowed_cidrs: list[str]
    db_instance_class: str
    db_allocated_storage_gb: int
    db_max_allocated_storage_gb: int
    db_multi_az: bool
    db_backup_retention_days: int
    retention_days: int
    k3s_version: str
    ecr_credential_provider_version: str
    server_instance_type: str
    agent_instance_types: list[str]
    agent_min_size: int
    agent_max_size: int
    agent_desired_size: int
    root_volume_gb: int
    ami_id: str | None
    github_repository: str
    github_oidc_provider_arn: str | None
    pulumi_state_bucket: str | None
    pulumi_secrets_key_arn: str | None
    deploy_workloads: bool
    image_digests: ImageDigests | None
    api_replicas: ReplicaRange
    standard_worker_replicas: ReplicaRange
    ml_worker_replicas: ReplicaRange
    certificate_arn: str | None
    metrics_remote_write_url: str
    metrics_remote_write_username: str | None
    rabbitmq_storage_gb: int
    load_balancer_controller_chart_version: str
    support_images: dict[str, str] = field(default_factory=dict)

    @property
    def protect(self) -> bool:
        """Whether data resources get deletion protection and Pulumi protect."""
        return self.environment == "prod"

    @property
    def retention_seconds(self) -> int:
        """Retention in seconds, as the application reads it (RETENTION_SECONDS)."""
        return self.retention_days * 86_400


SUPPORT_IMAGE_KEYS = {
    "rabbitmq": "rabbitmqImage",
    "redis": "redisImage",
    "alloy": "alloyImage",
    "celery_exporter": "celeryExporterImage",
    "node_termination_handler": "nodeTerminationHandlerImage",
}


def _check_cidr(key: str, value: str, errors: list[str]) -> None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        errors.append(f"{key}: {value!r} is not a valid CIDR block ({error})")


def validate(config: StackConfig, stack: str) -> list[str]:
    """Return one message per invalid setting; an empty list means valid."""
    errors: list[str] = []

    if config.environment not in ENVIRONMENTS:
        errors.append(
            f"environment: {config.environment!r} is not one of {list(ENVIRONMENTS)}"
        )
    elif config.environment != stack:
        errors.append(
            f"environment: {config.environment!r} does not match the stack {stack!r}"
        )

    _check_cidr("vpcCidr", config.vpc_cidr, errors)
    if not 2 <= config.az_count <= 6:
        # RDS subnet groups need subnets in at least two AZs.
        errors.append(f"azCount: must be between 2 and 6, got {config.az_count}")

    if not config.api_allowed_cidrs:
        errors.append("apiAllowedCidrs: list at least one deployer CIDR")
    for cidr in config.api_allowed_cidrs:
        _check_cidr("apiAllowedCidrs", cidr, errors)
        if config.environment == "prod" and cidr in ("0.0.0.0/0", "::/0"):
            errors.append(f"apiAllowedCidrs: {cidr} opens the prod Kubernetes API")

    if config.retention_days <= 0:
        errors.append(f"retentionDays: must be > 0, got {config.retention_days}")
    if not 1 <= config.db_backup_retention_days <= 35:
        errors.append(
            "dbBackupRetentionDays: must be between 1 and 35, got "
            f"{config.db_backup_retention_days}"
        )
    elif config.environment == "prod" and config.db_backup_retention_days < 7:
        errors.append("dbBackupRetentionDays: prod keeps at least 7 days of backups")
    if config.db_max_allocated_storage_gb < config.db_allocated_storage_gb:
        errors.append("dbMaxAllocatedStorageGb: must be >= dbAllocatedStorageGb")

    match = _K3S_VERSION.match(config.k3s_version)
    if not match:
        errors.append(f"k3sVersion: {config.k3s_version!r} is not like v1.33.4+k3s1")
    elif int(match["minor"]) != KUBERNETES_MINOR:
        errors.append(
            f"k3sVersion: Kubernetes minor must be 1.{KUBERNETES_MINOR} (the schema "
            f"version the manifests are checked against), got {config.k3s_version}"
        )

    if config.agent_min_size < 0:
        errors.append(f"agentMinSize: must be >= 0, got {config.agent_min_size}")
    if config.agent_max_size < max(config.agent_min_size, 1):
        errors.append(
            f"agentMaxSize: must be >= agentMinSize and >= 1, got "
            f"{config.agent_max_size}"
        )
    if not config.agent_min_size <= config.agent_desired_size <= config.agent_max_size:
        errors.append(
            "agentDesiredSize: must lie between agentMinSize and agentMaxSize"
        )
    types = config.agent_instance_types
    if len(set(types)) < 2:
        errors.append("agentInstanceTypes: list at least two types for spot capacity")
    for instance_type in [*types, config.server_instance_type]:
        if not _INSTANCE_TYPE.match(instance_type):
            errors.append(f"instance type {instance_type!r} is not like m6i.large")

    if not _REPOSITORY.match(config.github_repository):
        errors.append(
            f"githubRepository: {config.github_repository!r} is not owner/name"
        )

    if config.deploy_workloads:
        if config.image_digests is None:
            errors.append(
                "apiImageDigest, workerStandardImageDigest, workerMlImageDigest: "
                "required when deployWorkloads is true (CD sets them)"
            )
        else:
            for key, digest in (
                ("apiImageDigest", config.image_digests.api),
                ("workerStandardImageDigest", config.image_digests.worker_standard),
                ("workerMlImageDigest", config.image_digests.worker_ml),
            ):
                if not _DIGEST.match(digest):
                    errors.append(f"{key}: {digest!r} is not sha256:<64 hex digits>")

    for key, replicas in (
        ("api", config.api_replicas),
        ("standardWorker", config.standard_worker_replicas),
        ("mlWorker", config.ml_worker_replicas),
    ):
        if replicas.min_replicas < 1:
            errors.append(f"{key}MinReplicas: must be >= 1")
        if replicas.max_replicas < replicas.min_replicas:
            errors.append(f"{key}MaxReplicas: must be >= {key}MinReplicas")
    if config.environment == "prod" and config.api_replicas.min_replicas < 2:
        errors.append("apiMinReplicas: prod runs at least 2 API pods")

    if not config.metrics_remote_write_url.startswith("https://"):
        errors.append("metricsRemoteWriteUrl: must be an https:// URL")
    if config.certificate_arn and not config.certificate_arn.startswith("arn:aws:acm:"):
        errors.append("certificateArn: must be an ACM certificate ARN")
    if config.rabbitmq_storage_gb < 1:
        errors.append("rabbitmqStorageGb: must be >= 1")
    for name, image in config.support_images.items():
        if not _PINNED_IMAGE.match(image):
            errors.append(
                f"{SUPPORT_IMAGE_KEYS[name]}: {image!r} must be pinned to a tag "
                "other than latest or to a digest"
            )
    return errors


def _optional(cfg: pulumi.Config, key: str) -> str | None:
    value = cfg.get(key)
    return value or None


def _read(cfg: pulumi.Config, region: str) -> StackConfig:
    # Defaults live in Pulumi.yaml (project config); the CLI fills them in, so
    # every key with a default is required here.
    digests = [
        cfg.get("apiImageDigest"),
        cfg.get("workerStandardImageDigest"),
        cfg.get("workerMlImageDigest"),
    ]
    image_digests = (
        ImageDigests(digests[0], digests[1], digests[2])
        if digests[0] and digests[1] and digests[2]
        else None
    )
    return StackConfig(
        environment=cfg.require("environment"),
        region=region,
        vpc_cidr=cfg.require("vpcCidr"),
        az_count=cfg.require_int("azCount"),
        nat_gateway_per_az=cfg.require_bool("natGatewayPerAz"),
        api_allowed_cidrs=[str(c) for c in cfg.require_object("apiAllowedCidrs")],
        db_instance_class=cfg.require("dbInstanceClass"),
        db_allocated_storage_gb=cfg.require_int("dbAllocatedStorageGb"),
        db_max_allocated_storage_gb=cfg.require_int("dbMaxAllocatedStorageGb"),
        db_multi_az=cfg.require_bool("dbMultiAz"),
        db_backup_retention_days=cfg.require_int("dbBackupRetentionDays"),
        retention_days=cfg.require_int("retentionDays"),
        k3s_version=cfg.require("k3sVersion"),
        ecr_credential_provider_version=cfg.require("ecrCredentialProviderVersion"),
        server_instance_type=cfg.require("serverInstanceType"),
        agent_instance_types=[str(t) for t in cfg.require_object("agentInstanceTypes")],
        agent_min_size=cfg.require_int("agentMinSize"),
        agent_max_size=cfg.require_int("agentMaxSize"),
        agent_desired_size=cfg.require_int("agentDesiredSize"),
        root_volume_gb=cfg.require_int("rootVolumeGb"),
        ami_id=_optional(cfg, "amiId"),
        github_repository=cfg.require("githubRepository"),
        github_oidc_provider_arn=_optional(cfg, "githubOidcProviderArn"),
        pulumi_state_bucket=_optional(cfg, "pulumiStateBucket"),
        pulumi_secrets_key_arn=_optional(cfg, "pulumiSecretsKeyArn"),
        deploy_workloads=cfg.require_bool("deployWorkloads"),
        image_digests=image_digests,
        api_replicas=ReplicaRange(
            cfg.require_int("apiMinReplicas"), cfg.require_int("apiMaxReplicas")
        ),
        standard_worker_replicas=ReplicaRange(
            cfg.require_int("standardWorkerMinReplicas"),
            cfg.require_int("standardWorkerMaxReplicas"),
        ),
        ml_worker_replicas=ReplicaRange(
            cfg.require_int("mlWorkerMinReplicas"),
            cfg.require_int("mlWorkerMaxReplicas"),
        ),
        certificate_arn=_optional(cfg, "certificateArn"),
        metrics_remote_write_url=cfg.require("metricsRemoteWriteUrl"),
        metrics_remote_write_username=_optional(cfg, "metricsRemoteWriteUsername"),
        rabbitmq_storage_gb=cfg.require_int("rabbitmqStorageGb"),
        load_balancer_controller_chart_version=cfg.require(
            "loadBalancerControllerChartVersion"
        ),
        support_images={
            name: cfg.require(key) for name, key in SUPPORT_IMAGE_KEYS.items()
        },
    )


@dataclass(frozen=True)
class StackSecrets:
    """Secret settings; each stays a secret Output."""

    api_keys: pulumi.Output[str]
    metrics_remote_write_password: pulumi.Output[str] | None


def load_stack_secrets() -> StackSecrets:
    """Read the secret settings of the current stack."""
    cfg = pulumi.Config("pixtools")
    password = cfg.get_secret("metricsRemoteWritePassword")
    return StackSecrets(
        api_keys=cfg.require_secret("apiKeys"),
        metrics_remote_write_password=password,
    )


def load_stack_config() -> StackConfig:
    """Read and validate the configuration of the current stack."""
    region = pulumi.Config("aws").require("region")
    config = _read(pulumi.Config("pixtools"), region)
    errors = validate(config, pulumi.get_stack())
    if errors:
        raise StackConfigError(
            "invalid stack configuration:\n" + "\n".join(f"- {e}" for e in errors)
        )
    return config
