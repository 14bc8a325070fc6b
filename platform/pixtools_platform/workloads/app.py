"""The PixTools services: API, standard and ML workers, beat and migrations."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from pixtools_platform.endpoints import API_PORT, WORKER_METRICS_PORT
from pixtools_platform.workloads import podspec
from pixtools_platform.workloads.context import (
    PRIORITY_API,
    PRIORITY_SYSTEM,
    PRIORITY_WORKER,
    Scaling,
    WorkloadContext,
)
from pixtools_platform.workloads.podspec import Resources

# Entry point of the PEX virtualenv that the Dockerfiles install.
PEX_ENTRYPOINT = "/app/venv/pex"

API_RESOURCES = Resources("250m", "384Mi", "1", "768Mi")
STANDARD_RESOURCES = Resources("500m", "512Mi", "2", "1536Mi")
ML_RESOURCES = Resources("1", "2Gi", "2", "4Gi")
BEAT_RESOURCES = Resources("50m", "128Mi", "250m", "256Mi")
MIGRATION_RESOURCES = Resources("100m", "256Mi", "500m", "512Mi")

# Workers finish the task in hand after SIGTERM; tasks are acked late, so a task
# cut off after this grace period is redelivered rather than lost.
# JSON log lines for the log collector, and tracing on without an exporter, so
# every log line of a job carries its trace id. To export the spans, set
# OTEL_TRACES_EXPORTER to "otlp" here and OTEL_EXPORTER_OTLP_ENDPOINT.
OBSERVABILITY_ENV = (
    {"name": "LOG_JSON", "value": "true"},
    {"name": "OTEL_TRACES_EXPORTER", "value": "none"},
)

STANDARD_GRACE_SECONDS = 120
ML_GRACE_SECONDS = 300


@dataclass(frozen=True)
class AppImages:
    """Digest-pinned references of the three service images."""

    api: pulumi.Input[str]
    worker_standard: pulumi.Input[str]
    worker_ml: pulumi.Input[str]


@dataclass
class AppObjects:
    """The objects other builders refer to."""

    migration: k8s.batch.v1.Job
    api_service: k8s.core.v1.Service
    deployments: dict[str, k8s.apps.v1.Deployment]


def _app_container(
    ctx: WorkloadContext,
    name: str,
    image: pulumi.Input[str],
    args: list[str],
    resources: Resources,
) -> podspec.Manifest:
    return {
        "name": name,
        "image": image,
        "image_pull_policy": "IfNotPresent",
        "command": [PEX_ENTRYPOINT],
        "args": args,
        "env_from": podspec.env_from(ctx.config_map, ctx.secret),
        "env": [{"name": "HOME", "value": "/tmp"}, *OBSERVABILITY_ENV],
        "resources": resources.spec(),
        "security_context": podspec.container_security(),
        "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}],
    }


def _disruption_budget(ctx: WorkloadContext, component: str) -> None:
    # maxUnavailable 1 always lets a node drain proceed, one pod at a time.
    k8s.policy.v1.PodDisruptionBudget(
        f"{ctx.prefix}-{component}-pdb",
        metadata=ctx.metadata(component),
        spec={
            "max_unavailable": 1,
            "selector": {"match_labels": podspec.labels(component)},
        },
        opts=ctx.opts(),
    )


def _autoscaler(
    ctx: WorkloadContext,
    component: str,
    deployment: k8s.apps.v1.Deployment,
    scaling: Scaling,
) -> None:
    k8s.autoscaling.v2.HorizontalPodAutoscaler(
        f"{ctx.prefix}-{component}-hpa",
        metadata=ctx.metadata(component),
        spec={
            "scale_target_ref": {
                "api_version": "apps/v1",
                "kind": "Deployment",
                "name": deployment.metadata.name,
            },
            "min_replicas": scaling.min_replicas,
            "max_replicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "average_utilization": scaling.target_cpu_percent,
                        },
                    },
                }
            ],
            "behavior": {
                "scale_down": {
                    "stabilization_window_seconds": 300,
                    "policies": [{"type": "Pods", "value": 1, "period_seconds": 60}],
                }
            },
        },
        opts=ctx.opts(),
    )


def _migration_job(
    ctx: WorkloadContext, image: pulumi.Input[str], api_digest: str
) -> k8s.batch.v1.Job:
    # A Job's pod template is immutable, so each API image gets its own Job. The
    # name carries the first 12 hex digits of the image digest.
    digest = api_digest.removeprefix("sha256:")[:12]
    component = "migrate"
    container = _app_container(ctx, component, image, ["migrate"], MIGRATION_RESOURCES)
    return k8s.batch.v1.Job(
        f"{ctx.prefix}-migrate-job",
        metadata=ctx.metadata(f"migrate-{digest}"),
        spec={
            "backoff_limit": 2,
            "active_deadline_seconds": 900,
            "template": podspec.pod_template(
                component,
                [container],
                security=podspec.pod_security(podspec.APP_UID),
                node_selector=podspec.system_pool(),
                tolerations=podspec.system_tolerations(),
                priority_class=PRIORITY_SYSTEM,
                volumes=[podspec.temp_volume()],
                restart_policy="Never",
            ),
        },
        opts=ctx.opts(),
    )


def _api(
    ctx: WorkloadContext,
    image: pulumi.Input[str],
    scaling: Scaling,
    migration: k8s.batch.v1.Job,
) -> tuple[k8s.apps.v1.Deployment, k8s.core.v1.Service]:
    component = "api"
    container = _app_container(ctx, component, image, [], API_RESOURCES)
    container["ports"] = [
        {"name": "http", "container_port": API_PORT, "protocol": "TCP"}
    ]
    # /metrics is reached only inside the cluster: the ingress routes /api only.
    container["env"].append({"name": "METRICS_PUBLIC", "value": "true"})
    container["liveness_probe"] = podspec.http_probe("/api/livez", "http")
    container["readiness_probe"] = podspec.http_probe("/api/readyz", "http", period=5)
    container["startup_probe"] = podspec.http_probe(
        "/api/livez", "http", period=5, failures=24
    )
    # The ALB keeps sending to a pod for a few seconds after it is deregistered.
    container["lifecycle"] = {"pre_stop": {"exec": {"command": ["sleep", "10"]}}}

    deployment = k8s.apps.v1.Deployment(
        f"{ctx.prefix}-api-deployment",
        metadata=ctx.metadata(component),
        spec={
            "selector": {"match_labels": podspec.labels(component)},
            "strategy": {
                "type": "RollingUpdate",
                "rolling_update": {"max_surge": 1, "max_unavailable": 0},
            },
            "template": podspec.pod_template(
                component,
                [container],
                security=podspec.pod_security(podspec.APP_UID),
                node_selector=podspec.worker_pool(),
                priority_class=PRIORITY_API,
                volumes=[podspec.temp_volume()],
                extra={
                    "topology_spread_constraints": podspec.spread_over_nodes(component)
                },
            ),
        },
        opts=ctx.opts(depends_on=[migration]),
    )
    service = k8s.core.v1.Service(
        f"{ctx.prefix}-api-service",
        metadata=ctx.metadata(component),
        spec={
            # The ALB uses instance targets: it sends to a NodePort on each node.
            "type": "NodePort",
            "selector": podspec.labels(component),
            "ports": [
                {"name": "http", "port": 80, "target_port": "http", "protocol": "TCP"}
            ],
        },
        opts=ctx.opts(),
    )
    _autoscaler(ctx, component, deployment, scaling)
    _disruption_budget(ctx, component)
    return deployment, service


def _worker(
    ctx: WorkloadContext,
    component: str,
    image: pulumi.Input[str],
    resources: Resources,
    scaling: Scaling,
    grace_seconds: int,
    migration: k8s.batch.v1.Job,
) -> k8s.apps.v1.Deployment:
    container = _app_container(ctx, component, image, ["worker"], resources)
    # The ML role defaults to another port; one port for both keeps scraping simple.
    container["env"].append(
        {"name": "WORKER_METRICS_PORT", "value": str(WORKER_METRICS_PORT)}
    )

    container["ports"] = [
        {"name": "metrics", "container_port": WORKER_METRICS_PORT, "protocol": "TCP"}
    ]
    # Alloy scrapes the pod's address, so the server listens on every interface.
    container["env"] += [
        {"name": "METRICS_HOST", "value": "0.0.0.0"},
        {"name": "WORKER_METRICS_PORT", "value": str(WORKER_METRICS_PORT)},
    ]
    # The metrics server runs inside the worker process, so it stops responding
    # when the process hangs or dies.
    container["liveness_probe"] = podspec.http_probe(
        "/metrics", "metrics", period=20, failures=3, initial_delay=30
    )

    deployment = k8s.apps.v1.Deployment(
        f"{ctx.prefix}-{component}-deployment",
        metadata=ctx.metadata(component),
        spec={
            "selector": {"match_labels": podspec.labels(component)},
            "strategy": {
                "type": "RollingUpdate",
                "rolling_update": {"max_surge": 1, "max_unavailable": 0},
            },
            "template": podspec.pod_template(
                component,
                [container],
                security=podspec.pod_security(podspec.APP_UID),
                node_selector=podspec.worker_pool(),
                priority_class=PRIORITY_WORKER,
                volumes=[podspec.temp_volume(size="2Gi")],
                grace_seconds=grace_seconds,
                extra={
                    "topology_spread_constraints": podspec.spread_over_nodes(component)
                },
            ),
        },
        opts=ctx.opts(depends_on=[migration]),
    )
    _autoscaler(ctx, component, deployment, scaling)
    _disruption_budget(ctx, component)
    return deployment


def _beat(
    ctx: WorkloadContext, image: pulumi.Input[str], migration: k8s.batch.v1.Job
) -> k8s.apps.v1.Deployment:
    component = "beat"
    container = _app_container(ctx, component, image, ["beat"], BEAT_RESOURCES)
    # Exactly one scheduler may run: Recreate stops the old pod before the new one
    # starts, and there is no autoscaler.
    return k8s.apps.v1.Deployment(
        f"{ctx.prefix}-beat-deployment",
        metadata=ctx.metadata(component),
        spec={
            "replicas": 1,
            "selector": {"match_labels": podspec.labels(component)},
            "strategy": {"type": "Recreate"},
            "template": podspec.pod_template(
                component,
                [container],
                security=podspec.pod_security(podspec.APP_UID),
                node_selector=podspec.system_pool(),
                tolerations=podspec.system_tolerations(),
                priority_class=PRIORITY_SYSTEM,
                volumes=[podspec.temp_volume()],
            ),
        },
        opts=ctx.opts(depends_on=[migration]),
    )


def create_app(
    ctx: WorkloadContext,
    images: AppImages,
    api_digest: str,
    api_scaling: Scaling,
    standard_scaling: Scaling,
    ml_scaling: Scaling,
) -> AppObjects:
    """Create the migration Job, then the services that wait for it."""
    migration = _migration_job(ctx, images.api, api_digest)
    api, api_service = _api(ctx, images.api, api_scaling, migration)
    standard = _worker(
        ctx,
        "worker-standard",
        images.worker_standard,
        STANDARD_RESOURCES,
        standard_scaling,
        STANDARD_GRACE_SECONDS,
        migration,
    )
    ml = _worker(
        ctx,
        "worker-ml",
        images.worker_ml,
        ML_RESOURCES,
        ml_scaling,
        ML_GRACE_SECONDS,
        migration,
    )
    beat = _beat(ctx, images.worker_standard, migration)
    return AppObjects(
        migration=migration,
        api_service=api_service,
        deployments={
            "api": api,
            "worker-standard": standard,
            "worker-ml": ml,
            "beat": beat,
        },
    )
