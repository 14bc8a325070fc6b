"""Identity: least-privilege node roles and the scoped GitHub deploy role."""

from __future__ import annotations

import json

import pytest

from pixtools_platform import policies
from pixtools_platform.testing.harness import Registered, StackRun
from pixtools_platform.testing.mocks import ACCOUNT_ID

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


def statements_of(run: StackRun, role: Registered) -> list[dict]:
    found = []
    for policy in run.of_type(ROLE_POLICY):
        if policy.plain_inputs()["role"] == role.id:
            found.extend(json.loads(policy.plain_inputs()["policy"])["Statement"])
    return found


def as_list(value) -> list[str]:
    return value if isinstance(value, list) else [value]


def actions_on(statements: list[dict], prefix: str) -> list[dict]:
    return [
        s for s in statements if any(a.startswith(prefix) for a in as_list(s["Action"]))
    ]


@pytest.mark.parametrize("role_name", ["server", "agent"])
def test_node_s3_limited_to_app_buckets(stack_run: StackRun, role_name: str):
    role = stack_run.named(ROLE, f"-{role_name}-role")
    bucket_arns = {b.outputs["arn"] for b in stack_run.of_type("aws:s3/bucket:Bucket")}
    allowed = bucket_arns | {f"{arn}/*" for arn in bucket_arns}
    s3 = actions_on(statements_of(stack_run, role), "s3:")
    assert s3
    resources = {r for s in s3 for r in as_list(s["Resource"])}
    assert resources <= allowed
    assert {f"{arn}/*" for arn in bucket_arns} <= resources
    for statement in s3:
        assert "s3:*" not in as_list(statement["Action"])


@pytest.mark.parametrize("role_name", ["server", "agent"])
def test_node_reads_only_stack_parameters(stack_run: StackRun, role_name: str):
    role = stack_run.named(ROLE, f"-{role_name}-role")
    path = stack_run.outputs["parameterPath"].value
    expected = (
        f"arn:aws:ssm:{stack_run.config['aws:region']}:{ACCOUNT_ID}:parameter{path}/*"
    )
    for statement in actions_on(statements_of(stack_run, role), "ssm:Get"):
        assert as_list(statement["Resource"]) == [expected]


def test_only_server_publishes_kubeconfig(stack_run: StackRun):
    path = stack_run.outputs["parameterPath"].value
    for role_name in ("server", "agent"):
        role = stack_run.named(ROLE, f"-{role_name}-role")
        puts = [
            s
            for s in statements_of(stack_run, role)
            if "ssm:PutParameter" in as_list(s["Action"])
        ]
        if role_name == "agent":
            assert puts == []
        else:
            assert len(puts) == 1
            assert as_list(puts[0]["Resource"]) == [
                f"arn:aws:ssm:{stack_run.config['aws:region']}:{ACCOUNT_ID}"
                f":parameter{path}/kubeconfig"
            ]


def test_agent_has_no_load_balancer_rights(stack_run: StackRun):
    role = stack_run.named(ROLE, "-agent-role")
    assert actions_on(statements_of(stack_run, role), "elasticloadbalancing:") == []


def test_instance_roles_trust_ec2_only(stack_run: StackRun):
    for role_name in ("server", "agent"):
        trust = json.loads(
            stack_run.named(ROLE, f"-{role_name}-role").plain_inputs()[
                "assumeRolePolicy"
            ]
        )
        assert [s["Principal"] for s in trust["Statement"]] == [
            {"Service": "ec2.amazonaws.com"}
        ]


def test_instance_profiles_wrap_own_roles(stack_run: StackRun):
    for role_name in ("server", "agent"):
        role = stack_run.named(ROLE, f"-{role_name}-role")
        profile = stack_run.named(
            "aws:iam/instanceProfile:InstanceProfile", f"-{role_name}-profile"
        )
        assert profile.plain_inputs()["role"] == role.outputs["name"]


def test_deploy_trust_scoped_to_repository(stack_run: StackRun):
    role = stack_run.named(ROLE, "-deploy-role")
    trust = json.loads(role.plain_inputs()["assumeRolePolicy"])
    assert len(trust["Statement"]) == 1
    statement = trust["Statement"][0]
    provider = stack_run.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert statement["Principal"] == {"Federated": provider[0].outputs["arn"]}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert set(statement["Condition"]) == {"StringEquals"}
    condition = statement["Condition"]["StringEquals"]
    repository = stack_run.config_value("githubRepository")
    expected = {
        "dev": f"repo:{repository}:ref:refs/heads/main",
        "prod": f"repo:{repository}:environment:prod",
    }[stack_run.stack]
    assert condition["token.actions.githubusercontent.com:sub"] == expected
    assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert "*" not in json.dumps(condition)


def test_oidc_provider_audience(stack_run: StackRun):
    providers = stack_run.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert len(providers) == 1
    inputs = providers[0].plain_inputs()
    assert inputs["url"] == "https://token.actions.githubusercontent.com"
    assert inputs["clientIdLists"] == ["sts.amazonaws.com"]


def test_existing_oidc_provider_reused():
    from pixtools_platform.testing.harness import run_stack

    arn = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/token.actions.githubusercontent.com"
    run = run_stack("prod", overrides={"githubOidcProviderArn": arn})
    assert run.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider") == []
    trust = json.loads(
        run.named(ROLE, "-deploy-role").plain_inputs()["assumeRolePolicy"]
    )
    assert trust["Statement"][0]["Principal"] == {"Federated": arn}


def test_deploy_role_exported(stack_run: StackRun):
    role = stack_run.named(ROLE, "-deploy-role")
    assert stack_run.outputs["deployRoleArn"].value == role.outputs["arn"]


def test_deploy_iam_limited_to_stack_path(stack_run: StackRun):
    role = stack_run.named(ROLE, "-deploy-role")
    iam = actions_on(statements_of(stack_run, role), "iam:")
    path = f"/pixtools/{stack_run.stack}/"
    for statement in iam:
        for resource in as_list(statement["Resource"]):
            if statement.get("Condition"):
                continue
            assert path in resource or resource.endswith(
                "oidc-provider/token.actions.githubusercontent.com"
            ), resource


def test_deploy_pushes_only_own_repositories(stack_run: StackRun):
    role = stack_run.named(ROLE, "-deploy-role")
    repositories = {
        r.outputs["arn"] for r in stack_run.of_type("aws:ecr/repository:Repository")
    }
    push = [
        s
        for s in statements_of(stack_run, role)
        if "ecr:PutImage" in as_list(s["Action"])
    ]
    assert len(push) == 1
    assert set(as_list(push[0]["Resource"])) == repositories


def test_trust_policy_function_has_no_wildcards():
    trust = policies.github_trust_policy("arn:x", "owner/repo", "environment:prod")
    condition = trust["Statement"][0]["Condition"]
    assert "StringLike" not in condition
    assert condition["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        "repo:owner/repo:environment:prod"
    )
