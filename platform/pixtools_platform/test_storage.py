"""Storage: private, encrypted buckets whose expiry matches the retention."""

from __future__ import annotations

import json

import pytest

from pixtools_platform.storage import AREAS, StorageArgs
from pixtools_platform.testing.harness import StackRun

BUCKET = "aws:s3/bucket:Bucket"


def attached(run: StackRun, type_token: str, bucket_id: str) -> dict:
    found = [
        r for r in run.of_type(type_token) if r.plain_inputs()["bucket"] == bucket_id
    ]
    assert len(found) == 1, (type_token, bucket_id)
    return found[0].plain_inputs()


def test_one_bucket_per_area(stack_run: StackRun):
    buckets = stack_run.of_type(BUCKET)
    assert sorted(b.name.rsplit("-", 1)[-1] for b in buckets) == sorted(AREAS)
    exported = stack_run.outputs["buckets"].value
    assert exported == {b.name.rsplit("-", 1)[-1]: b.id for b in buckets}


def test_public_access_fully_blocked(stack_run: StackRun):
    for bucket in stack_run.of_type(BUCKET):
        block = attached(
            stack_run,
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            bucket.id,
        )
        for flag in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        ):
            assert block[flag] is True, (bucket.name, flag)


def test_owner_enforced_no_acls(stack_run: StackRun):
    for bucket in stack_run.of_type(BUCKET):
        controls = attached(
            stack_run,
            "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
            bucket.id,
        )
        assert controls["rule"]["objectOwnership"] == "BucketOwnerEnforced"
        assert "acl" not in bucket.plain_inputs()


def test_buckets_encrypted(stack_run: StackRun):
    token = (
        "aws:s3/bucketServerSideEncryptionConfiguration:"
        "BucketServerSideEncryptionConfiguration"
    )
    for bucket in stack_run.of_type(BUCKET):
        rules = attached(stack_run, token, bucket.id)["rules"]
        algorithms = {
            r["applyServerSideEncryptionByDefault"]["sseAlgorithm"] for r in rules
        }
        assert algorithms <= {"AES256", "aws:kms"}
        assert algorithms


def test_expiry_equals_retention(stack_run: StackRun):
    retention = int(stack_run.config_value("retentionDays"))
    token = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    for bucket in stack_run.of_type(BUCKET):
        rules = attached(stack_run, token, bucket.id)["rules"]
        enabled = [r for r in rules if r["status"] == "Enabled"]
        expiring = [r for r in enabled if "expiration" in r]
        assert len(expiring) == 1, bucket.name
        rule = expiring[0]
        assert rule["expiration"]["days"] == retention
        # The rule covers the whole bucket, not one prefix.
        assert rule.get("filter", {}).get("prefix", "") == ""
        assert rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] >= 1
        assert rule["noncurrentVersionExpiration"]["noncurrentDays"] >= 1


def test_expiry_matches_app_retention(stack_run: StackRun):
    settings = stack_run.named(
        "kubernetes:core/v1:ConfigMap", "-settings"
    ).plain_inputs()
    days = int(stack_run.config_value("retentionDays"))
    assert int(settings["data"]["RETENTION_SECONDS"]) == days * 86_400


def test_versioning_not_enabled(stack_run: StackRun):
    for versioning in stack_run.of_type("aws:s3/bucketVersioning:BucketVersioning"):
        status = versioning.plain_inputs()["versioningConfiguration"]["status"]
        assert status != "Enabled"
    for bucket in stack_run.of_type(BUCKET):
        assert not bucket.plain_inputs().get("versioning", {}).get("enabled")


def test_bucket_policy_denies_plain_http(stack_run: StackRun):
    for bucket in stack_run.of_type(BUCKET):
        policy = json.loads(
            attached(stack_run, "aws:s3/bucketPolicy:BucketPolicy", bucket.id)["policy"]
        )
        statements = policy["Statement"]
        assert len(statements) == 1
        statement = statements[0]
        assert statement["Effect"] == "Deny"
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert set(statement["Resource"]) == {
            bucket.outputs["arn"],
            bucket.outputs["arn"] + "/*",
        }


def test_prod_buckets_protected(prod_run: StackRun):
    for bucket in prod_run.of_type(BUCKET):
        assert bucket.protect is True
        assert bucket.plain_inputs()["forceDestroy"] is False


def test_dev_buckets_removable(dev_run: StackRun):
    for bucket in dev_run.of_type(BUCKET):
        assert bucket.protect is False
        assert bucket.plain_inputs()["forceDestroy"] is True


def test_storage_rejects_zero_retention():
    from pixtools_platform.storage import Storage

    with pytest.raises(ValueError, match="retention_days"):
        Storage("x", StorageArgs(retention_days=0, protect=False))
