"""Kubernetes objects of PixTools, applied through an explicit provider.

The provider is built from the cluster's kubeconfig, and every object is a child
of the Workloads component, so no object can reach whatever cluster the ambient
kubeconfig of the deploying machine points at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from pixtools_platform.common import child_options, type_token
from pixtools_platform.endpoints import NAMESPACE
from pixtools_platform.workloads.app import AppImages, create_app
from pixtools_platform.workloads.context import (
    PRIORITY_API,
    PRIORITY_SYSTEM,
    PRIORITY_WORKER,
    Scaling,
    WorkloadContext,
)
from pixtools_platform.workloads.ingress import IngressSettings, create_ingress
from pixtools_platform.workloads.messaging import MessagingImages, create_messaging
from pixtools_platform.workloads.node_termination import (
    create_node_termination_handler,
)
from pixtools_platform.workloads.observability import (
    MetricsSink,
    create_observability,
)

__all__ = [
    "AppImages",
    "MessagingImages",
    "MetricsSink",
    "Scaling",
    "SupportImages",
    "Workloads",
    "WorkloadsArgs",
]

STORAGE_CLASS = "pixtools-local"
PRIORITIES = {
    PRIORITY_SYSTEM: (1_000_000, "Broker, cache, scheduler and cluster add-ons"),
    PRIORITY_API: (100_000, "Public API pods"),
    PRIORITY_WORKER: (10_000, "Celery workers; preempted first"),
}


@dataclass(frozen=True)
class SupportImages:
    """Tag-pinned images of the third-party components."""

    rabbitmq: str
    redis: str
    alloy: str
    celery_exporter: str
    node_termination_handler: str


@dataclass
class WorkloadsArgs:
    """Inputs of the Workloads component."""

    kubeconfig: pulumi.Input[str]
    environment: str
    cluster_name: str
    region: str
    vpc_id: pulumi.Input[str]
    app_images: AppImages
    api_digest: str
    support_images: SupportImages
    settings: Mapping[str, pulumi.Input[str]]
    secrets: Mapping[str, pulumi.Input[str]]
    rabbitmq_password: pulumi.Input[str]
    redis_password: pulumi.Input[str]
    alb_security_group_id: pulumi.Input[str]
    api_scaling: Scaling
    standard_scaling: Scaling
    ml_scaling: Scaling
    metrics: MetricsSink
    load_balancer_controller_chart_version: str
    rabbitmq_storage_gb: int
    protect: bool
    certificate_arn: str | None = None


class Workloads(pulumi.ComponentResource):
    """Namespace, configuration, services, broker, ingress and add-ons."""

    provider: k8s.Provider
    namespace: pulumi.Output[str]
    api_hostname: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: WorkloadsArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(type_token("workloads", "Workloads"), name, None, opts)

        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=pulumi.Output.secret(args.kubeconfig),
            # Objects in this program always name their namespace.
            namespace=NAMESPACE,
            opts=child_options(self),
        )

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": NAMESPACE,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
            opts=self._opts(protect=args.protect),
        )
        ns_name = namespace.metadata.name
        self._create_cluster_objects(name)

        storage_class = k8s.storage.v1.StorageClass(
            f"{name}-storage-class",
            metadata={"name": STORAGE_CLASS},
            provisioner="rancher.io/local-path",
            reclaim_policy="Retain",
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=False,
            opts=self._opts(),
        )

        # ConfigMap and Secret are auto-named: a changed value creates a new object
        # with a new name, which rolls every Deployment that refers to it.
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-settings",
            metadata={"namespace": ns_name},
            data=dict(args.settings),
            opts=self._opts(),
        )
        secret = k8s.core.v1.Secret(
            f"{name}-secrets",
            metadata={"namespace": ns_name},
            type="Opaque",
            string_data={
                key: pulumi.Output.secret(value) for key, value in args.secrets.items()
            },
            opts=self._opts(),
        )
        ctx = WorkloadContext(
            prefix=name,
            parent=self,
            provider=self.provider,
            namespace=NAMESPACE,
            config_map=config_map,
            secret=secret,
        )

        create_messaging(
            ctx,
            MessagingImages(
                rabbitmq=args.support_images.rabbitmq, redis=args.support_images.redis
            ),
            args.rabbitmq_password,
            args.redis_password,
            storage_class,
            args.rabbitmq_storage_gb,
            args.protect,
        )
        app = create_app(
            ctx,
            args.app_images,
            args.api_digest,
            args.api_scaling,
            args.standard_scaling,
            args.ml_scaling,
        )
        ingress = create_ingress(
            ctx,
            IngressSettings(
                cluster_name=args.cluster_name,
                region=args.region,
                vpc_id=args.vpc_id,
                alb_security_group_id=args.alb_security_group_id,
                chart_version=args.load_balancer_controller_chart_version,
                certificate_arn=args.certificate_arn,
            ),
            app.api_service,
        )
        create_node_termination_handler(
            ctx, args.support_images.node_termination_handler
        )
        create_observability(
            ctx,
            alloy_image=args.support_images.alloy,
            exporter_image=args.support_images.celery_exporter,
            environment=args.environment,
            cluster=args.cluster_name,
            sink=args.metrics,
        )

        self.namespace = ns_name
        self.api_hostname = ingress.status.apply(_load_balancer_hostname)
        self.register_outputs(
            {"namespace": self.namespace, "api_hostname": self.api_hostname}
        )

    def _opts(self, **options: object) -> pulumi.ResourceOptions:
        return child_options(self, provider=self.provider, **options)

    def _create_cluster_objects(self, name: str) -> None:
        for class_name, (value, description) in PRIORITIES.items():
            k8s.scheduling.v1.PriorityClass(
                f"{name}-priority-{class_name}",
                metadata={"name": class_name},
                value=value,
                global_default=False,
                preemption_policy="PreemptLowerPriority",
                description=description,
                opts=self._opts(),
            )


def _load_balancer_hostname(status: object) -> str:
    # The controller fills status.loadBalancer.ingress[0].hostname with the ALB's
    # DNS name; pulumi-kubernetes waits for it before the Ingress counts as ready.
    try:
        ingress = status.load_balancer.ingress  # type: ignore[attr-defined]
        return str(ingress[0].hostname)
    except (AttributeError, IndexError, TypeError) as error:
        raise ValueError("Ingress status has no load balancer hostname") from error
