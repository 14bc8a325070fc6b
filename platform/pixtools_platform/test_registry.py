"""Registry: one immutable, scanned repository per service image."""

from __future__ import annotations

import json

from pixtools_platform.registry import SERVICES, lifecycle_policy
from pixtools_platform.testing.harness import StackRun

REPOSITORY = "aws:ecr/repository:Repository"


def test_repository_per_service(stack_run: StackRun):
    names = sorted(r.plain_inputs()["name"] for r in stack_run.of_type(REPOSITORY))
    assert names == sorted(f"pixtools-{stack_run.stack}/{s}" for s in SERVICES)


def test_repositories_immutable_and_scanned(stack_run: StackRun):
    for repository in stack_run.of_type(REPOSITORY):
        inputs = repository.plain_inputs()
        assert inputs["imageTagMutability"] == "IMMUTABLE"
        assert inputs["imageScanningConfiguration"]["scanOnPush"] is True
        assert inputs["encryptionConfigurations"][0]["encryptionType"] in (
            "AES256",
            "KMS",
        )


def test_every_repository_has_lifecycle(stack_run: StackRun):
    policies = stack_run.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    covered = {p.plain_inputs()["repository"] for p in policies}
    assert covered == {r.id for r in stack_run.of_type(REPOSITORY)}
    for policy in policies:
        rules = json.loads(policy.plain_inputs()["policy"])["rules"]
        priorities = [r["rulePriority"] for r in rules]
        assert len(priorities) == len(set(priorities))
        assert any(r["selection"]["tagStatus"] == "untagged" for r in rules)


def test_lifecycle_rules_well_formed():
    rules = json.loads(lifecycle_policy())["rules"]
    assert [r["rulePriority"] for r in rules] == [1, 2]
    for rule in rules:
        assert rule["action"] == {"type": "expire"}
        assert rule["selection"]["countType"] in (
            "imageCountMoreThan",
            "sinceImagePushed",
        )
        assert rule["selection"]["countNumber"] > 0
    # A rule with tagStatus "any" must have the lowest priority (highest number).
    assert rules[-1]["selection"]["tagStatus"] == "any"


def test_repository_urls_exported(stack_run: StackRun):
    exported = stack_run.outputs["imageRepositories"].value
    actual = {
        r.plain_inputs()["name"].split("/", 1)[1]: r.outputs["repositoryUrl"]
        for r in stack_run.of_type(REPOSITORY)
    }
    assert exported == actual


def test_prod_repositories_keep_images(prod_run: StackRun):
    for repository in prod_run.of_type(REPOSITORY):
        assert repository.plain_inputs()["forceDelete"] is False
