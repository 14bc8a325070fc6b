"""Check that the offline tests catch known misconfigurations.

Each mutation patches one snippet of the program or its stack files in a fresh
temporary copy of platform/ and pulumi/, runs the test suite there with ``-x``
and expects it to fail. The unmutated copy must pass first. A snippet that no
longer occurs exactly once is reported as STALE and counts as not caught.

Usage (from the repository root):
    /work/venv-pulumi/bin/python platform/mutation_check.py [--only ID ...]

Exit status 0 means the baseline passed and every mutation was caught.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = ("platform", "pulumi")


@dataclass(frozen=True)
class Mutation:
    """One misconfiguration: replace ``old`` by ``new`` in ``path``."""

    id: str
    description: str
    path: str
    old: str
    new: str


PKG = "platform/pixtools_platform"
MUTATIONS = [
    Mutation(
        "sg-self-rule",
        "node group rule references the ALB group instead of itself",
        f"{PKG}/network.py",
        "security_group_id=nodes.id,\n"
        "            referenced_security_group_id=nodes.id,",
        "security_group_id=nodes.id,\n            referenced_security_group_id=alb.id,",
    ),
    Mutation(
        "db-port-world",
        "PostgreSQL 5432 open to 0.0.0.0/0",
        f"{PKG}/network.py",
        "security_group_id=database.id,\n"
        "            referenced_security_group_id=nodes.id,",
        'security_group_id=database.id,\n            cidr_ipv4="0.0.0.0/0",',
    ),
    Mutation(
        "subnets-overlap",
        "private subnets overlap the public ones",
        f"{PKG}/network.py",
        "PRIVATE_BLOCK_OFFSET = 8",
        "PRIVATE_BLOCK_OFFSET = 1",
    ),
    Mutation(
        "db-public",
        "database publicly accessible",
        f"{PKG}/database.py",
        "publicly_accessible=False,",
        "publicly_accessible=True,",
    ),
    Mutation(
        "db-unencrypted",
        "database storage not encrypted",
        f"{PKG}/database.py",
        "storage_encrypted=True,",
        "storage_encrypted=False,",
    ),
    Mutation(
        "db-unprotected",
        "prod database without Pulumi protect",
        f"{PKG}/database.py",
        "opts=child_options(self, protect=args.protect),",
        "opts=child_options(self),",
    ),
    Mutation(
        "expiry-drift",
        "bucket expiry one day longer than the retention",
        f"{PKG}/storage.py",
        '"expiration": {"days": args.retention_days},',
        '"expiration": {"days": args.retention_days + 1},',
    ),
    Mutation(
        "bucket-policy-public",
        "public bucket policies allowed",
        f"{PKG}/storage.py",
        "block_public_policy=True,",
        "block_public_policy=False,",
    ),
    Mutation(
        "oidc-any-branch",
        "deploy role trusts every branch",
        f"{PKG}/identity.py",
        '"dev": "ref:refs/heads/main",',
        '"dev": "ref:refs/heads/*",',
    ),
    Mutation(
        "s3-any-bucket",
        "node role may touch objects in any bucket",
        f"{PKG}/policies.py",
        '"Resource": [f"{arn}/*" for arn in bucket_arns],',
        '"Resource": ["*"],',
    ),
    Mutation(
        "imdsv1",
        "IMDSv1 allowed",
        f"{PKG}/cluster.py",
        '"http_tokens": "required",',
        '"http_tokens": "optional",',
    ),
    Mutation(
        "agents-on-demand",
        "agent group buys on-demand capacity",
        f"{PKG}/cluster.py",
        '"on_demand_percentage_above_base_capacity": 0,',
        '"on_demand_percentage_above_base_capacity": 100,',
    ),
    Mutation(
        "hop-limit",
        "metadata hop limit raised to 3",
        f"{PKG}/cluster.py",
        "METADATA_HOP_LIMIT = 2",
        "METADATA_HOP_LIMIT = 3",
    ),
    Mutation(
        "kubeconfig-plaintext",
        "kubeconfig exported without the secret flag",
        "pulumi/__main__.py",
        'pulumi.export("kubeconfig", cluster.kubeconfig)',
        'pulumi.export("kubeconfig", pulumi.Output.unsecret(cluster.kubeconfig))',
    ),
    Mutation(
        "target-port",
        "API Service targets a port the container does not open",
        f"{PKG}/workloads/app.py",
        '{"name": "http", "port": 80, "target_port": "http", "protocol": "TCP"}',
        '{"name": "http", "port": 80, "target_port": 8080, "protocol": "TCP"}',
    ),
    Mutation(
        "selector-mismatch",
        "API Service selects labels no pod has",
        f"{PKG}/workloads/app.py",
        '"type": "NodePort",\n            "selector": podspec.labels(component),',
        '"type": "NodePort",\n            "selector": podspec.labels("web"),',
    ),
    Mutation(
        "pdb-blocks-drain",
        "disruption budgets allow no eviction",
        f"{PKG}/workloads/app.py",
        '"max_unavailable": 1,\n            "selector"',
        '"max_unavailable": 0,\n            "selector"',
    ),
    Mutation(
        "default-provider",
        "Kubernetes objects on the ambient default provider",
        f"{PKG}/workloads/context.py",
        "return child_options(self.parent, provider=self.provider, **options)",
        "return child_options(self.parent, **options)",
    ),
    Mutation(
        "no-migration-gate",
        "API rollout does not wait for the migration Job",
        f"{PKG}/workloads/app.py",
        "opts=ctx.opts(depends_on=[migration]),\n    )\n    service =",
        "opts=ctx.opts(),\n    )\n    service =",
    ),
    Mutation(
        "beat-rolling",
        "beat rolls out with two schedulers at once",
        f"{PKG}/workloads/app.py",
        '"strategy": {"type": "Recreate"},\n'
        '            "template": podspec.pod_template(\n'
        "                component,\n                [container],\n"
        "                security=podspec.pod_security(podspec.APP_UID),\n"
        "                node_selector=podspec.system_pool(),",
        '"strategy": {"type": "RollingUpdate"},\n'
        '            "template": podspec.pod_template(\n'
        "                component,\n                [container],\n"
        "                security=podspec.pod_security(podspec.APP_UID),\n"
        "                node_selector=podspec.system_pool(),",
    ),
    Mutation(
        "root-pods",
        "pods may run as root",
        f"{PKG}/workloads/podspec.py",
        '"run_as_non_root": True,\n        "run_as_user": uid,',
        '"run_as_non_root": False,\n        "run_as_user": uid,',
    ),
    Mutation(
        "alb-annotation-typo",
        "misspelled ALB annotation",
        f"{PKG}/workloads/ingress.py",
        'f"{ALB}/target-type": "instance",',
        'f"{ALB}/target-typ": "instance",',
    ),
    Mutation(
        "string-container-port",
        "containerPort given as a string",
        f"{PKG}/workloads/app.py",
        '{"name": "http", "container_port": API_PORT, "protocol": "TCP"}',
        '{"name": "http", "container_port": str(API_PORT), "protocol": "TCP"}',
    ),
    Mutation(
        "resource-in-apply",
        "ECR lifecycle policy created inside apply(), missing from previews",
        f"{PKG}/registry.py",
        "            aws.ecr.LifecyclePolicy(\n"
        '                f"{name}-{service}-lifecycle",\n'
        "                repository=repository.name,\n"
        "                policy=lifecycle_policy(),\n"
        "                opts=child_options(self),\n"
        "            )\n",
        "            repository.arn.apply(\n"
        "                lambda _arn, service=service, repository=repository: (\n"
        "                    aws.ecr.LifecyclePolicy(\n"
        '                    f"{name}-{service}-lifecycle",\n'
        "                    repository=repository.name,\n"
        "                    policy=lifecycle_policy(),\n"
        "                    opts=child_options(self),\n"
        "                ))\n"
        "            )\n",
    ),
    Mutation(
        "node-label",
        "agents join without the workers pool label",
        f"{PKG}/userdata.py",
        'AGENT_POOL = "workers"',
        'AGENT_POOL = "worker"',
    ),
    Mutation(
        "prod-single-nat",
        "prod stack file drops the NAT gateway per AZ",
        "pulumi/Pulumi.prod.yaml",
        "pixtools:natGatewayPerAz: true",
        "pixtools:natGatewayPerAz: false",
    ),
]


def copy_tree(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "venv")
    for folder in COPIED:
        shutil.copytree(REPO / folder, target / folder, ignore=ignore)


def apply(target: Path, mutation: Mutation) -> None:
    path = target / mutation.path
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise LookupError(f"snippet occurs {count} times in {mutation.path}")
    path.write_text(text.replace(mutation.old, mutation.new))


def run_suite(target: Path) -> tuple[int, str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(target / "platform"),
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "--no-header",
    ]
    result = subprocess.run(
        command, cwd=target, capture_output=True, text=True, check=False, timeout=600
    )
    return result.returncode, result.stdout + result.stderr


def first_failure(output: str) -> str:
    match = re.search(r"^(FAILED|ERROR) (\S+)", output, re.MULTILINE)
    return match.group(2).split("/")[-1] if match else "(no test id in output)"


def check(mutation: Mutation | None) -> tuple[str, str, float]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pixtools-mutation-") as folder:
        target = Path(folder)
        copy_tree(target)
        if mutation is not None:
            try:
                apply(target, mutation)
            except LookupError as error:
                return "STALE", str(error), time.monotonic() - started
        code, output = run_suite(target)
    elapsed = time.monotonic() - started
    if mutation is None:
        return (
            ("PASSED" if code == 0 else "FAILED"),
            output.strip().splitlines()[-1],
            elapsed,
        )
    if code == 0:
        return "MISSED", "suite passed", elapsed
    return "CAUGHT", first_failure(output), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="run only these mutation ids")
    parser.add_argument("--skip-baseline", action="store_true")
    options = parser.parse_args()

    selected = [m for m in MUTATIONS if not options.only or m.id in options.only]
    if not options.skip_baseline:
        status, detail, elapsed = check(None)
        print(f"baseline: {status} ({detail}, {elapsed:.1f}s)", flush=True)
        if status != "PASSED":
            return 1

    results = []
    for mutation in selected:
        status, detail, elapsed = check(mutation)
        results.append(status)
        print(
            f"{status:7} {mutation.id:22} {mutation.description} -> {detail} "
            f"({elapsed:.1f}s)",
            flush=True,
        )

    caught = results.count("CAUGHT")
    print(f"{caught}/{len(results)} mutations caught")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
