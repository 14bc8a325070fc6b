"""ECR repositories for the service images."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from pixtools_platform.common import child_options, name_tags, type_token

SERVICES = ("api", "worker-standard", "worker-ml")
UNTAGGED_EXPIRY_DAYS = 7
KEPT_IMAGES = 50


def lifecycle_policy() -> str:
    """Return the ECR lifecycle policy: drop untagged images, keep the newest ones."""
    policy = {
        "rules": [
            {
                "rulePriority": 1,
                "description": "Expire untagged images",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": UNTAGGED_EXPIRY_DAYS,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"Keep the newest {KEPT_IMAGES} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": KEPT_IMAGES,
                },
                "action": {"type": "expire"},
            },
        ]
    }
    return json.dumps(policy)


@dataclass
class RegistryArgs:
    """Inputs of the Registry component."""

    # Repository names are "<prefix>/<service>", e.g. "pixtools-dev/api".
    repository_prefix: str
    # Dev repositories may be deleted with their images.
    force_delete: bool
    services: Sequence[str] = field(default_factory=lambda: list(SERVICES))


class Registry(pulumi.ComponentResource):
    """One immutable, scanned ECR repository per service image."""

    repository_urls: dict[str, pulumi.Output[str]]
    repository_arns: dict[str, pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        args: RegistryArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(type_token("registry", "Registry"), name, None, opts)

        self.repository_urls = {}
        self.repository_arns = {}
        for service in args.services:
            repository = aws.ecr.Repository(
                f"{name}-{service}",
                name=f"{args.repository_prefix}/{service}",
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "AES256"}],
                force_delete=args.force_delete,
                tags=name_tags(f"{name}-{service}"),
                opts=child_options(self),
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{service}-lifecycle",
                repository=repository.name,
                policy=lifecycle_policy(),
                opts=child_options(self),
            )
            self.repository_urls[service] = repository.repository_url
            self.repository_arns[service] = repository.arn

        self.register_outputs(
            {
                "repository_urls": self.repository_urls,
                "repository_arns": self.repository_arns,
            }
        )
