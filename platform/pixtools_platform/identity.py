"""IAM: node instance roles, the GitHub OIDC provider and the CD deploy role."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from pixtools_platform import policies
from pixtools_platform.common import child_options, name_tags, type_token

DEPLOY_SUBJECTS = {
    # cd-dev.yml runs on pushes to main without a GitHub environment.
    "dev": "ref:refs/heads/main",
    # cd-prod.yml runs its deploy job in the protected "prod" environment.
    "prod": "environment:prod",
}


@dataclass
class IdentityArgs:
    """Inputs of the Identity component."""

    environment: str
    account_id: str
    region: str
    cluster_name: str
    iam_path: str
    parameter_path: str
    kubeconfig_parameter_name: str
    bucket_arns: Sequence[pulumi.Input[str]]
    bucket_prefix: str
    repository_arns: Sequence[pulumi.Input[str]]
    github_repository: str
    # One GitHub OIDC provider exists per account; a second stack reuses it.
    github_oidc_provider_arn: str | None = None
    state_bucket: str | None = None
    secrets_key_arn: str | None = None


class Identity(pulumi.ComponentResource):
    """Instance profiles of the K3s server and agents, and the deploy role."""

    server_instance_profile_name: pulumi.Output[str]
    agent_instance_profile_name: pulumi.Output[str]
    server_role_arn: pulumi.Output[str]
    agent_role_arn: pulumi.Output[str]
    github_oidc_provider_arn: pulumi.Output[str]
    deploy_role_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: IdentityArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(type_token("identity", "Identity"), name, None, opts)

        if args.environment not in DEPLOY_SUBJECTS:
            raise ValueError(f"no deploy subject for environment {args.environment!r}")

        parameters_arn = policies.parameter_path_arn(
            args.region, args.account_id, args.parameter_path
        )
        node_policy = pulumi.Output.all(
            list(args.bucket_arns), list(args.repository_arns)
        ).apply(
            lambda arns: json.dumps(
                policies.node_policy(arns[0], arns[1], parameters_arn, args.region)
            )
        )

        server_role = self._instance_role(f"{name}-server", args.iam_path)
        agent_role = self._instance_role(f"{name}-agent", args.iam_path)
        for role_name, role in (("server", server_role), ("agent", agent_role)):
            aws.iam.RolePolicy(
                f"{name}-{role_name}-node",
                role=role.id,
                policy=node_policy,
                opts=child_options(self),
            )

        kubeconfig_arn = policies.parameter_arn(
            args.region, args.account_id, args.kubeconfig_parameter_name
        )
        aws.iam.RolePolicy(
            f"{name}-server-kubeconfig",
            role=server_role.id,
            policy=json.dumps(policies.kubeconfig_publish_policy(kubeconfig_arn)),
            opts=child_options(self),
        )
        aws.iam.RolePolicy(
            f"{name}-server-load-balancer-controller",
            role=server_role.id,
            policy=json.dumps(
                policies.load_balancer_controller_policy(args.cluster_name)
            ),
            opts=child_options(self),
        )

        server_profile = aws.iam.InstanceProfile(
            f"{name}-server-profile",
            role=server_role.name,
            path=args.iam_path,
            opts=child_options(self),
        )
        agent_profile = aws.iam.InstanceProfile(
            f"{name}-agent-profile",
            role=agent_role.name,
            path=args.iam_path,
            opts=child_options(self),
        )

        provider_arn = self._github_provider(name, args)
        deploy_role = self._deploy_role(name, args, provider_arn, parameters_arn)

        self.server_instance_profile_name = server_profile.name
        self.agent_instance_profile_name = agent_profile.name
        self.server_role_arn = server_role.arn
        self.agent_role_arn = agent_role.arn
        self.github_oidc_provider_arn = provider_arn
        self.deploy_role_arn = deploy_role.arn

        self.register_outputs(
            {
                "server_instance_profile_name": self.server_instance_profile_name,
                "agent_instance_profile_name": self.agent_instance_profile_name,
                "server_role_arn": self.server_role_arn,
                "agent_role_arn": self.agent_role_arn,
                "github_oidc_provider_arn": self.github_oidc_provider_arn,
                "deploy_role_arn": self.deploy_role_arn,
            }
        )

    def _instance_role(self, role_name: str, iam_path: str) -> aws.iam.Role:
        return aws.iam.Role(
            f"{role_name}-role",
            path=iam_path,
            assume_role_policy=json.dumps(policies.ec2_trust_policy()),
            tags=name_tags(f"{role_name}-role"),
            opts=child_options(self),
        )

    def _github_provider(self, name: str, args: IdentityArgs) -> pulumi.Output[str]:
        if args.github_oidc_provider_arn:
            return pulumi.Output.from_input(args.github_oidc_provider_arn)

        provider = aws.iam.OpenIdConnectProvider(
            f"{name}-github-oidc",
            url=policies.GITHUB_OIDC_URL,
            client_id_lists=[policies.STS_AUDIENCE],
            tags=name_tags(f"{name}-github-oidc"),
            opts=child_options(self),
        )
        return provider.arn

    def _deploy_role(
        self,
        name: str,
        args: IdentityArgs,
        provider_arn: pulumi.Output[str],
        parameters_arn: str,
    ) -> aws.iam.Role:
        subject = DEPLOY_SUBJECTS[args.environment]
        role = aws.iam.Role(
            f"{name}-deploy-role",
            path=args.iam_path,
            description=(
                f"GitHub Actions deploys of {args.github_repository} ({subject})"
            ),
            assume_role_policy=provider_arn.apply(
                lambda arn: json.dumps(
                    policies.github_trust_policy(arn, args.github_repository, subject)
                )
            ),
            max_session_duration=3600,
            tags=name_tags(f"{name}-deploy-role"),
            opts=child_options(self),
        )
        deploy_policy = pulumi.Output.all(*args.repository_arns).apply(
            lambda repository_arns: json.dumps(
                policies.deploy_policy(
                    account_id=args.account_id,
                    region=args.region,
                    iam_path=args.iam_path,
                    repository_arns=repository_arns,
                    bucket_prefix=args.bucket_prefix,
                    parameters_arn=parameters_arn,
                    state_bucket=args.state_bucket,
                    secrets_key_arn=args.secrets_key_arn,
                )
            )
        )
        aws.iam.RolePolicy(
            f"{name}-deploy",
            role=role.id,
            policy=deploy_policy,
            opts=child_options(self),
        )
        return role
