"""Run the real ``pulumi/__main__.py`` for one stack under mocks.

``run_stack`` loads the configuration as the CLI would: defaults from
``Pulumi.yaml``, values from ``Pulumi.<stack>.yaml``, secret keys replaced by
placeholders marked secret and image digests as CD sets them. It then runs the
program in a fresh context. The result lists every registered resource with its
inputs, options and mocked outputs, plus the resolved stack outputs.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.settings import get_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from pixtools_platform.testing.mocks import AwsKubernetesMocks
from pixtools_platform.testing.values import plain, wrap_secret

PROJECT = "pixtools"
SERVICES = ("api", "workerStandard", "workerMl")


def pulumi_dir() -> Path:
    """Return the folder with Pulumi.yaml (PIXTOOLS_PULUMI_DIR overrides it)."""
    override = os.environ.get("PIXTOOLS_PULUMI_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "pulumi"


def discover_stacks() -> list[str]:
    """Return the stack names that have a ``Pulumi.<stack>.yaml`` file."""
    return sorted(
        path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        for path in pulumi_dir().glob("Pulumi.*.yaml")
    )


def fake_digest(stack: str, service: str) -> str:
    """Return a stable sha256 digest standing in for a pushed image."""
    return "sha256:" + hashlib.sha256(f"{stack}/{service}".encode()).hexdigest()


def _config_string(value: Any) -> str:
    # The CLI hands every config value to the program as a string.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def load_config(
    stack: str, overrides: Mapping[str, Any] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Build the config map and the secret keys of ``stack``."""
    folder = pulumi_dir()
    project = yaml.safe_load((folder / "Pulumi.yaml").read_text())
    stack_file = yaml.safe_load((folder / f"Pulumi.{stack}.yaml").read_text()) or {}

    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, schema in (project.get("config") or {}).items():
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        if schema.get("secret"):
            # Operators set these with `pulumi config set --secret`.
            config[full_key] = f"placeholder-{key}"
            secret_keys.append(full_key)
        elif "default" in schema:
            config[full_key] = _config_string(schema["default"])

    for key, value in (stack_file.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = f"placeholder-{key}"
            secret_keys.append(key)
        else:
            config[key] = _config_string(value)

    for service in SERVICES:
        config[f"{PROJECT}:{service}ImageDigest"] = fake_digest(stack, service)
    for key, value in (overrides or {}).items():
        config[key if ":" in key else f"{PROJECT}:{key}"] = _config_string(value)
    return config, secret_keys


@dataclass(frozen=True)
class Registered:
    """One RegisterResource request and the mock's response."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    provider: str
    protect: bool
    dependencies: tuple[str, ...]
    property_dependencies: Mapping[str, tuple[str, ...]]
    ignore_changes: tuple[str, ...]
    additional_secret_outputs: tuple[str, ...]
    inputs: Mapping[str, Any]
    id: str
    outputs: Mapping[str, Any]

    @property
    def provider_urn(self) -> str:
        """URN of the explicit provider, or "" for the default provider."""
        return self.provider.rsplit("::", 1)[0] if self.provider else ""

    def plain_inputs(self) -> dict[str, Any]:
        return plain(dict(self.inputs))


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Mock monitor that keeps each request and marks secret outputs.

    The engine marks a resource's ``additionalSecretOutputs`` as secret; the stock
    mock monitor does not, so this one wraps them before responding.
    """

    def __init__(self, mocks: AwsKubernetesMocks) -> None:
        super().__init__(mocks)
        self.registered: list[Registered] = []

    def RegisterResource(self, request: Any) -> Any:
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)

        pulumi_mocks._ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object)
        resource_id, state = self.mocks.new_resource(
            pulumi_mocks.MockResourceArgs(
                typ=request.type,
                name=request.name,
                inputs=inputs,
                provider=request.provider,
                resource_id=request.importId,
                custom=request.custom or False,
            )
        )
        state = dict(state)
        for key in request.additionalSecretOutputs:
            if key in state:
                state[key] = wrap_secret(state[key])

        self.registered.append(
            Registered(
                urn=urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent,
                provider=request.provider,
                protect=bool(request.protect),
                dependencies=tuple(request.dependencies),
                property_dependencies={
                    key: tuple(value.urns)
                    for key, value in request.propertyDependencies.items()
                },
                ignore_changes=tuple(request.ignoreChanges),
                additional_secret_outputs=tuple(request.additionalSecretOutputs),
                inputs=inputs,
                id=resource_id or "",
                outputs=state,
            )
        )
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(
            urn, resource_id or "", state
        )
        serialized = pulumi_mocks._sync_await(rpc.serialize_properties(state, {}))
        return resource_pb2.RegisterResourceResponse(
            urn=urn, id=resource_id or "", object=serialized
        )


@dataclass(frozen=True)
class StackOutput:
    """A resolved stack output."""

    value: Any
    secret: bool
    known: bool


@dataclass
class StackRun:
    """Everything one run of the program registered."""

    stack: str
    preview: bool
    config: dict[str, str]
    resources: list[Registered]
    outputs: dict[str, StackOutput] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, type_token: str, suffix: str) -> Registered:
        """Return the one resource of ``type_token`` whose name ends in ``suffix``."""
        found = [r for r in self.of_type(type_token) if r.name.endswith(suffix)]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_token)]
            raise LookupError(f"{len(found)} {type_token} end in {suffix!r}: {names}")
        return found[0]

    def by_urn(self, urn: str) -> Registered:
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise LookupError(f"no resource with URN {urn}")

    def by_id(self, type_token: str, resource_id: str) -> Registered:
        for resource in self.of_type(type_token):
            if resource.id == resource_id:
                return resource
        raise LookupError(f"no {type_token} with id {resource_id}")

    def kubernetes_objects(self) -> list[Registered]:
        """Return every Kubernetes object (not providers, not Helm releases)."""
        return [
            r
            for r in self.resources
            if r.type.startswith("kubernetes:")
            and not r.type.startswith("kubernetes:helm.sh/")
        ]

    def config_value(self, key: str) -> str:
        return self.config[key if ":" in key else f"{PROJECT}:{key}"]


def _run(stack: str, preview: bool, overrides: Mapping[str, Any] | None) -> StackRun:
    config, secret_keys = load_config(stack, overrides)
    region = config["aws:region"]
    mocks = AwsKubernetesMocks(region, preview=preview)
    monitor = RecordingMonitor(mocks)

    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi_mocks.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor
    )
    run = StackRun(stack=stack, preview=preview, config=config, resources=[])
    program = str(pulumi_dir() / "__main__.py")

    def body() -> None:
        runpy.run_path(program, run_name="__main__")
        root = get_root_resource()
        exports = getattr(root, "outputs", {})
        for key, value in exports.items():
            output = pulumi.Output.from_input(value)
            run.outputs[key] = StackOutput(
                value=_sync_await(output.future()),
                secret=bool(_sync_await(output.is_secret())),
                known=bool(_sync_await(output.is_known())),
            )

    _sync_await(run_pulumi_func(body))
    run.resources = list(monitor.registered)
    return run


def run_stack(
    stack: str, *, preview: bool = False, overrides: Mapping[str, Any] | None = None
) -> StackRun:
    """Run the program for ``stack`` in its own context and return what it did."""
    # A fresh context gives the run its own root stack, config and settings, so
    # several stacks can run in one test session.
    return contextvars.Context().run(_run, stack, preview, overrides)
