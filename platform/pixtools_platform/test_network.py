"""Network: subnet layout, routing and security group rules."""

from __future__ import annotations

import ipaddress
import json

import pytest

from pixtools_platform.network import NODE_PORT_RANGE, plan_subnets
from pixtools_platform.testing.harness import Registered, StackRun

SUBNET = "aws:ec2/subnet:Subnet"
GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"


def group_id(run: StackRun, suffix: str) -> str:
    return run.named(GROUP, f"-{suffix}-sg").id


def ingress_rules(run: StackRun, security_group_id: str) -> list[dict]:
    return [
        rule.plain_inputs()
        for rule in run.of_type(INGRESS)
        if rule.plain_inputs()["securityGroupId"] == security_group_id
    ]


def test_plan_subnets_disjoint_and_inside():
    plan = plan_subnets("10.40.0.0/16", 3)
    vpc = ipaddress.ip_network("10.40.0.0/16")
    blocks = [ipaddress.ip_network(c) for c in plan.public + plan.private]
    assert len(blocks) == 6
    for block in blocks:
        assert block.subnet_of(vpc)
    for index, block in enumerate(blocks):
        for other in blocks[index + 1 :]:
            assert not block.overlaps(other)


@pytest.mark.parametrize(
    ("cidr", "count"), [("10.0.0.0/16", 0), ("10.0.0.0/16", 9), ("10.0.0.0/25", 2)]
)
def test_plan_subnets_rejects_bad_layout(cidr, count):
    with pytest.raises(ValueError):
        plan_subnets(cidr, count)


def test_subnets_disjoint_inside_vpc(stack_run: StackRun):
    vpc = stack_run.of_type("aws:ec2/vpc:Vpc")
    assert len(vpc) == 1
    vpc_block = ipaddress.ip_network(vpc[0].plain_inputs()["cidrBlock"])
    subnets = stack_run.of_type(SUBNET)
    blocks = [ipaddress.ip_network(s.plain_inputs()["cidrBlock"]) for s in subnets]
    for block in blocks:
        assert block.subnet_of(vpc_block), block
    for index, block in enumerate(blocks):
        for other in blocks[index + 1 :]:
            assert not block.overlaps(other), (block, other)
    for subnet in subnets:
        assert subnet.plain_inputs()["vpcId"] == vpc[0].id


def test_subnet_per_zone_and_tier(stack_run: StackRun):
    az_count = int(stack_run.config_value("azCount"))
    subnets = stack_run.of_type(SUBNET)
    public = [s for s in subnets if "-public-" in s.name]
    private = [s for s in subnets if "-private-" in s.name]
    assert len(public) == az_count
    assert len(private) == az_count
    assert len({s.plain_inputs()["availabilityZone"] for s in public}) == az_count
    assert len({s.plain_inputs()["availabilityZone"] for s in private}) == az_count
    for subnet in subnets:
        assert subnet.plain_inputs()["mapPublicIpOnLaunch"] is False


def _route_of(run: StackRun, subnet: Registered) -> dict:
    association = [
        a for a in run.of_type(ASSOCIATION) if a.plain_inputs()["subnetId"] == subnet.id
    ]
    assert len(association) == 1, subnet.name
    table = run.by_id(ROUTE_TABLE, association[0].plain_inputs()["routeTableId"])
    routes = table.plain_inputs()["routes"]
    assert len(routes) == 1
    return routes[0]


def test_private_subnets_route_through_nat(stack_run: StackRun):
    nat_ids = {n.id for n in stack_run.of_type("aws:ec2/natGateway:NatGateway")}
    igw = stack_run.of_type("aws:ec2/internetGateway:InternetGateway")[0]
    for subnet in stack_run.of_type(SUBNET):
        route = _route_of(stack_run, subnet)
        assert route["cidrBlock"] == "0.0.0.0/0"
        if "-private-" in subnet.name:
            assert route.get("natGatewayId") in nat_ids
            assert "gatewayId" not in route
        else:
            assert route.get("gatewayId") == igw.id


def test_nat_gateways_sit_in_public_subnets(stack_run: StackRun):
    public_ids = {s.id for s in stack_run.of_type(SUBNET) if "-public-" in s.name}
    gateways = stack_run.of_type("aws:ec2/natGateway:NatGateway")
    expected = (
        int(stack_run.config_value("azCount"))
        if (stack_run.config_value("natGatewayPerAz") == "true")
        else 1
    )
    assert len(gateways) == expected
    for gateway in gateways:
        assert gateway.plain_inputs()["subnetId"] in public_ids


def test_node_group_references_itself(stack_run: StackRun):
    nodes = group_id(stack_run, "nodes")
    self_rules = [
        r
        for r in ingress_rules(stack_run, nodes)
        if r.get("referencedSecurityGroupId") == nodes
    ]
    assert len(self_rules) == 1
    assert self_rules[0]["ipProtocol"] == "-1"
    assert "cidrIpv4" not in self_rules[0]


def test_database_port_only_from_nodes(stack_run: StackRun):
    database = group_id(stack_run, "db")
    nodes = group_id(stack_run, "nodes")
    rules = ingress_rules(stack_run, database)
    assert len(rules) == 1
    assert rules[0]["fromPort"] == 5432
    assert rules[0]["toPort"] == 5432
    assert rules[0]["referencedSecurityGroupId"] == nodes
    assert "cidrIpv4" not in rules[0]
    assert "cidrIpv6" not in rules[0]


def test_world_reaches_only_alb_web_ports(stack_run: StackRun):
    alb = group_id(stack_run, "alb")
    for rule in stack_run.of_type(INGRESS):
        inputs = rule.plain_inputs()
        if inputs.get("cidrIpv4") != "0.0.0.0/0" and inputs.get("cidrIpv6") != "::/0":
            continue
        assert inputs["securityGroupId"] == alb, rule.name
        assert inputs["ipProtocol"] == "tcp"
        assert inputs["fromPort"] == inputs["toPort"]
        assert inputs["fromPort"] in (80, 443)


def test_api_port_limited_to_deployers(stack_run: StackRun):
    server = group_id(stack_run, "server")
    allowed = set(json.loads(stack_run.config_value("apiAllowedCidrs")))
    rules = ingress_rules(stack_run, server)
    assert {r["cidrIpv4"] for r in rules} == allowed
    for rule in rules:
        assert (rule["fromPort"], rule["toPort"]) == (6443, 6443)


def test_alb_forwards_only_to_node_ports(stack_run: StackRun):
    alb = group_id(stack_run, "alb")
    nodes = group_id(stack_run, "nodes")
    egress = [r.plain_inputs() for r in stack_run.of_type(EGRESS)]
    alb_egress = [r for r in egress if r["securityGroupId"] == alb]
    assert len(alb_egress) == 1
    assert alb_egress[0]["referencedSecurityGroupId"] == nodes
    assert (alb_egress[0]["fromPort"], alb_egress[0]["toPort"]) == NODE_PORT_RANGE
    from_alb = [
        r
        for r in ingress_rules(stack_run, nodes)
        if r.get("referencedSecurityGroupId") == alb
    ]
    assert len(from_alb) == 1
    assert (from_alb[0]["fromPort"], from_alb[0]["toPort"]) == NODE_PORT_RANGE


def test_public_subnets_tagged_for_alb(stack_run: StackRun):
    for subnet in stack_run.of_type(SUBNET):
        tags = subnet.plain_inputs()["tags"]
        role = "elb" if "-public-" in subnet.name else "internal-elb"
        assert tags.get(f"kubernetes.io/role/{role}") == "1", subnet.name
        assert tags.get(f"kubernetes.io/cluster/pixtools-{stack_run.stack}") == "owned"
