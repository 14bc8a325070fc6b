"""Building blocks of pod specs: labels, security contexts, resources, probes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pixtools_platform.userdata import (
    AGENT_POOL,
    NODE_POOL_LABEL,
    SERVER_POOL,
    SERVER_TAINT,
)

PART_OF = "pixtools"
# The application images create this user (packages/*/Dockerfile).
APP_UID = 10001

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Resources:
    """CPU and memory requests and limits of one container."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def spec(self) -> Manifest:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


def labels(component: str) -> dict[str, str]:
    """Return the labels that select the pods of one component."""
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/part-of": PART_OF,
    }


def pod_security(uid: int, *, fs_group: int | None = None) -> Manifest:
    """Return a pod security context that runs as a fixed non-root user."""
    context: Manifest = {
        "run_as_non_root": True,
        "run_as_user": uid,
        "run_as_group": uid,
        "seccomp_profile": {"type": "RuntimeDefault"},
    }
    if fs_group is not None:
        context["fs_group"] = fs_group
    return context


def container_security(*, read_only_root: bool = True) -> Manifest:
    """Return a container security context with every capability dropped."""
    return {
        "allow_privilege_escalation": False,
        "read_only_root_filesystem": read_only_root,
        "run_as_non_root": True,
        "capabilities": {"drop": ["ALL"]},
    }


def http_probe(
    path: str,
    port: str,
    *,
    period: int = 10,
    failures: int = 3,
    initial_delay: int = 0,
) -> Manifest:
    """Return an HTTP GET probe on a named container port."""
    return {
        "http_get": {"path": path, "port": port},
        "period_seconds": period,
        "failure_threshold": failures,
        "initial_delay_seconds": initial_delay,
        "timeout_seconds": 3,
    }


def temp_volume(name: str = "tmp", size: str = "256Mi") -> Manifest:
    """Return an emptyDir volume for scratch files under a read-only root."""
    return {"name": name, "empty_dir": {"size_limit": size}}


def worker_pool() -> Manifest:
    """Return the node selector of the spot agent pool."""
    return {NODE_POOL_LABEL: AGENT_POOL}


def system_pool() -> Manifest:
    """Return the node selector of the on-demand K3s server."""
    return {NODE_POOL_LABEL: SERVER_POOL}


def system_tolerations() -> list[Manifest]:
    """Return the toleration of the server taint, for pods placed on the server."""
    key, rest = SERVER_TAINT.split("=", 1)
    value, effect = rest.split(":", 1)
    return [{"key": key, "operator": "Equal", "value": value, "effect": effect}]


def spread_over_nodes(component: str) -> list[Manifest]:
    """Return a soft topology spread of one component's pods across nodes."""
    return [
        {
            "max_skew": 1,
            "topology_key": "kubernetes.io/hostname",
            "when_unsatisfiable": "ScheduleAnyway",
            "label_selector": {"match_labels": labels(component)},
        }
    ]


def env_from(config_map: Any, secret: Any) -> list[Manifest]:
    """Return envFrom entries that load a ConfigMap and a Secret by name."""
    return [
        {"config_map_ref": {"name": config_map.metadata.name}},
        {"secret_ref": {"name": secret.metadata.name}},
    ]


def pod_template(
    component: str,
    containers: Sequence[Manifest],
    *,
    security: Manifest,
    node_selector: Mapping[str, str],
    priority_class: str,
    volumes: Sequence[Manifest] = (),
    tolerations: Sequence[Manifest] = (),
    grace_seconds: int = 30,
    restart_policy: str | None = None,
    service_account: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Manifest:
    """Return a pod template labelled for ``component``."""
    spec: Manifest = {
        "containers": list(containers),
        "security_context": security,
        "node_selector": dict(node_selector),
        "priority_class_name": priority_class,
        "termination_grace_period_seconds": grace_seconds,
        "volumes": list(volumes),
        "automount_service_account_token": service_account is not None,
    }
    if tolerations:
        spec["tolerations"] = list(tolerations)
    if restart_policy:
        spec["restart_policy"] = restart_policy
    if service_account:
        spec["service_account_name"] = service_account
    if extra:
        spec.update(extra)
    return {"metadata": {"labels": labels(component)}, "spec": spec}
