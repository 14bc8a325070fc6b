"""Cluster: IMDSv2, encrypted disks, spot agents and their boot scripts."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import pytest

from pixtools_platform.testing.harness import StackRun
from pixtools_platform.testing.mocks import AMI_ID
from pixtools_platform.userdata import (
    NodeBootSettings,
    agent_user_data,
    server_user_data,
)

INSTANCE = "aws:ec2/instance:Instance"
TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
GROUP = "aws:autoscaling/group:Group"


def server(run: StackRun):
    instances = run.of_type(INSTANCE)
    assert len(instances) == 1
    return instances[0]


def template(run: StackRun):
    templates = run.of_type(TEMPLATE)
    assert len(templates) == 1
    return templates[0]


def agent_script(run: StackRun) -> str:
    return base64.b64decode(template(run).plain_inputs()["userData"]).decode()


@pytest.mark.parametrize("which", ["server", "agents"])
def test_imdsv2_required(stack_run: StackRun, which: str):
    resource = server(stack_run) if which == "server" else template(stack_run)
    options = resource.plain_inputs()["metadataOptions"]
    assert options["httpTokens"] == "required"
    assert options["httpEndpoint"] == "enabled"
    assert 1 <= options["httpPutResponseHopLimit"] <= 2


def test_root_volumes_encrypted(stack_run: StackRun):
    root = server(stack_run).plain_inputs()["rootBlockDevice"]
    assert root["encrypted"] is True
    for mapping in template(stack_run).plain_inputs()["blockDeviceMappings"]:
        assert mapping["ebs"]["encrypted"] == "true"


def test_agents_spot_only_mixed_types(stack_run: StackRun):
    group = stack_run.of_type(GROUP)
    assert len(group) == 1
    policy = group[0].plain_inputs()["mixedInstancesPolicy"]
    distribution = policy["instancesDistribution"]
    assert distribution["onDemandBaseCapacity"] == 0
    assert distribution["onDemandPercentageAboveBaseCapacity"] == 0
    assert distribution["spotAllocationStrategy"] in (
        "capacity-optimized",
        "price-capacity-optimized",
    )
    overrides = [o["instanceType"] for o in policy["launchTemplate"]["overrides"]]
    assert overrides == json.loads(stack_run.config_value("agentInstanceTypes"))
    assert len(set(overrides)) >= 2
    spec = policy["launchTemplate"]["launchTemplateSpecification"]
    assert spec["launchTemplateId"] == template(stack_run).id


def test_agent_group_sizes_follow_config(stack_run: StackRun):
    inputs = stack_run.of_type(GROUP)[0].plain_inputs()
    assert inputs["maxSize"] == int(stack_run.config_value("agentMaxSize"))
    assert inputs["minSize"] == int(stack_run.config_value("agentMinSize"))
    assert inputs["minSize"] <= inputs["desiredCapacity"] <= inputs["maxSize"]
    assert inputs["capacityRebalance"] is True


def test_agents_in_private_subnets(stack_run: StackRun):
    private = {
        s.id
        for s in stack_run.of_type("aws:ec2/subnet:Subnet")
        if "-private-" in s.name
    }
    inputs = stack_run.of_type(GROUP)[0].plain_inputs()
    assert set(inputs["vpcZoneIdentifiers"]) == private
    nodes = stack_run.named("aws:ec2/securityGroup:SecurityGroup", "-nodes-sg")
    assert template(stack_run).plain_inputs()["vpcSecurityGroupIds"] == [nodes.id]


def test_server_interface_has_elastic_ip(stack_run: StackRun):
    eni = stack_run.of_type("aws:ec2/networkInterface:NetworkInterface")
    assert len(eni) == 1
    public = {
        s.id for s in stack_run.of_type("aws:ec2/subnet:Subnet") if "-public-" in s.name
    }
    assert eni[0].plain_inputs()["subnetId"] in public
    association = stack_run.of_type("aws:ec2/eipAssociation:EipAssociation")[
        0
    ].plain_inputs()
    assert association["networkInterfaceId"] == eni[0].id
    eip = stack_run.named("aws:ec2/eip:Eip", "-server-eip")
    assert association["allocationId"] == eip.id
    assert (
        server(stack_run).plain_inputs()["primaryNetworkInterface"][
            "networkInterfaceId"
        ]
        == eni[0].id
    )
    # The instance boots only once the address is attached.
    assert any(
        d.endswith("-server-eip-association") for d in server(stack_run).dependencies
    )


def test_agents_join_server_address(stack_run: StackRun):
    eni = stack_run.of_type("aws:ec2/networkInterface:NetworkInterface")[0]
    script = agent_script(stack_run)
    assert f'server: "https://{eni.outputs["privateIp"]}:6443"' in script
    assert '"pixtools.io/pool=workers"' in script
    assert f"K3S_VERSION={stack_run.config_value('k3sVersion')}" in script.replace(
        "'", ""
    )


def test_server_script_names_public_address(stack_run: StackRun):
    script = server(stack_run).plain_inputs()["userData"]
    address = stack_run.named("aws:ec2/eip:Eip", "-server-eip").outputs["publicIp"]
    assert f"https://{address}:6443" in script
    assert '"pixtools.io/pool=system"' in script
    assert "CriticalAddonsOnly=true:NoExecute" in script


def test_token_read_at_boot_not_embedded(stack_run: StackRun):
    token = stack_run.named("random:index/randomPassword:RandomPassword", "-k3s-token")
    secret = token.outputs["result"]["value"]
    for script in (
        server(stack_run).plain_inputs()["userData"],
        agent_script(stack_run),
    ):
        assert secret not in script
        assert "aws ssm get-parameter" in script
        assert f"/pixtools/{stack_run.stack}/k3s-token" in script


def test_default_ami_from_public_parameter(stack_run: StackRun):
    assert server(stack_run).plain_inputs()["ami"] == AMI_ID
    assert template(stack_run).plain_inputs()["imageId"] == AMI_ID
    assert "ami" in server(stack_run).ignore_changes


def test_kubeconfig_wait_is_secret(stack_run: StackRun):
    command = stack_run.of_type("command:local:Command")
    assert len(command) == 1
    assert "stdout" in command[0].additional_secret_outputs
    assert command[0].plain_inputs()["logging"] == "none"
    assert command[0].plain_inputs()["triggers"] == [server(stack_run).id]
    output = stack_run.outputs["kubeconfig"]
    assert output.secret is True
    assert output.value == command[0].outputs["stdout"]["value"]


def test_prod_server_protected(prod_run: StackRun):
    assert server(prod_run).protect is True
    assert prod_run.named("aws:ec2/eip:Eip", "-server-eip").protect is True


SETTINGS = NodeBootSettings(
    "eu-west-1", "v1.33.4+k3s1", "/pixtools/dev/k3s-token", "v1.33.0"
)


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck not installed"
)
@pytest.mark.parametrize("kind", ["server", "agent"])
def test_boot_scripts_pass_shellcheck(kind: str):
    script = (
        server_user_data(SETTINGS, "203.0.113.7", "/pixtools/dev/kubeconfig")
        if kind == "server"
        else agent_user_data(SETTINGS, "10.40.0.10")
    )
    result = subprocess.run(
        ["shellcheck", "--shell=bash", "-"],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
