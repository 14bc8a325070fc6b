"""IAM policy documents as plain dicts, built from resolved ARNs.

Kept apart from the Identity component so that each document can be checked on its
own. Every function returns a policy dict; callers serialise it with json.dumps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Policy = dict[str, Any]

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
STS_AUDIENCE = "sts.amazonaws.com"
LBC_CLUSTER_TAG = "elbv2.k8s.aws/cluster"

S3_OBJECT_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
SSM_READ_ACTIONS = ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]
ECR_PULL_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
]
ECR_PUSH_ACTIONS = [
    *ECR_PULL_ACTIONS,
    "ecr:CompleteLayerUpload",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
    "ecr:DescribeImages",
]


def document(*statements: dict[str, Any]) -> Policy:
    """Wrap statements in a policy document."""
    return {"Version": "2012-10-17", "Statement": list(statements)}


def ec2_trust_policy() -> Policy:
    """Return the trust policy that lets EC2 instances assume a role."""
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    )


def parameter_path_arn(region: str, account_id: str, path: str) -> str:
    """Return the ARN pattern that covers every SSM parameter under ``path``."""
    return f"arn:aws:ssm:{region}:{account_id}:parameter{path.rstrip('/')}/*"


def parameter_arn(region: str, account_id: str, name: str) -> str:
    """Return the ARN of the SSM parameter ``name`` (which starts with a slash)."""
    return f"arn:aws:ssm:{region}:{account_id}:parameter{name}"


def node_policy(
    bucket_arns: Sequence[str],
    repository_arns: Sequence[str],
    parameters_arn: str,
    region: str,
) -> Policy:
    """Return the permissions every cluster node needs.

    Pods reach these through the instance metadata service, so the policy is limited
    to the three application buckets, the stack's parameter path and image pulls.
    """
    return document(
        {
            "Sid": "ListApplicationBuckets",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": list(bucket_arns),
        },
        {
            "Sid": "ReadWriteApplicationObjects",
            "Effect": "Allow",
            "Action": S3_OBJECT_ACTIONS,
            "Resource": [f"{arn}/*" for arn in bucket_arns],
        },
        {
            "Sid": "ReadStackParameters",
            "Effect": "Allow",
            "Action": SSM_READ_ACTIONS,
            "Resource": [parameters_arn],
        },
        {
            "Sid": "DecryptSecureStrings",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": ["*"],
            "Condition": {
                "StringEquals": {"kms:ViaService": f"ssm.{region}.amazonaws.com"}
            },
        },
        {
            "Sid": "EcrAuthorization",
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken"],
            "Resource": ["*"],
        },
        {
            "Sid": "PullServiceImages",
            "Effect": "Allow",
            "Action": ECR_PULL_ACTIONS,
            "Resource": list(repository_arns),
        },
        {
            # Session Manager shell access replaces SSH; these actions read no
            # parameters.
            "Sid": "SessionManager",
            "Effect": "Allow",
            "Action": [
                "ssm:UpdateInstanceInformation",
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
            ],
            "Resource": ["*"],
        },
    )


def kubeconfig_publish_policy(kubeconfig_parameter_arn: str) -> Policy:
    """Return the permission the K3s server needs to publish its kubeconfig."""
    return document(
        {
            "Sid": "PublishKubeconfig",
            "Effect": "Allow",
            "Action": ["ssm:PutParameter"],
            "Resource": [kubeconfig_parameter_arn],
        }
    )


def load_balancer_controller_policy(cluster_name: str) -> Policy:
    """Return the permissions of the AWS Load Balancer Controller on the server.

    The controller only creates, changes and deletes ELB resources tagged with this
    cluster's name. Security groups are managed by Pulumi (the Ingress names the ALB
    group), so the controller gets no EC2 write access.
    """
    request_tag = {"StringEquals": {f"aws:RequestTag/{LBC_CLUSTER_TAG}": cluster_name}}
    resource_tag = {
        "StringEquals": {f"aws:ResourceTag/{LBC_CLUSTER_TAG}": cluster_name}
    }
    return document(
        {
            "Sid": "Describe",
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeAccountAttributes",
                "ec2:DescribeAddresses",
                "ec2:DescribeAvailabilityZones",
                "ec2:DescribeInstances",
                "ec2:DescribeInternetGateways",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeRouteTables",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSubnets",
                "ec2:DescribeTags",
                "ec2:DescribeVpcs",
                "ec2:GetSecurityGroupsForVpc",
                "elasticloadbalancing:Describe*",
                "acm:DescribeCertificate",
                "acm:ListCertificates",
            ],
            "Resource": ["*"],
        },
        {
            "Sid": "CreateTaggedLoadBalancers",
            "Effect": "Allow",
            "Action": [
                "elasticloadbalancing:CreateLoadBalancer",
                "elasticloadbalancing:CreateTargetGroup",
            ],
            "Resource": ["*"],
            "Condition": request_tag,
        },
        {
            "Sid": "TagOnCreate",
            "Effect": "Allow",
            "Action": ["elasticloadbalancing:AddTags"],
            "Resource": ["*"],
            "Condition": {
                "StringEquals": {
                    f"aws:RequestTag/{LBC_CLUSTER_TAG}": cluster_name,
                    "elasticloadbalancing:CreateAction": [
                        "CreateLoadBalancer",
                        "CreateTargetGroup",
                    ],
                }
            },
        },
        {
            "Sid": "ManageOwnLoadBalancers",
            "Effect": "Allow",
            "Action": [
                "elasticloadbalancing:AddTags",
                "elasticloadbalancing:DeleteLoadBalancer",
                "elasticloadbalancing:DeleteTargetGroup",
                "elasticloadbalancing:DeregisterTargets",
                "elasticloadbalancing:ModifyLoadBalancerAttributes",
                "elasticloadbalancing:ModifyTargetGroup",
                "elasticloadbalancing:ModifyTargetGroupAttributes",
                "elasticloadbalancing:RegisterTargets",
                "elasticloadbalancing:RemoveTags",
                "elasticloadbalancing:SetIpAddressType",
                "elasticloadbalancing:SetSecurityGroups",
                "elasticloadbalancing:SetSubnets",
            ],
            "Resource": ["*"],
            "Condition": resource_tag,
        },
        {
            # Listener and rule actions do not support tag conditions on create.
            "Sid": "ManageListeners",
            "Effect": "Allow",
            "Action": [
                "elasticloadbalancing:AddListenerCertificates",
                "elasticloadbalancing:CreateListener",
                "elasticloadbalancing:CreateRule",
                "elasticloadbalancing:DeleteListener",
                "elasticloadbalancing:DeleteRule",
                "elasticloadbalancing:ModifyListener",
                "elasticloadbalancing:ModifyRule",
                "elasticloadbalancing:RemoveListenerCertificates",
            ],
            "Resource": ["*"],
        },
    )


def github_trust_policy(
    provider_arn: str, repository: str, subject_suffix: str
) -> Policy:
    """Return the trust policy of the deploy role for one repository and scope.

    ``subject_suffix`` is ``ref:refs/heads/main`` for a branch or
    ``environment:prod`` for a GitHub environment; the ``sub`` claim must equal
    ``repo:<owner>/<name>:<suffix>`` exactly, so no wildcard is used.
    """
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                    f"{GITHUB_OIDC_HOST}:sub": f"repo:{repository}:{subject_suffix}",
                }
            },
        }
    )


def deploy_policy(
    *,
    account_id: str,
    region: str,
    iam_path: str,
    repository_arns: Sequence[str],
    bucket_prefix: str,
    parameters_arn: str,
    state_bucket: str | None,
    secrets_key_arn: str | None,
) -> Policy:
    """Return what CD needs: push images and run ``pulumi up`` on one stack.

    IAM changes are limited to roles, instance profiles and policies under the
    stack's IAM path; S3 to the stack's bucket prefix and the state bucket.
    """
    region_only = {"StringEquals": {"aws:RequestedRegion": region}}
    iam_prefix = f"arn:aws:iam::{account_id}:"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "EcrAuthorization",
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken"],
            "Resource": ["*"],
        },
        {
            "Sid": "PushServiceImages",
            "Effect": "Allow",
            "Action": ECR_PUSH_ACTIONS,
            "Resource": list(repository_arns),
        },
        {
            "Sid": "ManageStackInfrastructure",
            "Effect": "Allow",
            "Action": [
                "autoscaling:*",
                "ec2:*",
                "ecr:*",
                "elasticloadbalancing:Describe*",
                "rds:*",
            ],
            "Resource": ["*"],
            "Condition": region_only,
        },
        {
            "Sid": "ManageStackParameters",
            "Effect": "Allow",
            "Action": ["ssm:*"],
            "Resource": [parameters_arn],
        },
        {
            "Sid": "ReadPublicAmiParameters",
            "Effect": "Allow",
            "Action": ["ssm:GetParameter", "ssm:GetParameters"],
            "Resource": [f"arn:aws:ssm:{region}::parameter/aws/service/*"],
        },
        {
            "Sid": "DescribeParameters",
            "Effect": "Allow",
            "Action": ["ssm:DescribeParameters", "sts:GetCallerIdentity"],
            "Resource": ["*"],
        },
        {
            "Sid": "ManageStackBuckets",
            "Effect": "Allow",
            "Action": ["s3:*"],
            "Resource": [
                f"arn:aws:s3:::{bucket_prefix}*",
                f"arn:aws:s3:::{bucket_prefix}*/*",
            ],
        },
        {
            "Sid": "ManageStackIam",
            "Effect": "Allow",
            "Action": ["iam:*"],
            "Resource": [
                f"{iam_prefix}role{iam_path}*",
                f"{iam_prefix}instance-profile{iam_path}*",
                f"{iam_prefix}policy{iam_path}*",
                f"{iam_prefix}oidc-provider/{GITHUB_OIDC_HOST}",
            ],
        },
        {
            "Sid": "ServiceLinkedRoles",
            "Effect": "Allow",
            "Action": ["iam:CreateServiceLinkedRole"],
            "Resource": ["*"],
            "Condition": {
                "StringEquals": {
                    "iam:AWSServiceName": [
                        "autoscaling.amazonaws.com",
                        "rds.amazonaws.com",
                        "spot.amazonaws.com",
                    ]
                }
            },
        },
    ]
    if state_bucket:
        statements.append(
            {
                "Sid": "PulumiState",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:ListBucket",
                ],
                "Resource": [
                    f"arn:aws:s3:::{state_bucket}",
                    f"arn:aws:s3:::{state_bucket}/*",
                ],
            }
        )
    if secrets_key_arn:
        statements.append(
            {
                "Sid": "PulumiSecretsKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                "Resource": [secrets_key_arn],
            }
        )
    return document(*statements)
