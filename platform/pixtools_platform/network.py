"""VPC, subnets, routing and security groups for one PixTools environment."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from pixtools_platform.common import child_options, name_tags, type_token

# Subnets are cut 4 bits smaller than the VPC (a /16 VPC gets /20 subnets). Public
# subnets take blocks 0..7 and private subnets blocks 8..15, so the two sets never
# overlap and every subnet lies inside the VPC.
SUBNET_PREFIX_STEP = 4
PRIVATE_BLOCK_OFFSET = 8
MAX_AZ_COUNT = 8

NODE_PORT_RANGE = (30000, 32767)
POSTGRES_PORT = 5432
KUBE_API_PORT = 6443


@dataclass(frozen=True)
class SubnetPlan:
    """CIDR blocks of the public and private subnets, one of each per AZ."""

    public: list[str]
    private: list[str]


def plan_subnets(vpc_cidr: str, az_count: int) -> SubnetPlan:
    """Split ``vpc_cidr`` into one public and one private subnet per AZ.

    Raises ValueError when the VPC is too small or more AZs are requested than the
    layout has room for.
    """
    network = ipaddress.ip_network(vpc_cidr, strict=True)
    if not 1 <= az_count <= MAX_AZ_COUNT:
        raise ValueError(
            f"az_count must be between 1 and {MAX_AZ_COUNT}, got {az_count}"
        )
    if network.prefixlen > 24:
        raise ValueError(f"VPC CIDR {vpc_cidr} is smaller than a /24")

    blocks = list(network.subnets(prefixlen_diff=SUBNET_PREFIX_STEP))
    public = [str(blocks[index]) for index in range(az_count)]
    private = [str(blocks[PRIVATE_BLOCK_OFFSET + index]) for index in range(az_count)]
    return SubnetPlan(public=public, private=private)


@dataclass
class NetworkArgs:
    """Inputs of the Network component."""

    cidr_block: str
    az_count: int
    cluster_name: str
    # One NAT gateway per AZ survives the loss of an AZ; one shared NAT is cheaper.
    nat_gateway_per_az: bool
    # CIDRs allowed to reach the Kubernetes API on the K3s server (deployers).
    api_allowed_cidrs: Sequence[str] = field(default_factory=list)


class Network(pulumi.ComponentResource):
    """VPC with public and private subnets, NAT egress and the security groups."""

    vpc_id: pulumi.Output[str]
    vpc_cidr: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]
    node_security_group_id: pulumi.Output[str]
    server_security_group_id: pulumi.Output[str]
    alb_security_group_id: pulumi.Output[str]
    database_security_group_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: NetworkArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(type_token("network", "Network"), name, None, opts)

        zones = aws.get_availability_zones(
            state="available", opts=pulumi.InvokeOptions(parent=self)
        ).names
        if len(zones) < args.az_count:
            raise ValueError(
                f"region has {len(zones)} available AZs, az_count is {args.az_count}"
            )
        zones = sorted(zones)[: args.az_count]
        plan = plan_subnets(args.cidr_block, args.az_count)

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr_block,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=name_tags(f"{name}-vpc"),
            opts=child_options(self),
        )
        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block

        self._create_subnets(name, args, vpc, zones, plan)
        self._create_security_groups(name, args, vpc)

        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "public_subnet_ids": self.public_subnet_ids,
                "private_subnet_ids": self.private_subnet_ids,
                "node_security_group_id": self.node_security_group_id,
                "server_security_group_id": self.server_security_group_id,
                "alb_security_group_id": self.alb_security_group_id,
                "database_security_group_id": self.database_security_group_id,
            }
        )

    def _create_subnets(
        self,
        name: str,
        args: NetworkArgs,
        vpc: aws.ec2.Vpc,
        zones: list[str],
        plan: SubnetPlan,
    ) -> None:
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "owned"}

        igw = aws.ec2.InternetGateway(
            f"{name}-igw",
            vpc_id=vpc.id,
            tags=name_tags(f"{name}-igw"),
            opts=child_options(self),
        )
        public_routes = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags=name_tags(f"{name}-public-rt"),
            opts=child_options(self),
        )

        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        for index, zone in enumerate(zones):
            public = aws.ec2.Subnet(
                f"{name}-public-{index}",
                vpc_id=vpc.id,
                cidr_block=plan.public[index],
                availability_zone=zone,
                map_public_ip_on_launch=False,
                # The AWS Load Balancer Controller places internet-facing ALBs in
                # subnets tagged with the elb role.
                tags=name_tags(
                    f"{name}-public-{index}",
                    {"kubernetes.io/role/elb": "1", **cluster_tag},
                ),
                opts=child_options(self),
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}-rta",
                subnet_id=public.id,
                route_table_id=public_routes.id,
                opts=child_options(self),
            )
            public_subnets.append(public)

            private = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=vpc.id,
                cidr_block=plan.private[index],
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags=name_tags(
                    f"{name}-private-{index}",
                    {"kubernetes.io/role/internal-elb": "1", **cluster_tag},
                ),
                opts=child_options(self),
            )
            private_subnets.append(private)

        nat_count = len(zones) if args.nat_gateway_per_az else 1
        nat_ids: list[pulumi.Output[str]] = []
        for index in range(nat_count):
            eip = aws.ec2.Eip(
                f"{name}-nat-{index}-eip",
                domain="vpc",
                tags=name_tags(f"{name}-nat-{index}-eip"),
                opts=child_options(self),
            )
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{index}",
                allocation_id=eip.allocation_id,
                subnet_id=public_subnets[index].id,
                tags=name_tags(f"{name}-nat-{index}"),
                opts=child_options(self, depends_on=[igw]),
            )
            nat_ids.append(nat.id)

        for index, private in enumerate(private_subnets):
            routes = aws.ec2.RouteTable(
                f"{name}-private-{index}-rt",
                vpc_id=vpc.id,
                routes=[
                    {
                        "cidr_block": "0.0.0.0/0",
                        "nat_gateway_id": nat_ids[index % nat_count],
                    }
                ],
                tags=name_tags(f"{name}-private-{index}-rt"),
                opts=child_options(self),
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}-rta",
                subnet_id=private.id,
                route_table_id=routes.id,
                opts=child_options(self),
            )

        self.public_subnet_ids = [subnet.id for subnet in public_subnets]
        self.private_subnet_ids = [subnet.id for subnet in private_subnets]

    def _create_security_groups(
        self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc
    ) -> None:
        def group(suffix: str, description: str) -> aws.ec2.SecurityGroup:
            return aws.ec2.SecurityGroup(
                f"{name}-{suffix}-sg",
                vpc_id=vpc.id,
                description=description,
                tags=name_tags(f"{name}-{suffix}-sg"),
                opts=child_options(self),
            )

        nodes = group("nodes", "K3s server and agent nodes")
        server = group("server", "Kubernetes API access to the K3s server")
        alb = group("alb", "Public application load balancer")
        database = group("db", "PostgreSQL reachable from the cluster nodes")

        # Nodes talk to each other on every protocol and port (flannel VXLAN,
        # kubelet, NodePorts, pod traffic). A self-referencing rule admits any
        # instance that carries the node group, whatever address it uses.
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-nodes-from-nodes",
            security_group_id=nodes.id,
            referenced_security_group_id=nodes.id,
            ip_protocol="-1",
            description="All traffic between cluster nodes",
            opts=child_options(self),
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-nodes-from-alb",
            security_group_id=nodes.id,
            referenced_security_group_id=alb.id,
            ip_protocol="tcp",
            from_port=NODE_PORT_RANGE[0],
            to_port=NODE_PORT_RANGE[1],
            description="ALB to Service NodePorts (instance target type)",
            opts=child_options(self),
        )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-nodes-egress",
            security_group_id=nodes.id,
            cidr_ipv4="0.0.0.0/0",
            ip_protocol="-1",
            description="Image pulls, AWS APIs and webhooks through NAT",
            opts=child_options(self),
        )

        for index, cidr in enumerate(args.api_allowed_cidrs):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-server-api-{index}",
                security_group_id=server.id,
                cidr_ipv4=cidr,
                ip_protocol="tcp",
                from_port=KUBE_API_PORT,
                to_port=KUBE_API_PORT,
                description="Kubernetes API for deployers",
                opts=child_options(self),
            )

        for port in (80, 443):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-alb-{port}",
                security_group_id=alb.id,
                cidr_ipv4="0.0.0.0/0",
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=f"Public HTTP traffic on port {port}",
                opts=child_options(self),
            )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-alb-to-nodes",
            security_group_id=alb.id,
            referenced_security_group_id=nodes.id,
            ip_protocol="tcp",
            from_port=NODE_PORT_RANGE[0],
            to_port=NODE_PORT_RANGE[1],
            description="ALB forwards to Service NodePorts",
            opts=child_options(self),
        )

        aws.vpc.SecurityGroupIngressRule(
            f"{name}-db-from-nodes",
            security_group_id=database.id,
            referenced_security_group_id=nodes.id,
            ip_protocol="tcp",
            from_port=POSTGRES_PORT,
            to_port=POSTGRES_PORT,
            description="PostgreSQL from cluster nodes only",
            opts=child_options(self),
        )

        self.node_security_group_id = nodes.id
        self.server_security_group_id = server.id
        self.alb_security_group_id = alb.id
        self.database_security_group_id = database.id
