"""The whole program: resource graph, providers, names, secrets and outputs."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime.mocks import MockCallArgs

from pixtools_platform.conftest import cached_run
from pixtools_platform.testing.harness import StackRun, run_stack
from pixtools_platform.testing.mocks import FAKE_KUBECONFIG, AwsKubernetesMocks
from pixtools_platform.testing.values import is_secret

COMPONENT_TYPES = {
    "pixtools:network:Network",
    "pixtools:storage:Storage",
    "pixtools:registry:Registry",
    "pixtools:database:Database",
    "pixtools:configuration:Configuration",
    "pixtools:identity:Identity",
    "pixtools:cluster:Cluster",
    "pixtools:workloads:Workloads",
}
EXPECTED_OUTPUTS = {
    "imageRepositories",
    "deployRoleArn",
    "buckets",
    "databaseAddress",
    "databaseUrl",
    "parameterPath",
    "serverPublicIp",
    "kubeconfig",
    "apiUrl",
}


def test_preview_registers_same_graph(stack_run: StackRun):
    preview = cached_run(stack_run.stack, preview=True)
    assert preview.preview is True
    # A resource created inside apply() would be missing from the preview.
    assert sorted(r.urn for r in preview.resources) == sorted(
        r.urn for r in stack_run.resources
    )
    assert any(not output.known for output in preview.outputs.values())


def test_components_typed_and_complete(stack_run: StackRun):
    types = {r.type for r in stack_run.resources if r.type.startswith("pixtools:")}
    assert types == COMPONENT_TYPES


def test_every_resource_under_a_component(stack_run: StackRun):
    components = {r.urn: r for r in stack_run.resources if r.type in COMPONENT_TYPES}
    for resource in stack_run.resources:
        if resource.type in COMPONENT_TYPES or resource.name == "aws":
            continue
        assert resource.parent in components, resource.name
        parent = components[resource.parent]
        assert resource.name.startswith(parent.name + "-"), (resource.name, parent.name)


def test_aws_resources_use_tagged_provider(stack_run: StackRun):
    providers = stack_run.of_type("pulumi:providers:aws")
    assert len(providers) == 1
    # Provider inputs travel JSON-encoded.
    tags = json.loads(providers[0].plain_inputs()["defaultTags"])["tags"]
    assert tags["Project"] == "pixtools"
    assert tags["Environment"] == stack_run.stack
    assert providers[0].plain_inputs()["region"] == stack_run.config["aws:region"]
    aws = [r for r in stack_run.resources if r.type.startswith("aws:")]
    assert len(aws) > 60
    for resource in aws:
        assert resource.provider_urn == providers[0].urn, resource.name


def test_outputs_exported(stack_run: StackRun):
    assert set(stack_run.outputs) == EXPECTED_OUTPUTS
    for name, output in stack_run.outputs.items():
        assert output.known, name


def test_sensitive_outputs_secret(stack_run: StackRun):
    assert stack_run.outputs["kubeconfig"].secret is True
    assert stack_run.outputs["kubeconfig"].value == FAKE_KUBECONFIG
    assert stack_run.outputs["databaseUrl"].secret is True
    for name in ("imageRepositories", "buckets", "deployRoleArn", "apiUrl"):
        assert stack_run.outputs[name].secret is False, name


def _secret_values(run: StackRun) -> set[str]:
    values = {FAKE_KUBECONFIG}
    for password in run.of_type("random:index/randomPassword:RandomPassword"):
        values.add(password.outputs["result"]["value"])
    for key in run.config:
        if run.config[key].startswith("placeholder-"):
            values.add(run.config[key])
    return values


def _plaintext_leaks(value, secrets: set[str], path: str) -> list[str]:
    if is_secret(value):
        return []
    if isinstance(value, dict):
        return [
            leak
            for key, item in value.items()
            for leak in _plaintext_leaks(item, secrets, f"{path}.{key}")
        ]
    if isinstance(value, list):
        return [
            leak
            for index, item in enumerate(value)
            for leak in _plaintext_leaks(item, secrets, f"{path}[{index}]")
        ]
    if isinstance(value, str) and any(secret in value for secret in secrets):
        return [path]
    return []


def test_secrets_never_plaintext(stack_run: StackRun):
    secrets = _secret_values(stack_run)
    assert len(secrets) >= 7
    leaks = []
    for resource in stack_run.resources:
        leaks.extend(_plaintext_leaks(dict(resource.inputs), secrets, resource.name))
    assert leaks == []
    for name, output in stack_run.outputs.items():
        text = str(output.value)
        if any(secret in text for secret in secrets):
            assert output.secret, name


def test_only_prod_protects_data(stack_run: StackRun):
    protected = {r.type for r in stack_run.resources if r.protect}
    if stack_run.stack == "prod":
        assert {
            "aws:rds/instance:Instance",
            "aws:s3/bucket:Bucket",
            "aws:ec2/instance:Instance",
            "kubernetes:apps/v1:StatefulSet",
        } <= protected
    else:
        assert protected == set()


def test_bootstrap_without_workloads(dev_run: StackRun):
    run = run_stack("dev", overrides={"deployWorkloads": False})
    assert [r for r in run.resources if r.type.startswith("kubernetes:")] == []
    assert "apiUrl" not in run.outputs
    full = {r.urn for r in dev_run.resources}
    assert {r.urn for r in run.resources} <= full
    assert run.outputs["kubeconfig"].secret is True


def test_unmocked_invoke_raises():
    mocks = AwsKubernetesMocks("eu-west-1")
    with pytest.raises(NotImplementedError, match="aws:ec2/getVpc:getVpc"):
        mocks.call(MockCallArgs("aws:ec2/getVpc:getVpc", {}, ""))
