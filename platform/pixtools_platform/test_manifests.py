"""Every Kubernetes object against the 1.33 schemas and the program's own checks."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from pixtools_platform.stack_config import KUBERNETES_MINOR
from pixtools_platform.testing import kube
from pixtools_platform.testing.harness import StackRun
from pixtools_platform.testing.manifest_checks import check_manifest, parse_quantity

KUBERNETES_VERSION = f"1.{KUBERNETES_MINOR}.0"


def test_strict_schema_valid(stack_run: StackRun):
    objects = kube.objects(stack_run)
    assert len(objects) > 30
    for resource, body in objects:
        try:
            kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{resource.name}: {error.message} at {list(error.path)}")


def test_own_checks_pass(stack_run: StackRun):
    problems = {
        resource.name: check_manifest(body)
        for resource, body in kube.objects(stack_run)
    }
    assert {name: found for name, found in problems.items() if found} == {}


def test_schema_version_matches_k3s(stack_run: StackRun):
    minor = stack_run.config_value("k3sVersion").split(".")[1]
    assert int(minor) == KUBERNETES_MINOR


@pytest.fixture(scope="module")
def api_deployment(dev_run: StackRun) -> dict:
    return kube.find(dev_run, "Deployment", "api")


def _mutated(body: dict, path: list, value) -> dict:
    changed = copy.deepcopy(body)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


CONTAINER = ["spec", "template", "spec", "containers", 0]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ([*CONTAINER, "imagePullPolicy"], "Sometimes", "imagePullPolicy"),
        ([*CONTAINER, "image"], "python:latest", "image"),
        ([*CONTAINER, "resources", "limits", "memory"], "lots", "quantity"),
        ([*CONTAINER, "resources", "requests", "cpu"], "4", "exceeds its limit"),
        ([*CONTAINER, "ports", 0, "protocol"], "HTTP", "protocol"),
        ([*CONTAINER, "ports", 0, "name"], "http-port-name-too-long", "IANA_SVC_NAME"),
        ([*CONTAINER, "readinessProbe", "httpGet", "port"], "web", "not declared"),
        (
            [*CONTAINER, "securityContext", "allowPrivilegeEscalation"],
            True,
            "allowPrivilegeEscalation",
        ),
        (["spec", "template", "spec", "securityContext", "runAsUser"], 0, "runAsUser"),
        (["spec", "strategy", "type"], "BlueGreen", "strategy"),
        (["metadata", "name"], "API_Server", "metadata.name"),
        (["metadata", "labels"], {"app/kubernetes/io": "x"}, "malformed"),
    ],
)
def test_checks_catch_bad_field(api_deployment, path, value, expected):
    problems = check_manifest(_mutated(api_deployment, path, value))
    assert any(expected in problem for problem in problems), problems


def test_checks_catch_alb_annotation_typo(dev_run: StackRun):
    ingress = kube.find(dev_run, "Ingress", "api")
    annotations = dict(ingress["metadata"]["annotations"])
    annotations["alb.ingress.kubernetes.io/target-typ"] = "instance"
    problems = check_manifest(
        _mutated(ingress, ["metadata", "annotations"], annotations)
    )
    assert any("target-typ" in problem for problem in problems)


def test_checks_catch_bad_listen_ports(dev_run: StackRun):
    ingress = kube.find(dev_run, "Ingress", "api")
    annotations = dict(ingress["metadata"]["annotations"])
    annotations["alb.ingress.kubernetes.io/listen-ports"] = '[{"HTTP": "80"}]'
    problems = check_manifest(
        _mutated(ingress, ["metadata", "annotations"], annotations)
    )
    assert any("listen-ports" in problem for problem in problems)


def test_checks_catch_pdb_with_both_fields(dev_run: StackRun):
    budget = kube.find(dev_run, "PodDisruptionBudget", "api")
    both = _mutated(budget, ["spec", "minAvailable"], 1)
    assert any("exactly one" in p for p in check_manifest(both))


def test_schema_catches_string_port(api_deployment):
    bad = _mutated(api_deployment, [*CONTAINER, "ports", 0, "containerPort"], "8000")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_schema_catches_misspelled_field(api_deployment):
    bad = _mutated(api_deployment, [*CONTAINER, "livenesProbe"], {})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", "0.25"),
        ("1Gi", str(2**30)),
        ("512Mi", str(512 * 2**20)),
        ("2", "2"),
        ("1e3", "1000"),
        ("1.5k", "1500"),
    ],
)
def test_parse_quantity_values(text, value):
    assert parse_quantity(text) == parse_quantity(value)


@pytest.mark.parametrize("text", ["", "1gb", "Mi", "1.2.3", "ten", "1 Gi"])
def test_parse_quantity_rejects(text):
    with pytest.raises(ValueError):
        parse_quantity(text)
