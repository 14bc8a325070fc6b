"""RDS PostgreSQL instance in the private subnets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from pixtools_platform.common import child_options, name_tags, type_token

ENGINE_MAJOR_VERSION = "16"
PARAMETER_GROUP_FAMILY = f"postgres{ENGINE_MAJOR_VERSION}"


@dataclass
class DatabaseArgs:
    """Inputs of the Database component."""

    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    instance_class: str
    allocated_storage_gb: int
    max_allocated_storage_gb: int
    multi_az: bool
    backup_retention_days: int
    # Production data: deletion protection, a final snapshot and Pulumi protect.
    protect: bool
    database_name: str = "pixtools"
    username: str = "pixtools"


class Database(pulumi.ComponentResource):
    """PostgreSQL 16 on RDS with a generated master password."""

    address: pulumi.Output[str]
    port: pulumi.Output[int]
    database_name: pulumi.Output[str]
    username: pulumi.Output[str]
    password: pulumi.Output[str]
    database_url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: DatabaseArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(type_token("database", "Database"), name, None, opts)

        # Letters and digits only, so the password needs no escaping in DATABASE_URL.
        password = random.RandomPassword(
            f"{name}-password",
            length=40,
            special=False,
            opts=child_options(self),
        )
        self.password = pulumi.Output.secret(password.result)

        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=list(args.subnet_ids),
            tags=name_tags(f"{name}-subnets"),
            opts=child_options(self),
        )
        parameters = aws.rds.ParameterGroup(
            f"{name}-params",
            family=PARAMETER_GROUP_FAMILY,
            parameters=[
                {"name": "rds.force_ssl", "value": "1"},
                {"name": "log_min_duration_statement", "value": "1000"},
            ],
            opts=child_options(self),
        )

        final_snapshot = f"{name}-final" if args.protect else None
        instance = aws.rds.Instance(
            f"{name}-postgres",
            engine="postgres",
            engine_version=ENGINE_MAJOR_VERSION,
            auto_minor_version_upgrade=True,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage_gb,
            max_allocated_storage=args.max_allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            db_name=args.database_name,
            username=args.username,
            password=self.password,
            db_subnet_group_name=subnet_group.name,
            parameter_group_name=parameters.name,
            vpc_security_group_ids=[args.security_group_id],
            publicly_accessible=False,
            multi_az=args.multi_az,
            backup_retention_period=args.backup_retention_days,
            copy_tags_to_snapshot=True,
            deletion_protection=args.protect,
            skip_final_snapshot=not args.protect,
            final_snapshot_identifier=final_snapshot,
            apply_immediately=not args.protect,
            tags=name_tags(f"{name}-postgres"),
            opts=child_options(self, protect=args.protect),
        )

        self.address = instance.address
        self.port = instance.port
        self.database_name = instance.db_name
        self.username = instance.username
        self.database_url = pulumi.Output.secret(
            pulumi.Output.format(
                "postgresql+psycopg://{0}:{1}@{2}:{3}/{4}?sslmode=require",
                instance.username,
                self.password,
                instance.address,
                instance.port,
                instance.db_name,
            )
        )

        self.register_outputs(
            {
                "address": self.address,
                "port": self.port,
                "database_name": self.database_name,
                "username": self.username,
                "password": self.password,
                "database_url": self.database_url,
            }
        )
