"""RabbitMQ (the Celery broker) and Redis, both on the on-demand server node."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from pixtools_platform import endpoints
from pixtools_platform.workloads import podspec
from pixtools_platform.workloads.context import PRIORITY_SYSTEM, WorkloadContext
from pixtools_platform.workloads.podspec import Resources

RABBITMQ_RESOURCES = Resources("250m", "512Mi", "1", "1Gi")
REDIS_RESOURCES = Resources("100m", "128Mi", "500m", "384Mi")
# User ids of the official Debian-based rabbitmq image and of the redis image.
RABBITMQ_UID = 999
REDIS_UID = 999
REDIS_MAX_MEMORY = "256mb"


@dataclass(frozen=True)
class MessagingImages:
    """Tag-pinned third-party images."""

    rabbitmq: str
    redis: str


def _service(
    ctx: WorkloadContext,
    resource_name: str,
    name: str,
    component: str,
    port: int,
    port_name: str,
    *,
    headless: bool = False,
) -> k8s.core.v1.Service:
    spec: podspec.Manifest = {
        "type": "ClusterIP",
        "selector": podspec.labels(component),
        "ports": [
            {
                "name": port_name,
                "port": port,
                "target_port": port_name,
                "protocol": "TCP",
            }
        ],
    }
    if headless:
        spec["cluster_ip"] = "None"
    return k8s.core.v1.Service(
        resource_name, metadata=ctx.metadata(name), spec=spec, opts=ctx.opts()
    )


def _rabbitmq(
    ctx: WorkloadContext,
    image: str,
    password: pulumi.Input[str],
    storage_class: k8s.storage.v1.StorageClass,
    storage_gb: int,
    protect: bool,
) -> None:
    component = endpoints.RABBITMQ_SERVICE
    credentials = k8s.core.v1.Secret(
        f"{ctx.prefix}-rabbitmq-credentials",
        metadata={"namespace": ctx.namespace},
        type="Opaque",
        string_data={
            "RABBITMQ_DEFAULT_USER": endpoints.RABBITMQ_USER,
            "RABBITMQ_DEFAULT_PASS": pulumi.Output.secret(password),
        },
        opts=ctx.opts(),
    )
    container: podspec.Manifest = {
        "name": "rabbitmq",
        "image": image,
        "image_pull_policy": "IfNotPresent",
        "env_from": [{"secret_ref": {"name": credentials.metadata.name}}],
        "ports": [
            {
                "name": "amqp",
                "container_port": endpoints.RABBITMQ_PORT,
                "protocol": "TCP",
            }
        ],
        "liveness_probe": {
            "exec": {"command": ["rabbitmq-diagnostics", "-q", "ping"]},
            "period_seconds": 30,
            "timeout_seconds": 15,
            "initial_delay_seconds": 60,
        },
        "readiness_probe": {
            "exec": {
                "command": ["rabbitmq-diagnostics", "-q", "check_port_connectivity"]
            },
            "period_seconds": 15,
            "timeout_seconds": 15,
            "initial_delay_seconds": 20,
        },
        "resources": RABBITMQ_RESOURCES.spec(),
        # NOTE: the image's entrypoint writes under /etc/rabbitmq and the Erlang
        # runtime under $HOME, so the root filesystem stays writable here.
        "security_context": podspec.container_security(read_only_root=False),
        "volume_mounts": [{"name": "data", "mount_path": "/var/lib/rabbitmq"}],
    }
    headless = _service(
        ctx,
        f"{ctx.prefix}-rabbitmq-headless",
        f"{component}-headless",
        component,
        endpoints.RABBITMQ_PORT,
        "amqp",
        headless=True,
    )
    k8s.apps.v1.StatefulSet(
        f"{ctx.prefix}-rabbitmq-statefulset",
        metadata=ctx.metadata(component),
        spec={
            "service_name": headless.metadata.name,
            "replicas": 1,
            "pod_management_policy": "OrderedReady",
            "selector": {"match_labels": podspec.labels(component)},
            "template": podspec.pod_template(
                component,
                [container],
                security=podspec.pod_security(RABBITMQ_UID, fs_group=RABBITMQ_UID),
                node_selector=podspec.system_pool(),
                tolerations=podspec.system_tolerations(),
                priority_class=PRIORITY_SYSTEM,
                grace_seconds=60,
            ),
            "volume_claim_templates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "access_modes": ["ReadWriteOnce"],
                        "storage_class_name": storage_class.metadata.name,
                        "resources": {"requests": {"storage": f"{storage_gb}Gi"}},
                    },
                }
            ],
            "persistent_volume_claim_retention_policy": {
                "when_deleted": "Retain",
                "when_scaled": "Retain",
            },
        },
        opts=ctx.opts(protect=protect),
    )
    _service(
        ctx,
        f"{ctx.prefix}-rabbitmq-service",
        component,
        component,
        endpoints.RABBITMQ_PORT,
        "amqp",
    )
    k8s.policy.v1.PodDisruptionBudget(
        f"{ctx.prefix}-rabbitmq-pdb",
        metadata=ctx.metadata(component),
        spec={
            # One replica: the budget lets the drain evict it (the pod restarts
            # on the server once the node is back) instead of blocking forever.
            "max_unavailable": 1,
            "selector": {"match_labels": podspec.labels(component)},
        },
        opts=ctx.opts(),
    )


def _redis(ctx: WorkloadContext, image: str, password: pulumi.Input[str]) -> None:
    component = endpoints.REDIS_SERVICE
    credentials = k8s.core.v1.Secret(
        f"{ctx.prefix}-redis-credentials",
        metadata={"namespace": ctx.namespace},
        type="Opaque",
        string_data={"REDIS_PASSWORD": pulumi.Output.secret(password)},
        opts=ctx.opts(),
    )
    container: podspec.Manifest = {
        "name": "redis",
        "image": image,
        "image_pull_policy": "IfNotPresent",
        "args": [
            "--requirepass",
            "$(REDIS_PASSWORD)",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory",
            REDIS_MAX_MEMORY,
            "--maxmemory-policy",
            "noeviction",
        ],
        "env_from": [{"secret_ref": {"name": credentials.metadata.name}}],
        "ports": [
            {"name": "redis", "container_port": endpoints.REDIS_PORT, "protocol": "TCP"}
        ],
        "liveness_probe": {
            "tcp_socket": {"port": "redis"},
            "period_seconds": 10,
            "initial_delay_seconds": 5,
        },
        "readiness_probe": {
            "exec": {"command": ["sh", "-c", 'redis-cli -a "$REDIS_PASSWORD" ping']},
            "period_seconds": 10,
            "timeout_seconds": 3,
        },
        "resources": REDIS_RESOURCES.spec(),
        "security_context": podspec.container_security(),
        "volume_mounts": [{"name": "data", "mount_path": "/data"}],
    }
    k8s.apps.v1.Deployment(
        f"{ctx.prefix}-redis-deployment",
        metadata=ctx.metadata(component),
        spec={
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"match_labels": podspec.labels(component)},
            "template": podspec.pod_template(
                component,
                [container],
                security=podspec.pod_security(REDIS_UID, fs_group=REDIS_UID),
                node_selector=podspec.system_pool(),
                tolerations=podspec.system_tolerations(),
                priority_class=PRIORITY_SYSTEM,
                volumes=[podspec.temp_volume("data", "512Mi")],
            ),
        },
        opts=ctx.opts(),
    )
    _service(
        ctx,
        f"{ctx.prefix}-redis-service",
        component,
        component,
        endpoints.REDIS_PORT,
        "redis",
    )
    k8s.policy.v1.PodDisruptionBudget(
        f"{ctx.prefix}-redis-pdb",
        metadata=ctx.metadata(component),
        spec={
            "max_unavailable": 1,
            "selector": {"match_labels": podspec.labels(component)},
        },
        opts=ctx.opts(),
    )


def create_messaging(
    ctx: WorkloadContext,
    images: MessagingImages,
    rabbitmq_password: pulumi.Input[str],
    redis_password: pulumi.Input[str],
    storage_class: k8s.storage.v1.StorageClass,
    rabbitmq_storage_gb: int,
    protect: bool,
) -> None:
    """Create the broker and the cache with their Services and budgets."""
    _rabbitmq(
        ctx,
        images.rabbitmq,
        rabbitmq_password,
        storage_class,
        rabbitmq_storage_gb,
        protect,
    )
    _redis(ctx, images.redis, redis_password)
