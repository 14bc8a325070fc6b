"""Checks on Kubernetes manifests that the OpenAPI schemas do not make.

The strict schemas of kubernetes-validate catch wrong types, unknown fields and
missing required fields. They accept any string where Kubernetes expects an enum
value, a quantity, a DNS name or a label key, and they know nothing of the AWS
Load Balancer Controller's annotations. ``check_manifest`` covers those gaps and
returns one message per problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
PORT_NAME = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
IMAGE = re.compile(
    r"^[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)*"
    r"(:(?!latest$)[A-Za-z0-9._-]{1,128}|@sha256:[0-9a-f]{64})$"
)
QUANTITY = re.compile(
    r"^(?P<number>[+-]?(\d+(\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$"
)
_SUFFIX_FACTORS = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}

PROTOCOLS = {"TCP", "UDP", "SCTP"}
PULL_POLICIES = {"Always", "IfNotPresent", "Never"}
RESTART_POLICIES = {"Always", "OnFailure", "Never"}
DNS_POLICIES = {"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"}
SERVICE_TYPES = {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}
DEPLOYMENT_STRATEGIES = {"RollingUpdate", "Recreate"}
DAEMONSET_STRATEGIES = {"RollingUpdate", "OnDelete"}
POD_MANAGEMENT = {"OrderedReady", "Parallel"}
ACCESS_MODES = {"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"}
PATH_TYPES = {"Exact", "Prefix", "ImplementationSpecific"}
RECLAIM_POLICIES = {"Delete", "Retain"}
BINDING_MODES = {"Immediate", "WaitForFirstConsumer"}
PREEMPTION = {"PreemptLowerPriority", "Never"}
TOLERATION_EFFECTS = {"NoSchedule", "PreferNoSchedule", "NoExecute"}
TOLERATION_OPERATORS = {"Equal", "Exists"}
SPREAD_WHEN = {"DoNotSchedule", "ScheduleAnyway"}
HPA_TARGETS = {"Utilization", "AverageValue", "Value"}
HPA_RESOURCES = {"cpu", "memory"}
SECCOMP_TYPES = {"RuntimeDefault", "Localhost", "Unconfined"}
HOST_PATH_TYPES = {
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
}
RBAC_VERBS = {
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "*",
}
SECRET_TYPES = {"Opaque", "kubernetes.io/tls", "kubernetes.io/dockerconfigjson"}

ALB_PREFIX = "alb.ingress.kubernetes.io/"
# Annotations of the AWS Load Balancer Controller v2 that this program may set.
ALB_ANNOTATIONS = {
    "scheme": {"internet-facing", "internal"},
    "target-type": {"instance", "ip"},
    "security-groups": None,
    "manage-backend-security-group-rules": {"true", "false"},
    "healthcheck-path": None,
    "healthcheck-interval-seconds": None,
    "healthy-threshold-count": None,
    "unhealthy-threshold-count": None,
    "load-balancer-attributes": None,
    "listen-ports": None,
    "certificate-arn": None,
    "ssl-redirect": None,
}
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def parse_quantity(value: Any) -> Decimal:
    """Parse a Kubernetes quantity such as ``250m`` or ``1Gi``.

    Raises ValueError for a value Kubernetes would reject.
    """
    text = str(value)
    match = QUANTITY.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as error:
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from error
    suffix = match["suffix"] or ""
    if suffix[:1] in ("e", "E"):
        return number * (Decimal(10) ** int(suffix[1:]))
    return number * _SUFFIX_FACTORS[suffix]


def _check_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and not DNS_SUBDOMAIN.match(prefix):
        return False
    return bool(QUALIFIED_NAME.match(name))


def _enum(problems: list[str], where: str, value: Any, allowed: set[str]) -> None:
    if value is not None and value not in allowed:
        problems.append(f"{where}: {value!r} is not one of {sorted(allowed)}")


def _check_metadata(kind: str, metadata: dict[str, Any], problems: list[str]) -> None:
    name = metadata.get("name")
    pattern = DNS_1035_LABEL if kind == "Service" else DNS_SUBDOMAIN
    if kind == "Namespace":
        pattern = DNS_LABEL
    if name is not None and not pattern.match(str(name)):
        problems.append(f"metadata.name: {name!r} is not a valid {kind} name")
    namespace = metadata.get("namespace")
    if namespace is not None and not DNS_LABEL.match(str(namespace)):
        problems.append(f"metadata.namespace: {namespace!r} is not a DNS label")
    _check_labels("metadata.labels", metadata.get("labels") or {}, problems)
    for key, value in (metadata.get("annotations") or {}).items():
        if not _check_key(key):
            problems.append(f"metadata.annotations: key {key!r} is malformed")
        if key.startswith(ALB_PREFIX):
            _check_alb_annotation(key.removeprefix(ALB_PREFIX), value, problems)


def _check_labels(where: str, labels: dict[str, Any], problems: list[str]) -> None:
    for key, value in labels.items():
        if not _check_key(key):
            problems.append(f"{where}: key {key!r} is malformed")
        if not LABEL_VALUE.match(str(value)):
            problems.append(f"{where}: value {value!r} of {key!r} is malformed")


def _check_alb_annotation(name: str, value: Any, problems: list[str]) -> None:
    where = f"annotation {ALB_PREFIX}{name}"
    if name not in ALB_ANNOTATIONS:
        problems.append(f"{where}: not an annotation this program may set")
        return
    allowed = ALB_ANNOTATIONS[name]
    if allowed is not None:
        _enum(problems, where, value, allowed)
    if name == "listen-ports":
        try:
            ports = json.loads(value)
            valid = isinstance(ports, list) and all(
                isinstance(entry, dict)
                and len(entry) == 1
                and set(entry) <= {"HTTP", "HTTPS"}
                and all(isinstance(port, int) for port in entry.values())
                for entry in ports
            )
        except (TypeError, ValueError):
            valid = False
        if not valid:
            problems.append(f'{where}: {value!r} is not a list like [{{"HTTP": 80}}]')
    if name.endswith(("-seconds", "-count")) and not str(value).isdigit():
        problems.append(f"{where}: {value!r} is not a whole number")


def _check_resources(
    where: str, resources: dict[str, Any], problems: list[str]
) -> None:
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    for kind in ("cpu", "memory"):
        if kind not in requests or kind not in limits:
            problems.append(f"{where}: needs both a {kind} request and a {kind} limit")
    for bucket_name, bucket in (("requests", requests), ("limits", limits)):
        for kind, quantity in bucket.items():
            try:
                parse_quantity(quantity)
            except ValueError as error:
                problems.append(f"{where}.{bucket_name}.{kind}: {error}")
    for kind, request in requests.items():
        if kind in limits:
            try:
                if parse_quantity(request) > parse_quantity(limits[kind]):
                    problems.append(f"{where}: {kind} request exceeds its limit")
            except ValueError:
                pass


def _check_container(
    where: str, container: dict[str, Any], volumes: set[str], problems: list[str]
) -> None:
    name = container.get("name", "")
    if not DNS_LABEL.match(name):
        problems.append(f"{where}.name: {name!r} is not a DNS label")
    image = container.get("image", "")
    if not IMAGE.match(str(image)):
        problems.append(
            f"{where}.image: {image!r} must be pinned to a tag (not latest) or digest"
        )
    _enum(
        problems,
        f"{where}.imagePullPolicy",
        container.get("imagePullPolicy"),
        PULL_POLICIES,
    )

    port_names: set[str] = set()
    for port in container.get("ports") or []:
        port_name = port.get("name")
        if port_name is not None:
            if not PORT_NAME.match(port_name):
                problems.append(
                    f"{where}.ports: name {port_name!r} is not IANA_SVC_NAME"
                )
            port_names.add(port_name)
        _enum(problems, f"{where}.ports.protocol", port.get("protocol"), PROTOCOLS)

    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name) or {}
        for handler in ("httpGet", "tcpSocket"):
            port = (probe.get(handler) or {}).get("port")
            if isinstance(port, str) and port not in port_names:
                problems.append(f"{where}.{probe_name}: port {port!r} is not declared")

    _check_resources(f"{where}.resources", container.get("resources") or {}, problems)
    for mount in container.get("volumeMounts") or []:
        if mount.get("name") not in volumes:
            problems.append(
                f"{where}.volumeMounts: {mount.get('name')!r} has no volume"
            )

    security = container.get("securityContext") or {}
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}.securityContext: allowPrivilegeEscalation not false")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        problems.append(f"{where}.securityContext: capabilities do not drop ALL")


def _check_pod(
    where: str, template: dict[str, Any], claims: set[str], problems: list[str]
) -> None:
    _check_labels(
        f"{where}.metadata.labels",
        (template.get("metadata") or {}).get("labels") or {},
        problems,
    )
    spec = template.get("spec") or {}

    _enum(
        problems, f"{where}.restartPolicy", spec.get("restartPolicy"), RESTART_POLICIES
    )
    _enum(problems, f"{where}.dnsPolicy", spec.get("dnsPolicy"), DNS_POLICIES)

    security = spec.get("securityContext") or {}
    if security.get("runAsNonRoot") is not True:
        problems.append(f"{where}.securityContext: runAsNonRoot is not true")
    if not isinstance(security.get("runAsUser"), int) or security["runAsUser"] == 0:
        problems.append(f"{where}.securityContext: runAsUser must be a non-zero uid")
    _enum(
        problems,
        f"{where}.securityContext.seccompProfile.type",
        (security.get("seccompProfile") or {}).get("type"),
        SECCOMP_TYPES,
    )

    for toleration in spec.get("tolerations") or []:
        _enum(
            problems,
            f"{where}.tolerations.effect",
            toleration.get("effect"),
            TOLERATION_EFFECTS,
        )
        _enum(
            problems,
            f"{where}.tolerations.operator",
            toleration.get("operator"),
            TOLERATION_OPERATORS,
        )
    for constraint in spec.get("topologySpreadConstraints") or []:
        _enum(
            problems,
            f"{where}.topologySpreadConstraints.whenUnsatisfiable",
            constraint.get("whenUnsatisfiable"),
            SPREAD_WHEN,
        )

    # StatefulSet pods also mount the volumes of their claim templates.
    volumes = {volume.get("name") for volume in spec.get("volumes") or []} | claims
    for volume in spec.get("volumes") or []:
        host_path = volume.get("hostPath")
        if host_path:
            _enum(
                problems,
                f"{where}.volumes.hostPath.type",
                host_path.get("type"),
                HOST_PATH_TYPES,
            )
        size = (volume.get("emptyDir") or {}).get("sizeLimit")
        if size is not None:
            try:
                parse_quantity(size)
            except ValueError as error:
                problems.append(f"{where}.volumes.emptyDir.sizeLimit: {error}")

    for index, container in enumerate(spec.get("containers") or []):
        _check_container(f"{where}.containers[{index}]", container, volumes, problems)


def pod_templates(manifest: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (path, pod template) of a workload manifest."""
    if manifest.get("kind") in POD_KINDS:
        yield "spec.template", (manifest.get("spec") or {}).get("template") or {}


def _check_kind(kind: str, manifest: dict[str, Any], problems: list[str]) -> None:
    spec = manifest.get("spec") or {}
    if kind == "Deployment":
        strategy = spec.get("strategy") or {}
        _enum(
            problems, "spec.strategy.type", strategy.get("type"), DEPLOYMENT_STRATEGIES
        )
        if strategy.get("type") == "Recreate" and "rollingUpdate" in strategy:
            problems.append("spec.strategy: Recreate cannot have rollingUpdate")
    elif kind == "DaemonSet":
        _enum(
            problems,
            "spec.updateStrategy.type",
            (spec.get("updateStrategy") or {}).get("type"),
            DAEMONSET_STRATEGIES,
        )
    elif kind == "StatefulSet":
        _enum(
            problems,
            "spec.podManagementPolicy",
            spec.get("podManagementPolicy"),
            POD_MANAGEMENT,
        )
        for claim in spec.get("volumeClaimTemplates") or []:
            claim_spec = claim.get("spec") or {}
            for mode in claim_spec.get("accessModes") or []:
                _enum(problems, "volumeClaimTemplates.accessModes", mode, ACCESS_MODES)
            storage = ((claim_spec.get("resources") or {}).get("requests") or {}).get(
                "storage"
            )
            try:
                parse_quantity(storage)
            except ValueError as error:
                problems.append(f"volumeClaimTemplates.storage: {error}")
    elif kind == "Job":
        restart = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if restart not in ("Never", "OnFailure"):
            problems.append("Job pods need restartPolicy Never or OnFailure")
    elif kind == "Service":
        _enum(problems, "spec.type", spec.get("type"), SERVICE_TYPES)
        for port in spec.get("ports") or []:
            _enum(problems, "spec.ports.protocol", port.get("protocol"), PROTOCOLS)
            name = port.get("name")
            if name is not None and not PORT_NAME.match(name):
                problems.append(f"spec.ports: name {name!r} is not IANA_SVC_NAME")
    elif kind == "Ingress":
        for rule in spec.get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                _enum(problems, "paths.pathType", path.get("pathType"), PATH_TYPES)
                if not str(path.get("path", "")).startswith("/"):
                    problems.append(
                        f"paths.path: {path.get('path')!r} must start with /"
                    )
    elif kind == "HorizontalPodAutoscaler":
        if spec.get("minReplicas", 1) > spec.get("maxReplicas", 0):
            problems.append("spec: minReplicas exceeds maxReplicas")
        for metric in spec.get("metrics") or []:
            resource = metric.get("resource") or {}
            _enum(
                problems, "metrics.resource.name", resource.get("name"), HPA_RESOURCES
            )
            _enum(
                problems,
                "metrics.resource.target.type",
                (resource.get("target") or {}).get("type"),
                HPA_TARGETS,
            )
    elif kind == "PodDisruptionBudget":
        if ("minAvailable" in spec) == ("maxUnavailable" in spec):
            problems.append("spec: set exactly one of minAvailable and maxUnavailable")
    elif kind == "StorageClass":
        _enum(
            problems, "reclaimPolicy", manifest.get("reclaimPolicy"), RECLAIM_POLICIES
        )
        _enum(
            problems,
            "volumeBindingMode",
            manifest.get("volumeBindingMode"),
            BINDING_MODES,
        )
    elif kind == "PriorityClass":
        _enum(
            problems, "preemptionPolicy", manifest.get("preemptionPolicy"), PREEMPTION
        )
        if not 0 <= int(manifest.get("value", -1)) <= 1_000_000_000:
            problems.append("value: user PriorityClasses stay within 0..1e9")
    elif kind in ("Role", "ClusterRole"):
        for rule in manifest.get("rules") or []:
            for verb in rule.get("verbs") or []:
                _enum(problems, "rules.verbs", verb, RBAC_VERBS)
    elif kind == "Secret":
        _enum(problems, "type", manifest.get("type"), SECRET_TYPES)


def check_manifest(manifest: dict[str, Any]) -> list[str]:
    """Return the problems the schemas miss in one manifest (empty when none)."""
    problems: list[str] = []
    kind = str(manifest.get("kind", ""))
    _check_metadata(kind, manifest.get("metadata") or {}, problems)
    _check_kind(kind, manifest, problems)
    claims: set[str] = {
        str((claim.get("metadata") or {}).get("name"))
        for claim in (manifest.get("spec") or {}).get("volumeClaimTemplates") or []
    }
    for where, template in pod_templates(manifest):
        _check_pod(where, template, claims, problems)
    return problems
