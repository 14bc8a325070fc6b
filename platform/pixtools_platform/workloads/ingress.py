"""Public entry: the AWS Load Balancer Controller and the API's ALB Ingress."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from pixtools_platform.workloads import podspec
from pixtools_platform.workloads.context import PRIORITY_SYSTEM, WorkloadContext

LBC_CHART = "aws-load-balancer-controller"
LBC_REPOSITORY = "https://aws.github.io/eks-charts"
INGRESS_CLASS = "alb"
ALB = "alb.ingress.kubernetes.io"


@dataclass(frozen=True)
class IngressSettings:
    """Inputs of the ALB Ingress and its controller."""

    cluster_name: str
    region: str
    vpc_id: pulumi.Input[str]
    alb_security_group_id: pulumi.Input[str]
    chart_version: str
    # An ACM certificate turns on HTTPS and redirects HTTP to it.
    certificate_arn: str | None = None


def _controller(ctx: WorkloadContext, settings: IngressSettings) -> k8s.helm.v3.Release:
    # NOTE: the controller ships CRDs and a webhook with generated certificates.
    # Its Helm chart is the maintained way to install them, so this is the one
    # Helm release of the stack. Tests check its values, not the rendered objects.
    return k8s.helm.v3.Release(
        f"{ctx.prefix}-load-balancer-controller",
        name=LBC_CHART,
        chart=LBC_CHART,
        version=settings.chart_version,
        namespace="kube-system",
        repository_opts={"repo": LBC_REPOSITORY},
        values={
            "clusterName": settings.cluster_name,
            "region": settings.region,
            "vpcId": settings.vpc_id,
            "replicaCount": 1,
            "ingressClass": INGRESS_CLASS,
            "createIngressClassResource": True,
            # Services stay NodePort/ClusterIP; only the Ingress creates an ALB.
            "enableServiceMutatorWebhook": False,
            "nodeSelector": podspec.system_pool(),
            "tolerations": podspec.system_tolerations(),
            "priorityClassName": PRIORITY_SYSTEM,
        },
        opts=ctx.opts(),
    )


def ingress_annotations(
    alb_security_group_id: str, certificate_arn: str | None
) -> dict[str, str]:
    """Return the controller annotations of the API Ingress."""
    annotations = {
        f"{ALB}/scheme": "internet-facing",
        # Pod IPs of K3s (flannel) are not routable in the VPC, so the ALB
        # targets NodePorts on the instances.
        f"{ALB}/target-type": "instance",
        f"{ALB}/security-groups": alb_security_group_id,
        f"{ALB}/manage-backend-security-group-rules": "false",
        f"{ALB}/healthcheck-path": "/api/readyz",
        f"{ALB}/healthcheck-interval-seconds": "15",
        f"{ALB}/healthy-threshold-count": "2",
        f"{ALB}/unhealthy-threshold-count": "3",
        f"{ALB}/load-balancer-attributes": "idle_timeout.timeout_seconds=120",
    }
    if certificate_arn:
        annotations[f"{ALB}/listen-ports"] = json.dumps([{"HTTP": 80}, {"HTTPS": 443}])
        annotations[f"{ALB}/certificate-arn"] = certificate_arn
        annotations[f"{ALB}/ssl-redirect"] = "443"
    else:
        annotations[f"{ALB}/listen-ports"] = json.dumps([{"HTTP": 80}])
    return annotations


def create_ingress(
    ctx: WorkloadContext,
    settings: IngressSettings,
    api_service: k8s.core.v1.Service,
) -> k8s.networking.v1.Ingress:
    """Create the controller and an Ingress that routes /api to the API Service."""
    controller = _controller(ctx, settings)
    annotations = pulumi.Output.from_input(settings.alb_security_group_id).apply(
        lambda group_id: ingress_annotations(group_id, settings.certificate_arn)
    )
    return k8s.networking.v1.Ingress(
        f"{ctx.prefix}-api-ingress",
        metadata=ctx.metadata("api", annotations=annotations),
        spec={
            "ingress_class_name": INGRESS_CLASS,
            "rules": [
                {
                    "http": {
                        # Only /api is public; /metrics stays inside the cluster.
                        "paths": [
                            {
                                "path": "/api",
                                "path_type": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": api_service.metadata.name,
                                        "port": {"name": "http"},
                                    }
                                },
                            }
                        ]
                    }
                }
            ],
        },
        opts=ctx.opts(depends_on=[controller]),
    )
