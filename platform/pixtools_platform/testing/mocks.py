"""Pulumi mocks that return values shaped like those of AWS and Kubernetes.

Ids and ARNs have the real shapes (``vpc-…``, ``sg-…``, ``arn:aws:…``), bucket ids
equal bucket names, auto-named resources get a random suffix as the engine adds,
and network interfaces get an address inside their subnet. Any invoke without a
mock raises, so a new data source cannot slip into the program untested.

In preview mode every new resource gets an unknown id and echoes its inputs, as
``pulumi preview`` does, so values computed by the provider stay unknown.
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from typing import Any

from pulumi.runtime import Mocks
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

from pixtools_platform.testing.values import plain

ACCOUNT_ID = "123456789012"
AVAILABILITY_ZONES = ("a", "b", "c")
AMI_ID = "ami-0a1b2c3d4e5f60718"
ALB_HOSTNAME_SUFFIX = "elb.amazonaws.com"

FAKE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
  - name: default
    cluster:
      server: https://203.0.113.10:6443
      certificate-authority-data: bW9jaw==
contexts:
  - name: default
    context: {cluster: default, user: default}
current-context: default
users:
  - name: default
    user:
      client-certificate-data: bW9jaw==
      client-key-data: bW9jaw==
"""

_ID_PREFIXES = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr",
    "aws:ec2/networkInterface:NetworkInterface": "eni",
    "aws:ec2/instance:Instance": "i",
    "aws:ec2/eipAssociation:EipAssociation": "eipassoc",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt",
}
_ARN_SERVICES = {
    "aws:ec2/vpc:Vpc": ("ec2", "vpc/"),
    "aws:ec2/subnet:Subnet": ("ec2", "subnet/"),
    "aws:ec2/securityGroup:SecurityGroup": ("ec2", "security-group/"),
    "aws:ec2/instance:Instance": ("ec2", "instance/"),
    "aws:ec2/launchTemplate:LaunchTemplate": ("ec2", "launch-template/"),
}


def _hex(seed: str, length: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


class AwsKubernetesMocks(Mocks):
    """Mocks for the AWS, random, command and Kubernetes providers."""

    def __init__(self, region: str, *, preview: bool = False) -> None:
        self.region = region
        self.preview = preview
        self._lock = threading.Lock()
        self._subnet_cidrs: dict[str, str] = {}
        self._eni_addresses: dict[str, str] = {}
        self._address_counter = 10
        self._eip_counter = 20

    # Invokes ----------------------------------------------------------------

    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        token = args.token
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{zone}" for zone in AVAILABILITY_ZONES]
            return {
                "names": names,
                "zoneIds": [f"euw1-az{index + 1}" for index in range(len(names))],
                "id": self.region,
            }
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/deployer",
                "userId": "AIDAEXAMPLEUSERID",
                "id": ACCOUNT_ID,
            }
        if token == "aws:ssm/getParameter:getParameter":
            name = args.args.get("name", "")
            if name.startswith("/aws/service/ami-amazon-linux-latest/"):
                return {
                    "name": name,
                    "type": "String",
                    "value": AMI_ID,
                    "insecureValue": AMI_ID,
                    "arn": f"arn:aws:ssm:{self.region}::parameter{name}",
                    "version": 1,
                }
        raise NotImplementedError(f"invoke {token} has no mock (args: {args.args})")

    # Resources --------------------------------------------------------------

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        if self.preview:
            return "", inputs
        return self._create(args.typ, args.name, inputs)

    def _autoname(self, name: str, length: int = 7) -> str:
        return f"{name}-{_hex('autoname:' + name, length)}"

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{resource}"

    def _create(
        self, typ: str, name: str, inputs: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        state = dict(inputs)
        if typ.startswith("kubernetes:"):
            return self._kubernetes(typ, name, state)
        if typ in _ID_PREFIXES:
            resource_id = f"{_ID_PREFIXES[typ]}-{_hex(typ + name, 17)}"
            state["id"] = resource_id
            if typ in _ARN_SERVICES:
                service, kind = _ARN_SERVICES[typ]
                state["arn"] = self._arn(service, kind + resource_id)
            self._network_details(typ, resource_id, state)
            return resource_id, state

        handler = {
            "aws:ec2/eip:Eip": self._eip,
            "aws:s3/bucket:Bucket": self._bucket,
            "aws:ecr/repository:Repository": self._repository,
            "aws:iam/role:Role": self._role,
            "aws:iam/instanceProfile:InstanceProfile": self._instance_profile,
            "aws:iam/openIdConnectProvider:OpenIdConnectProvider": self._oidc,
            "aws:ssm/parameter:Parameter": self._parameter,
            "aws:rds/instance:Instance": self._database,
            "aws:rds/subnetGroup:SubnetGroup": self._named,
            "aws:rds/parameterGroup:ParameterGroup": self._named,
            "aws:autoscaling/group:Group": self._named,
            "random:index/randomPassword:RandomPassword": self._password,
            "command:local:Command": self._command,
        }.get(typ)
        if handler is not None:
            return handler(name, state)
        if typ.startswith("aws:s3/"):
            return str(plain(state.get("bucket"))), state
        if typ.startswith("pulumi:providers:"):
            return f"{name}-provider", state
        return f"{name}-{_hex(typ + name, 8)}", state

    def _network_details(
        self, typ: str, resource_id: str, state: dict[str, Any]
    ) -> None:
        with self._lock:
            if typ == "aws:ec2/subnet:Subnet":
                self._subnet_cidrs[resource_id] = str(plain(state["cidrBlock"]))
            elif typ == "aws:ec2/networkInterface:NetworkInterface":
                cidr = self._subnet_cidrs[str(plain(state["subnetId"]))]
                network = ipaddress.ip_network(cidr)
                address = str(network.network_address + self._address_counter)
                self._address_counter += 1
                self._eni_addresses[resource_id] = address
                state["privateIp"] = address
                state["privateIps"] = [address]
            elif typ == "aws:ec2/instance:Instance":
                interface = plain(state.get("primaryNetworkInterface") or {})
                eni = interface.get("networkInterfaceId", "")
                state["privateIp"] = self._eni_addresses.get(eni, "10.0.0.10")
            elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
                state["latestVersion"] = 1
                state["defaultVersion"] = 1
            elif typ == "aws:ec2/vpc:Vpc":
                state["defaultSecurityGroupId"] = f"sg-{_hex(resource_id, 17)}"

    def _eip(self, name: str, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        with self._lock:
            self._eip_counter += 1
            address = f"203.0.113.{self._eip_counter}"
        allocation = f"eipalloc-{_hex(name, 17)}"
        state.update({"allocationId": allocation, "publicIp": address})
        return allocation, state

    def _bucket(self, name: str, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        bucket = str(plain(state.get("bucket") or self._autoname(name)))
        state.update(
            {
                "bucket": bucket,
                "arn": f"arn:aws:s3:::{bucket}",
                "bucketDomainName": f"{bucket}.s3.amazonaws.com",
            }
        )
        return bucket, state

    def _repository(
        self, name: str, state: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        repository = str(plain(state["name"]))
        state.update(
            {
                "arn": self._arn("ecr", f"repository/{repository}"),
                "registryId": ACCOUNT_ID,
                "repositoryUrl": (
                    f"{ACCOUNT_ID}.dkr.ecr.{self.region}.amazonaws.com/{repository}"
                ),
            }
        )
        return repository, state

    def _role(self, name: str, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        role = str(plain(state.get("name") or self._autoname(name)))
        path = str(plain(state.get("path") or "/"))
        state.update(
            {
                "name": role,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:role{path}{role}",
                "uniqueId": f"AROA{_hex(role, 16).upper()}",
            }
        )
        return role, state

    def _instance_profile(
        self, name: str, state: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        profile = self._autoname(name)
        path = str(plain(state.get("path") or "/"))
        state.update(
            {
                "name": profile,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:instance-profile{path}{profile}",
            }
        )
        return profile, state

    def _oidc(self, name: str, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        host = str(plain(state["url"])).removeprefix("https://")
        arn = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{host}"
        state["arn"] = arn
        return arn, state

    def _parameter(
        self, name: str, state: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        parameter = str(plain(state["name"]))
        state["arn"] = self._arn("ssm", f"parameter{parameter}")
        state["version"] = 1
        return parameter, state

    def _database(self, name: str, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        identifier = self._autoname(name)
        address = f"{identifier}.c9akciq32.{self.region}.rds.amazonaws.com"
        state.update(
            {
                "identifier": identifier,
                "address": address,
                "port": 5432,
                "endpoint": f"{address}:5432",
                "arn": self._arn("rds", f"db:{identifier}"),
            }
        )
        return f"db-{_hex(identifier, 26).upper()}", state

    def _named(self, name: str, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        resource = str(plain(state.get("name") or self._autoname(name)))
        state["name"] = resource
        state["arn"] = self._arn("generic", resource)
        return resource, state

    def _password(self, name: str, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        length = int(plain(state.get("length", 32)))
        value = (hashlib.sha512(name.encode()).hexdigest() * 2)[:length]
        state.update({"result": value, "bcryptHash": "$2a$10$mock"})
        return "none", state

    def _command(self, name: str, state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        state.update({"stdout": FAKE_KUBECONFIG, "stderr": ""})
        return f"{name}-{_hex(name, 8)}", state

    def _kubernetes(
        self, typ: str, name: str, state: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        if typ.startswith("kubernetes:helm.sh/"):
            state["status"] = {"status": "deployed", "name": state.get("name", name)}
            return f"kube-system/{name}", state

        metadata = dict(plain(state.get("metadata") or {}))
        if "name" not in metadata:
            # pulumi-kubernetes auto-names objects: logical name plus 8 characters.
            metadata["name"] = f"{name}-{_hex('k8s:' + name, 8)}"
        metadata["uid"] = _hex("uid:" + name, 32)
        state["metadata"] = metadata

        if typ == "kubernetes:networking.k8s.io/v1:Ingress":
            hostname = (
                f"k8s-pixtools-{_hex(name, 10)}-{_hex(name + 'x', 10)}."
                f"{self.region}.{ALB_HOSTNAME_SUFFIX}"
            )
            state["status"] = {"loadBalancer": {"ingress": [{"hostname": hostname}]}}

        namespace = metadata.get("namespace")
        resource_id = (
            f"{namespace}/{metadata['name']}" if namespace else metadata["name"]
        )
        return resource_id, state
