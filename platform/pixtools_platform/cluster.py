"""K3s cluster: an on-demand server and a spot Auto Scaling group of agents."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_command as command

from pixtools_platform.common import child_options, name_tags, type_token
from pixtools_platform.configuration import KUBECONFIG_PLACEHOLDER
from pixtools_platform.userdata import (
    NodeBootSettings,
    agent_user_data,
    server_user_data,
)

AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
# Hop limit 2 lets pods (one network hop behind the node) reach the metadata
# service and use the node role; IMDSv1 stays off either way.
METADATA_HOP_LIMIT = 2
KUBECONFIG_WAIT_SECONDS = 900

_WAIT_FOR_KUBECONFIG = """\
set -euo pipefail
deadline=$((SECONDS + TIMEOUT_SECONDS))
while :; do
  value=$(aws ssm get-parameter --region "$REGION" --name "$PARAMETER" \\
    --with-decryption --query Parameter.Value --output text)
  if [ "$value" != "$PLACEHOLDER" ]; then
    printf '%s' "$value"
    exit 0
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "timed out after ${TIMEOUT_SECONDS}s waiting for $PARAMETER" >&2
    exit 1
  fi
  sleep 15
done
"""


@dataclass
class ClusterArgs:
    """Inputs of the Cluster component."""

    cluster_name: str
    region: str
    k3s_version: str
    ecr_provider_version: str
    server_subnet_id: pulumi.Input[str]
    agent_subnet_ids: Sequence[pulumi.Input[str]]
    node_security_group_id: pulumi.Input[str]
    server_security_group_id: pulumi.Input[str]
    server_instance_profile: pulumi.Input[str]
    agent_instance_profile: pulumi.Input[str]
    token_parameter_name: str
    kubeconfig_parameter_name: str
    server_instance_type: str
    agent_instance_types: Sequence[str]
    agent_min_size: int
    agent_max_size: int
    agent_desired_size: int
    root_volume_gb: int
    # Empty means the latest Amazon Linux 2023 AMI from the public SSM parameter.
    ami_id: str | None = None
    protect_server: bool = False


def metadata_options() -> dict[str, Any]:
    """Return instance metadata settings: IMDSv2 only, with a small hop limit."""
    return {
        "http_endpoint": "enabled",
        "http_tokens": "required",
        "http_put_response_hop_limit": METADATA_HOP_LIMIT,
        "instance_metadata_tags": "disabled",
    }


class Cluster(pulumi.ComponentResource):
    """K3s server with an Elastic IP and spot agents that join it at boot."""

    server_public_ip: pulumi.Output[str]
    server_private_ip: pulumi.Output[str]
    server_instance_id: pulumi.Output[str]
    agent_group_name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ClusterArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if not args.agent_min_size <= args.agent_desired_size <= args.agent_max_size:
            raise ValueError(
                "agent sizes must satisfy min <= desired <= max, got "
                f"{args.agent_min_size}, {args.agent_desired_size}, "
                f"{args.agent_max_size}"
            )
        super().__init__(type_token("cluster", "Cluster"), name, None, opts)

        ami_id = args.ami_id or self._latest_ami()
        boot = NodeBootSettings(
            region=args.region,
            k3s_version=args.k3s_version,
            token_parameter=args.token_parameter_name,
            ecr_provider_version=args.ecr_provider_version,
        )

        # The server's interface and Elastic IP exist before the instance, so the
        # boot script has internet access and both addresses from the start.
        interface = aws.ec2.NetworkInterface(
            f"{name}-server-eni",
            subnet_id=args.server_subnet_id,
            security_groups=[
                args.node_security_group_id,
                args.server_security_group_id,
            ],
            tags=name_tags(f"{name}-server-eni"),
            opts=child_options(self, protect=args.protect_server),
        )
        server_ip = aws.ec2.Eip(
            f"{name}-server-eip",
            domain="vpc",
            tags=name_tags(f"{name}-server-eip"),
            opts=child_options(self, protect=args.protect_server),
        )
        association = aws.ec2.EipAssociation(
            f"{name}-server-eip-association",
            allocation_id=server_ip.allocation_id,
            network_interface_id=interface.id,
            opts=child_options(self),
        )
        server = aws.ec2.Instance(
            f"{name}-server",
            ami=ami_id,
            instance_type=args.server_instance_type,
            primary_network_interface={"network_interface_id": interface.id},
            iam_instance_profile=args.server_instance_profile,
            metadata_options=metadata_options(),
            root_block_device={
                "encrypted": True,
                "volume_type": "gp3",
                "volume_size": args.root_volume_gb,
                "delete_on_termination": True,
            },
            user_data=server_ip.public_ip.apply(
                lambda address: server_user_data(
                    boot, address, args.kubeconfig_parameter_name
                )
            ),
            tags=name_tags(f"{name}-server", {"pixtools.io/role": "k3s-server"}),
            # A new AMI must not replace the server (and the broker data on it).
            opts=child_options(
                self,
                protect=args.protect_server,
                ignore_changes=["ami"],
                depends_on=[association],
            ),
        )

        self._create_agents(name, args, ami_id, boot, interface.private_ip)

        wait = command.local.Command(
            f"{name}-kubeconfig",
            create=_WAIT_FOR_KUBECONFIG,
            interpreter=["/bin/bash", "-c"],
            environment={
                "REGION": args.region,
                "PARAMETER": args.kubeconfig_parameter_name,
                "PLACEHOLDER": KUBECONFIG_PLACEHOLDER,
                "TIMEOUT_SECONDS": str(KUBECONFIG_WAIT_SECONDS),
            },
            triggers=[server.id],
            logging=command.local.Logging.NONE,
            opts=child_options(self, additional_secret_outputs=["stdout"]),
        )

        self.server_public_ip = server_ip.public_ip
        self.server_private_ip = interface.private_ip
        self.server_instance_id = server.id
        self.kubeconfig = pulumi.Output.secret(wait.stdout)

        self.register_outputs(
            {
                "server_public_ip": self.server_public_ip,
                "server_private_ip": self.server_private_ip,
                "server_instance_id": self.server_instance_id,
                "agent_group_name": self.agent_group_name,
                "kubeconfig": self.kubeconfig,
            }
        )

    def _latest_ami(self) -> str:
        result = aws.ssm.get_parameter(
            name=AMI_PARAMETER, opts=pulumi.InvokeOptions(parent=self)
        )
        return result.insecure_value

    def _create_agents(
        self,
        name: str,
        args: ClusterArgs,
        ami_id: str,
        boot: NodeBootSettings,
        interface_private_ip: pulumi.Output[str],
    ) -> None:
        user_data = interface_private_ip.apply(
            lambda address: base64.b64encode(
                agent_user_data(boot, address).encode()
            ).decode()
        )
        template = aws.ec2.LaunchTemplate(
            f"{name}-agent",
            image_id=ami_id,
            iam_instance_profile={"name": args.agent_instance_profile},
            vpc_security_group_ids=[args.node_security_group_id],
            metadata_options=metadata_options(),
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "encrypted": "true",
                        "volume_type": "gp3",
                        "volume_size": args.root_volume_gb,
                        "delete_on_termination": "true",
                    },
                }
            ],
            user_data=user_data,
            update_default_version=True,
            tag_specifications=[
                {
                    "resource_type": "instance",
                    "tags": name_tags(
                        f"{name}-agent", {"pixtools.io/role": "k3s-agent"}
                    ),
                },
                {"resource_type": "volume", "tags": name_tags(f"{name}-agent")},
            ],
            tags=name_tags(f"{name}-agent"),
            opts=child_options(self),
        )

        group = aws.autoscaling.Group(
            f"{name}-agents",
            min_size=args.agent_min_size,
            max_size=args.agent_max_size,
            desired_capacity=args.agent_desired_size,
            vpc_zone_identifiers=list(args.agent_subnet_ids),
            capacity_rebalance=True,
            health_check_type="EC2",
            health_check_grace_period=300,
            mixed_instances_policy={
                "instances_distribution": {
                    "on_demand_base_capacity": 0,
                    "on_demand_percentage_above_base_capacity": 0,
                    "spot_allocation_strategy": "capacity-optimized",
                },
                "launch_template": {
                    "launch_template_specification": {
                        "launch_template_id": template.id,
                        "version": template.latest_version.apply(str),
                    },
                    "overrides": [
                        {"instance_type": instance_type}
                        for instance_type in args.agent_instance_types
                    ],
                },
            },
            instance_refresh={
                "strategy": "Rolling",
                "preferences": {"min_healthy_percentage": 50},
            },
            tags=[
                {
                    "key": "Name",
                    "value": f"{name}-agent",
                    "propagate_at_launch": True,
                },
                {
                    "key": f"kubernetes.io/cluster/{args.cluster_name}",
                    "value": "owned",
                    "propagate_at_launch": True,
                },
            ],
            opts=child_options(self),
        )
        self.agent_group_name = group.name
