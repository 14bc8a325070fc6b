"""Private, encrypted S3 buckets for uploads, outputs and bundles."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from pixtools_platform.common import child_options, name_tags, type_token

# Storage areas of the application (pixtools_shared.storage); one bucket each.
AREAS = ("uploads", "outputs", "bundles")
MULTIPART_ABORT_DAYS = 1
NONCURRENT_EXPIRY_DAYS = 1


@dataclass
class StorageArgs:
    """Inputs of the Storage component."""

    # Objects expire this many days after creation; matches RETENTION_SECONDS.
    retention_days: int
    # Production buckets are protected and never emptied on delete.
    protect: bool


def _deny_insecure_transport(bucket_arn: str) -> str:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    return json.dumps(policy)


class Storage(pulumi.ComponentResource):
    """One bucket per storage area, with expiry matching the retention setting."""

    bucket_names: dict[str, pulumi.Output[str]]
    bucket_arns: dict[str, pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        args: StorageArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if args.retention_days <= 0:
            raise ValueError(f"retention_days must be > 0, got {args.retention_days}")
        super().__init__(type_token("storage", "Storage"), name, None, opts)

        self.bucket_names = {}
        self.bucket_arns = {}
        for area in AREAS:
            bucket = self._create_bucket(f"{name}-{area}", args)
            self.bucket_names[area] = bucket.bucket
            self.bucket_arns[area] = bucket.arn

        self.register_outputs(
            {"bucket_names": self.bucket_names, "bucket_arns": self.bucket_arns}
        )

    def _create_bucket(self, bucket_name: str, args: StorageArgs) -> aws.s3.Bucket:
        bucket = aws.s3.Bucket(
            bucket_name,
            # Dev buckets may be deleted with their objects; prod ones are kept.
            force_destroy=not args.protect,
            tags=name_tags(bucket_name),
            opts=child_options(self, protect=args.protect),
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{bucket_name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child_options(self),
        )
        aws.s3.BucketOwnershipControls(
            f"{bucket_name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child_options(self),
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{bucket_name}-encryption",
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "AES256"
                    },
                    "bucket_key_enabled": True,
                }
            ],
            opts=child_options(self),
        )
        # Versioning stays off; the noncurrent rule still removes any old versions
        # should versioning be switched on by hand.
        aws.s3.BucketLifecycleConfiguration(
            f"{bucket_name}-lifecycle",
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire-after-retention",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "expiration": {"days": args.retention_days},
                    "noncurrent_version_expiration": {
                        "noncurrent_days": NONCURRENT_EXPIRY_DAYS
                    },
                    "abort_incomplete_multipart_upload": {
                        "days_after_initiation": MULTIPART_ABORT_DAYS
                    },
                }
            ],
            opts=child_options(self),
        )
        aws.s3.BucketPolicy(
            f"{bucket_name}-policy",
            bucket=bucket.id,
            policy=bucket.arn.apply(_deny_insecure_transport),
            # A policy put before the public access block would be checked
            # against the account default rather than this bucket's block.
            opts=child_options(self, depends_on=[public_access]),
        )
        return bucket
