"""Queries over the Kubernetes objects a run registered."""

from __future__ import annotations

from typing import Any

from pixtools_platform.testing.harness import Registered, StackRun
from pixtools_platform.testing.values import plain


def manifest(resource: Registered) -> dict[str, Any]:
    """Return the object as it would be applied, with its auto-generated name."""
    body = plain(dict(resource.inputs))
    metadata = dict(body.get("metadata") or {})
    if "name" not in metadata:
        metadata["name"] = plain(resource.outputs.get("metadata", {})).get("name")
    body["metadata"] = metadata
    return body


def objects(
    run: StackRun, kind: str | None = None
) -> list[tuple[Registered, dict[str, Any]]]:
    """Return (resource, manifest) for every Kubernetes object, optionally one kind."""
    found = []
    for resource in run.kubernetes_objects():
        body = manifest(resource)
        if kind is None or body.get("kind") == kind:
            found.append((resource, body))
    return found


def find(run: StackRun, kind: str, name: str) -> dict[str, Any]:
    """Return the manifest of the one object of ``kind`` called ``name``."""
    matches = [
        body for _, body in objects(run, kind) if body["metadata"]["name"] == name
    ]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} {kind} objects named {name!r}")
    return matches[0]


def find_resource(run: StackRun, kind: str, name: str) -> Registered:
    """Return the registered resource of the one object of ``kind`` called ``name``."""
    matches = [r for r, body in objects(run, kind) if body["metadata"]["name"] == name]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} {kind} objects named {name!r}")
    return matches[0]


def pod_spec(body: dict[str, Any]) -> dict[str, Any]:
    """Return the pod spec of a workload manifest."""
    return body["spec"]["template"]["spec"]


def pod_labels(body: dict[str, Any]) -> dict[str, str]:
    """Return the pod template labels of a workload manifest."""
    return body["spec"]["template"]["metadata"]["labels"]


def workloads(run: StackRun) -> list[tuple[Registered, dict[str, Any]]]:
    """Return every Deployment, StatefulSet, DaemonSet and Job."""
    kinds = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
    return [(r, body) for r, body in objects(run) if body.get("kind") in kinds]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Return whether a matchLabels selector matches ``labels``."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
