"""PixTools infrastructure program: one stack per environment (dev, prod).

Reads the validated stack configuration and builds the components of
``pixtools_platform`` in dependency order. Image digests come from config, which
CD sets for each release.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from pixtools_platform.cluster import Cluster, ClusterArgs
from pixtools_platform.configuration import Configuration, ConfigurationArgs
from pixtools_platform.database import Database, DatabaseArgs
from pixtools_platform.identity import Identity, IdentityArgs
from pixtools_platform.network import Network, NetworkArgs
from pixtools_platform.registry import Registry, RegistryArgs
from pixtools_platform.stack_config import (
    load_stack_config,
    load_stack_secrets,
)
from pixtools_platform.storage import Storage, StorageArgs
from pixtools_platform.workloads import (
    AppImages,
    MetricsSink,
    Scaling,
    SupportImages,
    Workloads,
    WorkloadsArgs,
)

config = load_stack_config()
secrets = load_stack_secrets()
prefix = f"pixtools-{config.environment}"

aws_provider = aws.Provider(
    "aws",
    region=config.region,
    default_tags={
        "tags": {
            "Project": "pixtools",
            "Environment": config.environment,
            "ManagedBy": "pulumi",
            "PulumiStack": pulumi.get_stack(),
        }
    },
)
aws_opts = pulumi.ResourceOptions(providers={"aws": aws_provider})
caller = aws.get_caller_identity(opts=pulumi.InvokeOptions(provider=aws_provider))
parameter_path = f"/pixtools/{config.environment}"

network = Network(
    f"{prefix}-network",
    NetworkArgs(
        cidr_block=config.vpc_cidr,
        az_count=config.az_count,
        cluster_name=prefix,
        nat_gateway_per_az=config.nat_gateway_per_az,
        api_allowed_cidrs=config.api_allowed_cidrs,
    ),
    opts=aws_opts,
)
storage = Storage(
    f"{prefix}-storage",
    StorageArgs(retention_days=config.retention_days, protect=config.protect),
    opts=aws_opts,
)
registry = Registry(
    f"{prefix}-registry",
    RegistryArgs(repository_prefix=prefix, force_delete=not config.protect),
    opts=aws_opts,
)
database = Database(
    f"{prefix}-database",
    DatabaseArgs(
        subnet_ids=network.private_subnet_ids,
        security_group_id=network.database_security_group_id,
        instance_class=config.db_instance_class,
        allocated_storage_gb=config.db_allocated_storage_gb,
        max_allocated_storage_gb=config.db_max_allocated_storage_gb,
        multi_az=config.db_multi_az,
        backup_retention_days=config.db_backup_retention_days,
        protect=config.protect,
    ),
    opts=aws_opts,
)
configuration = Configuration(
    f"{prefix}-configuration",
    ConfigurationArgs(
        environment=config.environment,
        region=config.region,
        parameter_path=parameter_path,
        bucket_names=storage.bucket_names,
        retention_seconds=config.retention_seconds,
        alb_security_group_id=network.alb_security_group_id,
        database_url=database.database_url,
        api_keys=secrets.api_keys,
    ),
    opts=aws_opts,
)
identity = Identity(
    f"{prefix}-identity",
    IdentityArgs(
        environment=config.environment,
        account_id=caller.account_id,
        region=config.region,
        cluster_name=prefix,
        iam_path=f"/pixtools/{config.environment}/",
        parameter_path=parameter_path,
        kubeconfig_parameter_name=configuration.kubeconfig_parameter_name,
        bucket_arns=list(storage.bucket_arns.values()),
        bucket_prefix=f"{prefix}-storage-",
        repository_arns=list(registry.repository_arns.values()),
        github_repository=config.github_repository,
        github_oidc_provider_arn=config.github_oidc_provider_arn,
        state_bucket=config.pulumi_state_bucket,
        secrets_key_arn=config.pulumi_secrets_key_arn,
    ),
    opts=aws_opts,
)
cluster = Cluster(
    f"{prefix}-cluster",
    ClusterArgs(
        cluster_name=prefix,
        region=config.region,
        k3s_version=config.k3s_version,
        ecr_provider_version=config.ecr_credential_provider_version,
        server_subnet_id=network.public_subnet_ids[0],
        agent_subnet_ids=network.private_subnet_ids,
        node_security_group_id=network.node_security_group_id,
        server_security_group_id=network.server_security_group_id,
        server_instance_profile=identity.server_instance_profile_name,
        agent_instance_profile=identity.agent_instance_profile_name,
        token_parameter_name=configuration.k3s_token_parameter_name,
        kubeconfig_parameter_name=configuration.kubeconfig_parameter_name,
        server_instance_type=config.server_instance_type,
        agent_instance_types=config.agent_instance_types,
        agent_min_size=config.agent_min_size,
        agent_max_size=config.agent_max_size,
        agent_desired_size=config.agent_desired_size,
        root_volume_gb=config.root_volume_gb,
        ami_id=config.ami_id,
        protect_server=config.protect,
    ),
    # The server reads its token parameter at boot.
    opts=pulumi.ResourceOptions.merge(
        aws_opts, pulumi.ResourceOptions(depends_on=[configuration, identity])
    ),
)

pulumi.export("imageRepositories", registry.repository_urls)
pulumi.export("deployRoleArn", identity.deploy_role_arn)
pulumi.export("buckets", storage.bucket_names)
pulumi.export("databaseAddress", database.address)
pulumi.export("databaseUrl", database.database_url)
pulumi.export("parameterPath", parameter_path)
pulumi.export("serverPublicIp", cluster.server_public_ip)
pulumi.export("kubeconfig", cluster.kubeconfig)

if config.deploy_workloads and config.image_digests is not None:
    digests = config.image_digests
    urls = registry.repository_urls
    workloads = Workloads(
        f"{prefix}-workloads",
        WorkloadsArgs(
            kubeconfig=cluster.kubeconfig,
            environment=config.environment,
            cluster_name=prefix,
            region=config.region,
            vpc_id=network.vpc_id,
            app_images=AppImages(
                api=pulumi.Output.concat(urls["api"], "@", digests.api),
                worker_standard=pulumi.Output.concat(
                    urls["worker-standard"], "@", digests.worker_standard
                ),
                worker_ml=pulumi.Output.concat(
                    urls["worker-ml"], "@", digests.worker_ml
                ),
            ),
            api_digest=digests.api,
            support_images=SupportImages(**config.support_images),
            settings=configuration.settings,
            secrets=configuration.secrets,
            rabbitmq_password=configuration.rabbitmq_password,
            redis_password=configuration.redis_password,
            alb_security_group_id=network.alb_security_group_id,
            api_scaling=Scaling(
                config.api_replicas.min_replicas, config.api_replicas.max_replicas
            ),
            standard_scaling=Scaling(
                config.standard_worker_replicas.min_replicas,
                config.standard_worker_replicas.max_replicas,
            ),
            ml_scaling=Scaling(
                config.ml_worker_replicas.min_replicas,
                config.ml_worker_replicas.max_replicas,
            ),
            metrics=MetricsSink(
                remote_write_url=config.metrics_remote_write_url,
                username=config.metrics_remote_write_username,
                password=secrets.metrics_remote_write_password,
            ),
            load_balancer_controller_chart_version=(
                config.load_balancer_controller_chart_version
            ),
            rabbitmq_storage_gb=config.rabbitmq_storage_gb,
            protect=config.protect,
            certificate_arn=config.certificate_arn,
        ),
    )
    scheme = "https" if config.certificate_arn else "http"
    pulumi.export("apiUrl", pulumi.Output.concat(scheme, "://", workloads.api_hostname))
