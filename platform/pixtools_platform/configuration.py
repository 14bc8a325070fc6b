"""SSM parameters with the runtime settings and generated secrets of a stack."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from pixtools_platform import endpoints
from pixtools_platform.common import child_options, type_token

# The K3s server replaces this value with its kubeconfig once the API is up.
KUBECONFIG_PLACEHOLDER = "pending: the K3s server writes its kubeconfig here"
# pixtools_shared.settings accepts development, test or production; every deployed
# stack runs with the production checks (secret lengths, no dev defaults).
APP_ENVIRONMENT = "production"


@dataclass
class ConfigurationArgs:
    """Inputs of the Configuration component."""

    environment: str
    region: str
    # Parameter names start with this path, e.g. "/pixtools/dev".
    parameter_path: str
    bucket_names: Mapping[str, pulumi.Input[str]]
    retention_seconds: int
    alb_security_group_id: pulumi.Input[str]
    database_url: pulumi.Input[str]
    api_keys: pulumi.Input[str]


class Configuration(pulumi.ComponentResource):
    """Runtime settings as String parameters, secrets as SecureString parameters."""

    parameter_path: str
    kubeconfig_parameter_name: str
    k3s_token_parameter_name: str
    settings: dict[str, pulumi.Output[str]]
    secrets: dict[str, pulumi.Output[str]]
    rabbitmq_password: pulumi.Output[str]
    redis_password: pulumi.Output[str]
    k3s_token: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ConfigurationArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(type_token("configuration", "Configuration"), name, None, opts)

        self.parameter_path = args.parameter_path.rstrip("/")
        self.kubeconfig_parameter_name = f"{self.parameter_path}/kubeconfig"
        self.k3s_token_parameter_name = f"{self.parameter_path}/k3s-token"

        signing = self._generated_secret(f"{name}-signing-secret", length=64)
        webhook_signing = self._generated_secret(f"{name}-webhook-secret", length=64)
        self.rabbitmq_password = self._generated_secret(f"{name}-rabbitmq", length=40)
        self.redis_password = self._generated_secret(f"{name}-redis", length=40)
        k3s_token = self._generated_secret(f"{name}-k3s-token", length=64)
        # Alloy sends this as a bearer token when it scrapes the API's /metrics.
        metrics_token = self._generated_secret(f"{name}-metrics-token", length=48)

        broker_url: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.format(
                "amqp://{0}:{1}@{2}:{3}//",
                endpoints.RABBITMQ_USER,
                self.rabbitmq_password,
                endpoints.service_host(endpoints.RABBITMQ_SERVICE),
                endpoints.RABBITMQ_PORT,
            )
        )
        redis_url: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.format(
                "redis://:{0}@{1}:{2}/0",
                self.redis_password,
                endpoints.service_host(endpoints.REDIS_SERVICE),
                endpoints.REDIS_PORT,
            )
        )

        self.settings = {
            "ENVIRONMENT": pulumi.Output.from_input(APP_ENVIRONMENT),
            # Pods must listen on every interface for Services and probes.
            "API_HOST": pulumi.Output.from_input("0.0.0.0"),
            "API_PORT": pulumi.Output.from_input(str(endpoints.API_PORT)),
            "METRICS_HOST": pulumi.Output.from_input("0.0.0.0"),
            "STORAGE_BACKEND": pulumi.Output.from_input("s3"),
            "S3_REGION": pulumi.Output.from_input(args.region),
            "S3_BUCKET_UPLOADS": pulumi.Output.from_input(args.bucket_names["uploads"]),
            "S3_BUCKET_OUTPUTS": pulumi.Output.from_input(args.bucket_names["outputs"]),
            "S3_BUCKET_BUNDLES": pulumi.Output.from_input(args.bucket_names["bundles"]),
            "RETENTION_SECONDS": pulumi.Output.from_input(str(args.retention_seconds)),
        }
        self.secrets = {
            "DATABASE_URL": pulumi.Output.secret(args.database_url),
            "BROKER_URL": broker_url,
            "REDIS_URL": redis_url,
            "SIGNING_SECRET": signing,
            "WEBHOOK_SIGNING_SECRET": webhook_signing,
            "API_KEYS": pulumi.Output.secret(args.api_keys),
            "METRICS_TOKEN": metrics_token,
        }

        for key, value in self.settings.items():
            self._parameter(name, key, value, secure=False)
        for key, value in self.secrets.items():
            self._parameter(name, key, value, secure=True)
        self._parameter(
            name, "ALB_SECURITY_GROUP_ID", args.alb_security_group_id, secure=False
        )
        self.k3s_token = k3s_token
        self._parameter(name, "K3S_TOKEN", k3s_token, secure=True)

        # Pulumi creates the parameter so that it is deleted with the stack; the
        # value belongs to the K3s server afterwards.
        aws.ssm.Parameter(
            f"{name}-kubeconfig",
            name=self.kubeconfig_parameter_name,
            type="SecureString",
            value=pulumi.Output.secret(KUBECONFIG_PLACEHOLDER),
            description="Kubeconfig written by the K3s server at first boot",
            opts=child_options(self, ignore_changes=["value"]),
        )

        self.register_outputs(
            {
                "parameter_path": self.parameter_path,
                "kubeconfig_parameter_name": self.kubeconfig_parameter_name,
                "k3s_token_parameter_name": self.k3s_token_parameter_name,
            }
        )

    def _generated_secret(self, resource_name: str, length: int) -> pulumi.Output[str]:
        # Letters and digits only: these values end up inside URLs and shell.
        password = random.RandomPassword(
            resource_name, length=length, special=False, opts=child_options(self)
        )
        return pulumi.Output.secret(password.result)

    def _parameter(
        self, name: str, key: str, value: pulumi.Input[str], *, secure: bool
    ) -> aws.ssm.Parameter:
        slug = key.lower().replace("_", "-")
        return aws.ssm.Parameter(
            f"{name}-{slug}",
            name=f"{self.parameter_path}/{slug}",
            type="SecureString" if secure else "String",
            value=value,
            opts=child_options(self),
        )
