"""Configuration: SSM parameters for settings, secrets and the kubeconfig."""

from __future__ import annotations

from pixtools_platform.configuration import KUBECONFIG_PLACEHOLDER
from pixtools_platform.testing.harness import StackRun
from pixtools_platform.testing.values import is_secret

PARAMETER = "aws:ssm/parameter:Parameter"
SECRET_NAMES = {
    "database-url",
    "broker-url",
    "redis-url",
    "signing-secret",
    "webhook-signing-secret",
    "api-keys",
    "k3s-token",
    "kubeconfig",
    "metrics-token",
}


def parameters(run: StackRun) -> dict[str, object]:
    return {p.plain_inputs()["name"]: p for p in run.of_type(PARAMETER)}


def test_parameters_under_stack_path(stack_run: StackRun):
    path = stack_run.outputs["parameterPath"].value
    assert path == f"/pixtools/{stack_run.stack}"
    for name in parameters(stack_run):
        assert name.startswith(path + "/"), name


def test_secrets_are_secure_strings(stack_run: StackRun):
    found = parameters(stack_run)
    path = stack_run.outputs["parameterPath"].value
    for short in SECRET_NAMES:
        parameter = found[f"{path}/{short}"]
        assert parameter.plain_inputs()["type"] == "SecureString", short
        assert is_secret(parameter.inputs["value"]), short


def test_settings_are_plain_strings(stack_run: StackRun):
    path = stack_run.outputs["parameterPath"].value
    for name, parameter in parameters(stack_run).items():
        if name.removeprefix(path + "/") not in SECRET_NAMES:
            # pulumi-aws marks every Parameter value secret in state; the type is
            # what decides whether SSM encrypts it.
            assert parameter.plain_inputs()["type"] == "String", name


def test_alb_group_parameter_matches_group(stack_run: StackRun):
    path = stack_run.outputs["parameterPath"].value
    parameter = parameters(stack_run)[f"{path}/alb-security-group-id"]
    alb = stack_run.named("aws:ec2/securityGroup:SecurityGroup", "-alb-sg")
    assert parameter.plain_inputs()["value"] == alb.id


def test_kubeconfig_value_owned_by_server(stack_run: StackRun):
    path = stack_run.outputs["parameterPath"].value
    parameter = parameters(stack_run)[f"{path}/kubeconfig"]
    assert parameter.plain_inputs()["value"] == KUBECONFIG_PLACEHOLDER
    assert "value" in parameter.ignore_changes


def test_bucket_parameters_match_buckets(stack_run: StackRun):
    path = stack_run.outputs["parameterPath"].value
    found = parameters(stack_run)
    for area, bucket in stack_run.outputs["buckets"].value.items():
        assert found[f"{path}/s3-bucket-{area}"].plain_inputs()["value"] == bucket


def test_database_url_parameter_matches_output(stack_run: StackRun):
    path = stack_run.outputs["parameterPath"].value
    value = parameters(stack_run)[f"{path}/database-url"].plain_inputs()["value"]
    assert value == stack_run.outputs["databaseUrl"].value
