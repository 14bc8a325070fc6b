"""AWS Node Termination Handler: drains spot agents before EC2 reclaims them.

It runs in IMDS mode, one pod per agent, polling the instance metadata service
for spot interruption and rebalance notices and cordoning and draining the node.
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from pixtools_platform.workloads import podspec
from pixtools_platform.workloads.context import WorkloadContext
from pixtools_platform.workloads.podspec import Resources

NAME = "aws-node-termination-handler"
NAMESPACE = "kube-system"
# The handler image runs as this user.
NTH_UID = 1000
PROBE_PORT = 8080
RESOURCES = Resources("50m", "64Mi", "200m", "128Mi")


def _settings() -> list[podspec.Manifest]:
    values = {
        "ENABLE_SPOT_INTERRUPTION_DRAINING": "true",
        "ENABLE_SCHEDULED_EVENT_DRAINING": "true",
        "ENABLE_REBALANCE_MONITORING": "true",
        "ENABLE_REBALANCE_DRAINING": "true",
        "DELETE_LOCAL_DATA": "true",
        "IGNORE_DAEMON_SETS": "true",
        # -1 keeps each pod's own terminationGracePeriodSeconds.
        "POD_TERMINATION_GRACE_PERIOD": "-1",
        "NODE_TERMINATION_GRACE_PERIOD": "120",
        "ENABLE_PROBES_SERVER": "true",
        "PROBES_SERVER_PORT": str(PROBE_PORT),
        "JSON_LOGGING": "true",
        "METADATA_TRIES": "3",
        "UPTIME_FROM_FILE": "/proc/uptime",
    }
    env: list[podspec.Manifest] = [
        {"name": key, "value": value} for key, value in values.items()
    ]
    for name, path in (
        ("NODE_NAME", "spec.nodeName"),
        ("POD_NAME", "metadata.name"),
        ("NAMESPACE", "metadata.namespace"),
    ):
        env.append({"name": name, "value_from": {"field_ref": {"field_path": path}}})
    return env


def create_node_termination_handler(ctx: WorkloadContext, image: str) -> None:
    """Create the handler's ServiceAccount, RBAC and DaemonSet on the agents."""
    metadata = {"name": NAME, "namespace": NAMESPACE}
    account = k8s.core.v1.ServiceAccount(
        f"{ctx.prefix}-nth-account", metadata=metadata, opts=ctx.opts()
    )
    role = k8s.rbac.v1.ClusterRole(
        f"{ctx.prefix}-nth-role",
        metadata={"name": NAME},
        rules=[
            {
                "api_groups": [""],
                "resources": ["nodes"],
                "verbs": ["get", "list", "patch", "update"],
            },
            {"api_groups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            {"api_groups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
            {"api_groups": ["apps"], "resources": ["daemonsets"], "verbs": ["get"]},
            {"api_groups": [""], "resources": ["events"], "verbs": ["create"]},
        ],
        opts=ctx.opts(),
    )
    k8s.rbac.v1.ClusterRoleBinding(
        f"{ctx.prefix}-nth-binding",
        metadata={"name": NAME},
        role_ref={
            "api_group": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role.metadata.name,
        },
        subjects=[
            {
                "kind": "ServiceAccount",
                "name": account.metadata.name,
                "namespace": NAMESPACE,
            }
        ],
        opts=ctx.opts(),
    )

    container: podspec.Manifest = {
        "name": "handler",
        "image": image,
        "image_pull_policy": "IfNotPresent",
        "env": _settings(),
        "ports": [{"name": "probes", "container_port": PROBE_PORT, "protocol": "TCP"}],
        "liveness_probe": podspec.http_probe("/healthz", "probes", period=10),
        "resources": RESOURCES.spec(),
        "security_context": podspec.container_security(),
        "volume_mounts": [
            {"name": "uptime", "mount_path": "/proc/uptime", "read_only": True}
        ],
    }
    template = podspec.pod_template(
        NAME,
        [container],
        security=podspec.pod_security(NTH_UID),
        node_selector=podspec.worker_pool(),
        priority_class="system-node-critical",
        service_account=NAME,
        volumes=[
            {"name": "uptime", "host_path": {"path": "/proc/uptime", "type": "File"}}
        ],
        # IMDS responds only within the hop limit. On the host network the
        # handler is one hop from it, whatever the limit.
        extra={"host_network": True, "dns_policy": "ClusterFirstWithHostNet"},
    )
    k8s.apps.v1.DaemonSet(
        f"{ctx.prefix}-nth-daemonset",
        metadata=metadata,
        spec={
            "selector": {"match_labels": podspec.labels(NAME)},
            "update_strategy": {
                "type": "RollingUpdate",
                "rolling_update": {"max_unavailable": 1},
            },
            "template": template,
        },
        opts=ctx.opts(depends_on=[account]),
    )
