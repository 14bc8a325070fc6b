"""Workloads: wiring between Kubernetes objects and to the AWS resources."""

from __future__ import annotations

import json

import pytest

from pixtools_platform.testing import kube
from pixtools_platform.testing.harness import StackRun, fake_digest
from pixtools_platform.testing.values import is_secret
from pixtools_platform.workloads.observability import SCRAPED_PORTS

APP_COMPONENTS = ("api", "worker-standard", "worker-ml", "beat")
BUILTIN_PRIORITIES = {"system-node-critical", "system-cluster-critical"}


def container(body: dict, index: int = 0) -> dict:
    return kube.pod_spec(body)["containers"][index]


def test_objects_use_explicit_provider(stack_run: StackRun):
    providers = stack_run.of_type("pulumi:providers:kubernetes")
    assert len(providers) == 1
    provider = providers[0]
    assert is_secret(provider.inputs["kubeconfig"])
    assert (
        provider.plain_inputs()["kubeconfig"] == stack_run.outputs["kubeconfig"].value
    )
    k8s_resources = [r for r in stack_run.resources if r.type.startswith("kubernetes:")]
    assert len(k8s_resources) > 30
    for resource in k8s_resources:
        assert resource.provider_urn == provider.urn, resource.name


def test_selectors_match_pod_labels(stack_run: StackRun):
    for resource, body in kube.workloads(stack_run):
        if body["kind"] == "Job":
            continue
        selector = body["spec"]["selector"]["matchLabels"]
        assert kube.selects(selector, kube.pod_labels(body)), resource.name


def test_services_select_pods_and_ports(stack_run: StackRun):
    pods = [
        (body["metadata"].get("namespace"), kube.pod_labels(body), kube.pod_spec(body))
        for _, body in kube.workloads(stack_run)
    ]
    services = kube.objects(stack_run, "Service")
    assert len(services) >= 5
    for resource, service in services:
        namespace = service["metadata"]["namespace"]
        selected = [
            spec
            for ns, labels, spec in pods
            if ns == namespace and kube.selects(service["spec"]["selector"], labels)
        ]
        assert selected, f"{resource.name} selects no pods"
        for spec in selected:
            ports = [p for c in spec["containers"] for p in c.get("ports", [])]
            names = {p["name"] for p in ports}
            numbers = {p["containerPort"] for p in ports}
            for port in service["spec"]["ports"]:
                target = port["targetPort"]
                assert target in (names if isinstance(target, str) else numbers), (
                    resource.name,
                    target,
                )


def test_disruption_budgets_allow_drain(stack_run: StackRun):
    workloads = {
        body["metadata"]["name"]: body for _, body in kube.workloads(stack_run)
    }
    hpas = {
        body["spec"]["scaleTargetRef"]["name"]: body
        for _, body in kube.objects(stack_run, "HorizontalPodAutoscaler")
    }
    budgets = kube.objects(stack_run, "PodDisruptionBudget")
    assert {b["metadata"]["name"] for _, b in budgets} >= {
        "api",
        "worker-standard",
        "worker-ml",
        "rabbitmq",
        "redis",
    }
    for resource, budget in budgets:
        spec = budget["spec"]
        targets = [
            w
            for w in workloads.values()
            if kube.selects(spec["selector"]["matchLabels"], kube.pod_labels(w))
        ]
        assert len(targets) == 1, resource.name
        target = targets[0]
        name = target["metadata"]["name"]
        replicas = (
            hpas[name]["spec"]["minReplicas"]
            if name in hpas
            else target["spec"].get("replicas", 1)
        )
        if "maxUnavailable" in spec:
            assert spec["maxUnavailable"] >= 1, resource.name
        else:
            assert spec["minAvailable"] < replicas, resource.name


def test_rollout_waits_for_migration(stack_run: StackRun):
    job = kube.objects(stack_run, "Job")
    assert len(job) == 1
    job_resource, job_body = job[0]
    assert job_body["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    for name in APP_COMPONENTS:
        deployment = kube.find_resource(stack_run, "Deployment", name)
        assert job_resource.urn in deployment.dependencies, name


def test_migration_job_named_by_digest(stack_run: StackRun):
    _, job = kube.objects(stack_run, "Job")[0]
    digest = fake_digest(stack_run.stack, "api").removeprefix("sha256:")
    assert job["metadata"]["name"] == f"migrate-{digest[:12]}"
    assert job["spec"]["backoffLimit"] <= 3
    assert job["spec"]["activeDeadlineSeconds"] > 0


def test_beat_single_replica_recreate(stack_run: StackRun):
    beat = kube.find(stack_run, "Deployment", "beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert container(beat)["args"] == ["beat"]
    targets = {
        b["spec"]["scaleTargetRef"]["name"]
        for _, b in kube.objects(stack_run, "HorizontalPodAutoscaler")
    }
    assert "beat" not in targets


def test_api_probes_distinct(stack_run: StackRun):
    api = container(kube.find(stack_run, "Deployment", "api"))
    assert api["livenessProbe"]["httpGet"]["path"] == "/api/livez"
    assert api["readinessProbe"]["httpGet"]["path"] == "/api/readyz"
    assert api["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


@pytest.mark.parametrize("name", ["worker-standard", "worker-ml"])
def test_workers_expose_metrics(stack_run: StackRun, name: str):
    worker = container(kube.find(stack_run, "Deployment", name))
    assert worker["args"] == ["worker"]
    port = {"name": "metrics", "containerPort": 9100, "protocol": "TCP"}
    assert port in worker["ports"]
    assert {"name": "WORKER_METRICS_PORT", "value": "9100"} in worker["env"]


def test_app_images_pinned_to_config_digests(stack_run: StackRun):
    urls = stack_run.outputs["imageRepositories"].value
    expected = {
        "api": f"{urls['api']}@{fake_digest(stack_run.stack, 'api')}",
        "worker-standard": "{}@{}".format(
            urls["worker-standard"], fake_digest(stack_run.stack, "workerStandard")
        ),
        "worker-ml": f"{urls['worker-ml']}@{fake_digest(stack_run.stack, 'workerMl')}",
    }
    for name in ("api", "worker-standard", "worker-ml"):
        assert (
            container(kube.find(stack_run, "Deployment", name))["image"]
            == expected[name]
        )
    assert (
        container(kube.find(stack_run, "Deployment", "beat"))["image"]
        == (expected["worker-standard"])
    )
    _, job = kube.objects(stack_run, "Job")[0]
    assert container(job)["image"] == expected["api"]


def test_app_reads_shared_settings(stack_run: StackRun):
    config_map = kube.find_resource(stack_run, "ConfigMap", _settings_name(stack_run))
    secret = stack_run.named("kubernetes:core/v1:Secret", "-secrets")
    secret_name = kube.manifest(secret)["metadata"]["name"]
    for name in APP_COMPONENTS:
        env_from = container(kube.find(stack_run, "Deployment", name))["envFrom"]
        assert env_from == [
            {"configMapRef": {"name": kube.manifest(config_map)["metadata"]["name"]}},
            {"secretRef": {"name": secret_name}},
        ]


def _settings_name(run: StackRun) -> str:
    resource = run.named("kubernetes:core/v1:ConfigMap", "-settings")
    return kube.manifest(resource)["metadata"]["name"]


def test_settings_match_aws_resources(stack_run: StackRun):
    data = kube.find(stack_run, "ConfigMap", _settings_name(stack_run))["data"]
    buckets = stack_run.outputs["buckets"].value
    assert data["S3_BUCKET_UPLOADS"] == buckets["uploads"]
    assert data["S3_BUCKET_OUTPUTS"] == buckets["outputs"]
    assert data["S3_BUCKET_BUNDLES"] == buckets["bundles"]
    assert data["STORAGE_BACKEND"] == "s3"
    assert data["S3_REGION"] == stack_run.config["aws:region"]
    assert data["ENVIRONMENT"] == "production"
    assert data["API_HOST"] == "0.0.0.0"
    assert data["API_PORT"] == "8000"
    assert data["METRICS_HOST"] == "0.0.0.0"


def test_secret_values_secret_and_wired(stack_run: StackRun):
    secret = stack_run.named("kubernetes:core/v1:Secret", "-secrets")
    # pulumi-kubernetes sends the whole stringData map as one secret.
    assert is_secret(secret.inputs["stringData"])
    plain = secret.plain_inputs()["stringData"]
    assert set(plain) == {
        "DATABASE_URL",
        "BROKER_URL",
        "REDIS_URL",
        "SIGNING_SECRET",
        "WEBHOOK_SIGNING_SECRET",
        "API_KEYS",
        "METRICS_TOKEN",
    }
    assert plain["DATABASE_URL"] == stack_run.outputs["databaseUrl"].value
    assert plain["API_KEYS"] == "placeholder-apiKeys"
    rabbit = stack_run.named("kubernetes:core/v1:Secret", "-rabbitmq-credentials")
    password = rabbit.plain_inputs()["stringData"]["RABBITMQ_DEFAULT_PASS"]
    assert plain["BROKER_URL"] == (
        f"amqp://pixtools:{password}@rabbitmq.pixtools.svc.cluster.local:5672//"
    )
    redis = stack_run.named("kubernetes:core/v1:Secret", "-redis-credentials")
    redis_password = redis.plain_inputs()["stringData"]["REDIS_PASSWORD"]
    assert plain["REDIS_URL"] == (
        f"redis://:{redis_password}@redis.pixtools.svc.cluster.local:6379/0"
    )


def test_broker_and_cache_services_named(stack_run: StackRun):
    assert (
        kube.find(stack_run, "Service", "rabbitmq")["spec"]["ports"][0]["port"] == 5672
    )
    assert kube.find(stack_run, "Service", "redis")["spec"]["ports"][0]["port"] == 6379


def test_rabbitmq_claims_storage_class(stack_run: StackRun):
    rabbit = kube.find(stack_run, "StatefulSet", "rabbitmq")
    classes = {
        b["metadata"]["name"] for _, b in kube.objects(stack_run, "StorageClass")
    }
    claims = rabbit["spec"]["volumeClaimTemplates"]
    assert len(claims) == 1
    assert claims[0]["spec"]["storageClassName"] in classes
    size = int(stack_run.config_value("rabbitmqStorageGb"))
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == f"{size}Gi"
    mounts = container(rabbit)["volumeMounts"]
    assert {"name": "data", "mountPath": "/var/lib/rabbitmq"} in mounts
    headless = kube.find(stack_run, "Service", rabbit["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"


def test_prod_broker_protected(prod_run: StackRun):
    assert kube.find_resource(prod_run, "StatefulSet", "rabbitmq").protect is True
    assert kube.find_resource(prod_run, "Namespace", "pixtools").protect is True


def test_pods_run_as_non_root(stack_run: StackRun):
    for resource, body in kube.workloads(stack_run):
        pod = kube.pod_spec(body)
        assert pod["securityContext"]["runAsNonRoot"] is True, resource.name
        assert pod["securityContext"]["runAsUser"] > 0, resource.name
        for item in pod["containers"]:
            security = item["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, resource.name
            assert security["capabilities"]["drop"] == ["ALL"], resource.name
            assert "privileged" not in security
            assert set(item["resources"]["requests"]) == {"cpu", "memory"}
            assert set(item["resources"]["limits"]) == {"cpu", "memory"}


def test_read_only_root_except_broker(stack_run: StackRun):
    for resource, body in kube.workloads(stack_run):
        for item in kube.pod_spec(body)["containers"]:
            expected = body["metadata"]["name"] != "rabbitmq"
            assert item["securityContext"]["readOnlyRootFilesystem"] is expected, (
                resource.name
            )


def test_priority_classes_exist(stack_run: StackRun):
    defined = {
        b["metadata"]["name"] for _, b in kube.objects(stack_run, "PriorityClass")
    }
    for resource, body in kube.workloads(stack_run):
        priority = kube.pod_spec(body)["priorityClassName"]
        assert priority in defined | BUILTIN_PRIORITIES, resource.name


def test_pods_placed_by_pool(stack_run: StackRun):
    on_workers = {"api", "worker-standard", "worker-ml", "aws-node-termination-handler"}
    for resource, body in kube.workloads(stack_run):
        pool = kube.pod_spec(body)["nodeSelector"]["pixtools.io/pool"]
        name = body["metadata"]["name"]
        if name in on_workers:
            assert pool == "workers", resource.name
        else:
            assert pool == "system", resource.name
            tolerations = kube.pod_spec(body)["tolerations"]
            assert {
                "key": "CriticalAddonsOnly",
                "operator": "Equal",
                "value": "true",
                "effect": "NoExecute",
            } in tolerations


def test_autoscalers_target_deployments(stack_run: StackRun):
    deployments = {
        b["metadata"]["name"] for _, b in kube.objects(stack_run, "Deployment")
    }
    hpas = kube.objects(stack_run, "HorizontalPodAutoscaler")
    assert {b["spec"]["scaleTargetRef"]["name"] for _, b in hpas} == {
        "api",
        "worker-standard",
        "worker-ml",
    }
    for resource, hpa in hpas:
        spec = hpa["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]
        target = kube.find(stack_run, "Deployment", spec["scaleTargetRef"]["name"])
        # The autoscaler owns the replica count; the Deployment must not set it.
        assert "replicas" not in target["spec"], resource.name
    api = kube.find(stack_run, "HorizontalPodAutoscaler", "api")["spec"]
    assert api["minReplicas"] == int(stack_run.config_value("apiMinReplicas"))
    assert api["maxReplicas"] == int(stack_run.config_value("apiMaxReplicas"))


def test_ingress_routes_api_through_alb(stack_run: StackRun):
    ingress = kube.find(stack_run, "Ingress", "api")
    annotations = ingress["metadata"]["annotations"]
    alb = stack_run.named("aws:ec2/securityGroup:SecurityGroup", "-alb-sg")
    assert annotations["alb.ingress.kubernetes.io/security-groups"] == alb.id
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "instance"
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/api/readyz"
    assert json.loads(annotations["alb.ingress.kubernetes.io/listen-ports"]) == [
        {"HTTP": 80}
    ]
    assert ingress["spec"]["ingressClassName"] == "alb"
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert [p["path"] for p in paths] == ["/api"]
    backend = paths[0]["backend"]["service"]
    service = kube.find(stack_run, "Service", backend["name"])
    assert service["spec"]["type"] == "NodePort"
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_api_url_is_alb_address(stack_run: StackRun):
    ingress = stack_run.named("kubernetes:networking.k8s.io/v1:Ingress", "-api-ingress")
    hostname = ingress.outputs["status"]["loadBalancer"]["ingress"][0]["hostname"]
    assert stack_run.outputs["apiUrl"].value == f"http://{hostname}"


def test_ingress_waits_for_controller(stack_run: StackRun):
    release = stack_run.of_type("kubernetes:helm.sh/v3:Release")
    assert len(release) == 1
    values = release[0].plain_inputs()["values"]
    assert values["clusterName"] == f"pixtools-{stack_run.stack}"
    assert values["vpcId"] == stack_run.of_type("aws:ec2/vpc:Vpc")[0].id
    assert values["region"] == stack_run.config["aws:region"]
    assert values["nodeSelector"] == {"pixtools.io/pool": "system"}
    assert release[0].plain_inputs()["version"] == stack_run.config_value(
        "loadBalancerControllerChartVersion"
    )
    ingress = stack_run.named("kubernetes:networking.k8s.io/v1:Ingress", "-api-ingress")
    assert release[0].urn in ingress.dependencies


def test_https_with_certificate():
    from pixtools_platform.testing.harness import run_stack

    arn = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
    run = run_stack("dev", overrides={"certificateArn": arn})
    annotations = kube.find(run, "Ingress", "api")["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"] == arn
    assert annotations["alb.ingress.kubernetes.io/ssl-redirect"] == "443"
    assert json.loads(annotations["alb.ingress.kubernetes.io/listen-ports"]) == [
        {"HTTP": 80},
        {"HTTPS": 443},
    ]
    assert run.outputs["apiUrl"].value.startswith("https://")


def test_node_termination_handler_rbac(stack_run: StackRun):
    daemonset = kube.find(stack_run, "DaemonSet", "aws-node-termination-handler")
    pod = kube.pod_spec(daemonset)
    account = kube.find(stack_run, "ServiceAccount", pod["serviceAccountName"])
    assert account["metadata"]["namespace"] == daemonset["metadata"]["namespace"]
    binding = kube.find(stack_run, "ClusterRoleBinding", "aws-node-termination-handler")
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]
    role = kube.find(stack_run, "ClusterRole", binding["roleRef"]["name"])
    granted = {
        (r, v)
        for rule in role["rules"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert ("pods/eviction", "create") in granted
    assert ("nodes", "patch") in granted
    env = {e["name"]: e.get("value") for e in container(daemonset)["env"]}
    assert env["ENABLE_SPOT_INTERRUPTION_DRAINING"] == "true"


def test_alloy_scrapes_declared_ports(stack_run: StackRun):
    config_maps = [
        b
        for _, b in kube.objects(stack_run, "ConfigMap")
        if "config.alloy" in b.get("data", {})
    ]
    assert len(config_maps) == 1
    config = config_maps[0]["data"]["config.alloy"]
    for job in SCRAPED_PORTS:
        assert f'prometheus.scrape "{job}"' in config
    api_port = container(kube.find(stack_run, "Deployment", "api"))["ports"][0]
    assert (api_port["name"], api_port["containerPort"]) == SCRAPED_PORTS["api"]
    for name in ("worker-standard", "worker-ml"):
        ports = {
            (p["name"], p["containerPort"])
            for p in container(kube.find(stack_run, "Deployment", name))["ports"]
        }
        assert SCRAPED_PORTS["workers"] in ports
    exporter = kube.find(stack_run, "Service", "celery-exporter")
    assert '"celery-exporter"' in config
    assert exporter["spec"]["ports"][0]["name"] == "metrics"
    assert stack_run.config_value("metricsRemoteWriteUrl") in config
    api_job = config[config.index('prometheus.scrape "api"') :].split("\n}\n", 1)[0]
    assert 'credentials = sys.env("METRICS_TOKEN")' in api_job
    alloy = kube.find(stack_run, "Deployment", "alloy")
    secret = stack_run.named("kubernetes:core/v1:Secret", "-secrets")
    token_env = [e for e in container(alloy)["env"] if e["name"] == "METRICS_TOKEN"]
    assert token_env[0]["valueFrom"]["secretKeyRef"] == {
        "name": kube.manifest(secret)["metadata"]["name"],
        "key": "METRICS_TOKEN",
    }
    volume = next(v for v in kube.pod_spec(alloy)["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == config_maps[0]["metadata"]["name"]


def test_alloy_rbac_namespaced(stack_run: StackRun):
    alloy = kube.find(stack_run, "Deployment", "alloy")
    account = kube.pod_spec(alloy)["serviceAccountName"]
    binding = kube.find(stack_run, "RoleBinding", "alloy")
    assert binding["subjects"][0]["name"] == account
    role = kube.find(stack_run, "Role", binding["roleRef"]["name"])
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}


def test_exporter_reads_broker_url(stack_run: StackRun):
    exporter = container(kube.find(stack_run, "Deployment", "celery-exporter"))
    secret = stack_run.named("kubernetes:core/v1:Secret", "-secrets")
    ref = exporter["env"][0]["valueFrom"]["secretKeyRef"]
    assert ref == {
        "name": kube.manifest(secret)["metadata"]["name"],
        "key": "BROKER_URL",
    }


def test_namespace_enforces_restricted(stack_run: StackRun):
    namespace = kube.find(stack_run, "Namespace", "pixtools")
    assert (
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        == "restricted"
    )
    for _, body in kube.workloads(stack_run):
        if body["metadata"]["namespace"] == "pixtools":
            assert "hostNetwork" not in kube.pod_spec(body)
