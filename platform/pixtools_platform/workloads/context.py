"""State shared by the builders of the Kubernetes objects."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from pixtools_platform.common import child_options

PRIORITY_SYSTEM = "pixtools-system"
PRIORITY_API = "pixtools-api"
PRIORITY_WORKER = "pixtools-worker"


@dataclass(frozen=True)
class Scaling:
    """Replica bounds of a horizontally autoscaled component."""

    min_replicas: int
    max_replicas: int
    target_cpu_percent: int = 70


@dataclass
class WorkloadContext:
    """The component, namespace and shared configuration objects of a stack."""

    prefix: str
    parent: pulumi.Resource
    provider: k8s.Provider
    namespace: str
    config_map: k8s.core.v1.ConfigMap
    secret: k8s.core.v1.Secret

    def opts(self, **options: object) -> pulumi.ResourceOptions:
        """Return options for a child of the Workloads component."""
        return child_options(self.parent, provider=self.provider, **options)

    def metadata(self, name: str, **extra: object) -> dict[str, object]:
        """Return object metadata in the PixTools namespace."""
        return {"name": name, "namespace": self.namespace, **extra}
