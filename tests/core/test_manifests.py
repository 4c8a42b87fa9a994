"""Rendering: golden files per environment, determinism, order, the seed's numbers, tag rules."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tradewise_ops.core.config import Config, load_config
from tradewise_ops.core.render import (
    APPLY_ORDER,
    manifest_files,
    render_environment,
    render_ingress,
    to_yaml_stream,
)
from tradewise_ops.core.validate import validate
from tradewise_ops.errors import BadInputError
from tradewise_ops.resources import data_path

GOLDEN = Path(__file__).parent / "golden"
TAG = "v1.2.3"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(data_path("tradewise.yaml"), environ={})


@pytest.fixture(scope="module")
def prod(config: Config) -> list[dict[str, Any]]:
    return render_environment(config, "prod", tag=TAG)


def by(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind}/{name} rendered")


def container(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_matches_golden_file(env: str) -> None:
    """The rendered stream is byte-identical to the reviewed golden file.

    Rendered from golden/tradewise.yaml (a frozen copy of the default config, so a change to the
    repo's config does not move the golden files; the seed's numbers in the repo config are
    checked by the tests below). After an intended template change:
    UPDATE_GOLDEN=1 pytest tests/core/test_manifests.py, and review the diff.
    """
    config = load_config(GOLDEN / "tradewise.yaml", environ={})
    text = to_yaml_stream(render_environment(config, env, tag=TAG))
    golden = GOLDEN / f"{env}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_rendering_is_deterministic(config: Config) -> None:
    first = to_yaml_stream(render_environment(config, "prod", tag=TAG))
    second = to_yaml_stream(render_environment(config, "production", tag=TAG))
    assert first == second


@pytest.mark.parametrize("version", ["1.27", "1.37"])
@pytest.mark.parametrize("env", ["staging", "prod"])
def test_rendered_objects_are_valid(config: Config, env: str, version: str) -> None:
    objects = render_environment(config, env, tag=TAG, k8s_version=version)
    assert [str(f) for f in validate(objects, version)] == []


def test_monitoring_labels_go_on_the_service_monitor_and_the_prometheus_rule() -> None:
    """What a kube-prometheus-stack install selects by (``release``), from monitoring.labels."""
    config = load_config(GOLDEN / "tradewise.yaml", environ={})
    labelled = {"ServiceMonitor", "PrometheusRule"}
    for env, expected in (("prod", "kube-prometheus-stack"), ("staging", None)):
        objects = render_environment(config, env, tag=TAG)
        for obj in objects:
            labels = obj["metadata"]["labels"]
            want = expected if obj["kind"] in labelled else None
            assert labels.get("release") == want, (env, obj["kind"], obj["metadata"]["name"])
            assert labels["app.kubernetes.io/name"] == "tradewise"  # the contract labels stay
        assert [str(f) for f in validate(objects, "1.37")] == []


def test_objects_come_in_apply_order(prod: list[dict[str, Any]]) -> None:
    ranks = [APPLY_ORDER.index(o["kind"]) for o in prod]
    assert ranks == sorted(ranks)
    assert prod[0]["kind"] == "Namespace"
    assert prod[-1]["kind"] == "CronJob"
    # a PersistentVolumeClaim is rendered only with backups.enabled (tests/cli/test_backup_jobs.py)
    assert {o["kind"] for o in prod} == set(APPLY_ORDER) - {"PersistentVolumeClaim"}


def test_every_seed_object_is_rendered(prod: list[dict[str, Any]]) -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in prod}
    expected = {
        ("Namespace", "tradewise-ai"),
        ("Deployment", "tradewise-api-deployment"),
        ("Deployment", "tradewise-worker-deployment"),
        ("Deployment", "tradewise-precompute-deployment"),
        ("Deployment", "tradewise-maintenance-deployment"),
        ("StatefulSet", "postgres"),
        ("StatefulSet", "redis"),
        ("Service", "tradewise-api-service"),
        ("Service", "postgres-service"),
        ("Service", "postgres-headless"),
        ("Service", "redis-service"),
        ("Service", "redis-headless"),
        ("HorizontalPodAutoscaler", "tradewise-api-hpa"),
        ("HorizontalPodAutoscaler", "tradewise-worker-hpa"),
        ("Ingress", "tradewise-ingress"),
        ("ConfigMap", "tradewise-config"),
        ("ConfigMap", "tradewise-grafana-dashboards"),
        ("ConfigMap", "tradewise-prometheus-adapter-rules"),
        ("ServiceMonitor", "tradewise-api"),
        ("PrometheusRule", "tradewise-alerts"),
        ("CronJob", "tradewise-scale-market-open"),
        ("CronJob", "tradewise-scale-after-close"),
    }
    assert expected <= names
    assert not [o for o in prod if o["kind"] == "Secret"]


def test_every_object_carries_the_contract_labels(prod: list[dict[str, Any]]) -> None:
    for obj in prod:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "tradewise"
        assert labels["app.kubernetes.io/part-of"] == "tradewise"
        assert labels["app.kubernetes.io/managed-by"] == "tradewise"
        assert labels["tradewise.io/environment"] == "prod"
        assert labels["app.kubernetes.io/component"]


def test_hpa_managed_deployments_have_no_replicas(prod: list[dict[str, Any]]) -> None:
    assert "replicas" not in by(prod, "Deployment", "tradewise-api-deployment")["spec"]
    assert "replicas" not in by(prod, "Deployment", "tradewise-worker-deployment")["spec"]
    assert by(prod, "Deployment", "tradewise-precompute-deployment")["spec"]["replicas"] == 1
    assert by(prod, "StatefulSet", "postgres")["spec"]["replicas"] == 1


def test_hpas_have_the_seed_bounds_metrics_and_behavior(prod: list[dict[str, Any]]) -> None:
    api = by(prod, "HorizontalPodAutoscaler", "tradewise-api-hpa")["spec"]
    assert (api["minReplicas"], api["maxReplicas"]) == (3, 20)
    metrics = {m["type"] + "/" + m.get("resource", {}).get("name", ""): m for m in api["metrics"]}
    assert metrics["Resource/cpu"]["resource"]["target"]["averageUtilization"] == 70
    assert metrics["Resource/memory"]["resource"]["target"]["averageUtilization"] == 80
    pods = metrics["Pods/"]["pods"]
    assert pods["metric"]["name"] == "http_request_duration_seconds_p95"
    assert pods["target"] == {"type": "AverageValue", "averageValue": "500m"}
    up, down = api["behavior"]["scaleUp"], api["behavior"]["scaleDown"]
    assert up["stabilizationWindowSeconds"] == 60
    assert {(p["type"], p["value"], p["periodSeconds"]) for p in up["policies"]} == {
        ("Percent", 50, 60),
        ("Pods", 5, 60),
    }
    assert up["selectPolicy"] == "Max"
    assert down["stabilizationWindowSeconds"] == 300
    assert down["policies"] == [{"type": "Percent", "value": 10, "periodSeconds": 60}]

    worker = by(prod, "HorizontalPodAutoscaler", "tradewise-worker-hpa")["spec"]
    assert (worker["minReplicas"], worker["maxReplicas"]) == (2, 10)
    targets = [m for m in worker["metrics"] if m["type"] == "Resource"]
    assert [t["resource"]["target"]["averageUtilization"] for t in targets] == [75, 85]
    (queue,) = [m for m in worker["metrics"] if m["type"] == "External"]
    assert queue["external"]["metric"]["name"] == "tradewise_task_queue_length"
    assert queue["external"]["target"] == {"type": "AverageValue", "averageValue": "5"}
    assert worker["behavior"] == api["behavior"]


def test_staging_overrides_the_hpa_bounds(config: Config) -> None:
    staging = render_environment(config, "staging", tag=TAG)
    api = by(staging, "HorizontalPodAutoscaler", "tradewise-api-hpa")["spec"]
    assert (api["minReplicas"], api["maxReplicas"]) == (2, 6)
    assert by(staging, "Ingress", "tradewise-ingress")["spec"]["tls"] == [
        {"hosts": ["staging.tradewise.example.com"], "secretName": "tradewise-staging-tls"}
    ]


def test_resources_storage_and_qos_follow_the_seed(prod: list[dict[str, Any]]) -> None:
    api = container(by(prod, "Deployment", "tradewise-api-deployment"))["resources"]
    assert api == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "1000m", "memory": "2Gi"},
    }
    worker = container(by(prod, "Deployment", "tradewise-worker-deployment"))["resources"]
    assert worker["limits"] == {"cpu": "500m", "memory": "1Gi"}
    postgres = by(prod, "StatefulSet", "postgres")
    res = container(postgres)["resources"]
    assert res["requests"] == res["limits"]  # Guaranteed
    claim = postgres["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
    assert claim == {"storage": "20Gi"}
    redis = by(prod, "StatefulSet", "redis")
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "5Gi"
    }
    assert container(redis)["resources"]["limits"] == {"cpu": "250m", "memory": "512Mi"}


def test_containers_run_the_contract_commands_and_probes(prod: list[dict[str, Any]]) -> None:
    api = container(by(prod, "Deployment", "tradewise-api-deployment"))
    assert api["command"] == ["tradewise-api"]
    assert api["image"] == f"registry.example.com/tradewise/tradewise-ai:{TAG}"
    assert {"name": "BIND", "value": "0.0.0.0:8000"} in api["env"]
    # pod-local readiness: a Redis or database outage must not empty the Service
    assert api["readinessProbe"]["httpGet"]["path"] == "/api/health/serving"
    assert api["livenessProbe"]["httpGet"]["path"] == "/api/health"
    assert api["startupProbe"]["httpGet"]["path"] == "/api/health"
    worker = container(by(prod, "Deployment", "tradewise-worker-deployment"))
    assert worker["command"] == ["tradewise-worker"]
    assert worker["image"] == f"registry.example.com/tradewise/tradewise-ai-worker:{TAG}"
    assert worker["livenessProbe"]["exec"]["command"] == ["tradewise-healthcheck", "worker"]
    pre = container(by(prod, "Deployment", "tradewise-precompute-deployment"))
    assert pre["command"] == ["tradewise-precompute"]
    assert pre["image"] == worker["image"]
    assert pre["readinessProbe"]["exec"]["command"] == ["tradewise-healthcheck", "precompute"]
    pg = container(by(prod, "StatefulSet", "postgres"))
    assert pg["image"] == "postgres:15"
    assert "pg_isready" in " ".join(pg["livenessProbe"]["exec"]["command"])
    assert container(by(prod, "StatefulSet", "redis"))["readinessProbe"]["exec"]["command"] == [
        "redis-cli",
        "ping",
    ]


def test_secrets_are_referenced_never_rendered(prod: list[dict[str, Any]]) -> None:
    api = container(by(prod, "Deployment", "tradewise-api-deployment"))
    assert {"secretRef": {"name": "tradewise-secrets"}} in api["envFrom"]
    pg_env = {e["name"]: e for e in container(by(prod, "StatefulSet", "postgres"))["env"]}
    assert pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "tradewise-secrets",
        "key": "POSTGRES_PASSWORD",
    }
    assert "value" not in pg_env["POSTGRES_PASSWORD"]


def test_every_pod_is_hardened(prod: list[dict[str, Any]]) -> None:
    pods = [o for o in prod if o["kind"] in ("Deployment", "StatefulSet")]
    assert len(pods) == 6
    for obj in pods:
        spec = obj["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])
    api_pod = by(prod, "Deployment", "tradewise-api-deployment")["spec"]["template"]["spec"]
    assert api_pod["securityContext"]["runAsUser"] == 1000


def test_network_policies_fence_the_data_stores(prod: list[dict[str, Any]]) -> None:
    deny = by(prod, "NetworkPolicy", "tradewise-default-deny-ingress")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    pg = by(prod, "NetworkPolicy", "tradewise-postgres-ingress")["spec"]
    (expr,) = pg["ingress"][0]["from"][0]["podSelector"]["matchExpressions"]
    assert expr["values"] == ["api", "worker", "precompute"]
    assert pg["ingress"][0]["ports"] == [{"port": 5432, "protocol": "TCP"}]
    api = by(prod, "NetworkPolicy", "tradewise-api-ingress")["spec"]
    namespaces = [
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in api["ingress"][0]["from"]
    ]
    assert namespaces == ["ingress-nginx", "monitoring"]


def test_alerts_carry_the_seed_thresholds(prod: list[dict[str, Any]]) -> None:
    groups = by(prod, "PrometheusRule", "tradewise-alerts")["spec"]["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"]}
    critical = {a for a, r in alerts.items() if r["labels"]["severity"] == "critical"}
    warning = {a for a, r in alerts.items() if r["labels"]["severity"] == "warning"}
    assert critical == {
        "TradewiseHighErrorRate",
        "TradewiseDatabaseDown",
        "TradewiseHighResponseTime",
        "TradewisePodCrashLooping",
    }
    assert warning == {
        "TradewiseHighCPU",
        "TradewiseLowCacheHitRate",
        "TradewiseQueueBacklog",
        "TradewiseStorageUsage",
    }
    expected = {
        "TradewiseHighErrorRate": ("> 0.05", "2m"),
        "TradewiseHighResponseTime": ("> 0.5", "5m"),
        "TradewisePodCrashLooping": ("[15m]) > 3", None),
        "TradewiseHighCPU": ("> 0.7", "5m"),
        "TradewiseLowCacheHitRate": ("< 0.5", "10m"),
        "TradewiseQueueBacklog": ("> 50", "5m"),
        "TradewiseStorageUsage": ("> 0.85", "5m"),
    }
    for name, (threshold, duration) in expected.items():
        assert threshold in alerts[name]["expr"], name
        assert alerts[name].get("for") == duration, name
    assert 'namespace="tradewise-ai"' in alerts["TradewiseHighErrorRate"]["expr"]
    assert 'status=~"5.."' in alerts["TradewiseHighErrorRate"]["expr"]
    assert "tradewise_database_up" in alerts["TradewiseDatabaseDown"]["expr"]


def test_dashboards_are_four_valid_grafana_documents(prod: list[dict[str, Any]]) -> None:
    cm = by(prod, "ConfigMap", "tradewise-grafana-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    boards = {k: json.loads(v) for k, v in cm["data"].items()}
    titles = sorted(b["title"] for b in boards.values())
    assert titles == [
        "TradeWise / Application Performance",
        "TradeWise / Business Metrics",
        "TradeWise / Resource Utilization",
        "TradeWise / Scaling Behavior",
    ]
    for board in boards.values():
        assert len(board["panels"]) >= 4
        assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
        assert all(t["expr"] for p in board["panels"] for t in p["targets"])


def test_adapter_rule_produces_the_hpa_metric(prod: list[dict[str, Any]]) -> None:
    import yaml

    cm = by(prod, "ConfigMap", "tradewise-prometheus-adapter-rules")
    rules = yaml.safe_load(cm["data"]["config.yaml"])
    assert rules["rules"][0]["name"]["as"] == "http_request_duration_seconds_p95"
    assert "histogram_quantile(0.95" in rules["rules"][0]["metricsQuery"]
    assert rules["externalRules"][0]["name"]["as"] == "tradewise_task_queue_length"


def test_cronjobs_scale_by_profile_with_a_narrow_role(prod: list[dict[str, Any]]) -> None:
    job = by(prod, "CronJob", "tradewise-scale-market-open")["spec"]
    assert job["schedule"] == "15 9 * * 1-5"
    assert job["timeZone"] == "America/New_York"
    assert job["concurrencyPolicy"] == "Forbid"
    pod = job["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "tradewise-scaler"
    assert pod["containers"][0]["command"] == [
        "tradewise", "scale", "traffic", "high", "--schedule", "market-open", "--env", "prod",
        "--yes", "--wait-for-lock=8m",
    ]  # fmt: skip
    assert pod["containers"][0]["image"].endswith(f"tradewise-ai:{TAG}")
    role = by(prod, "Role", "tradewise-scaler")
    grants = {(r, tuple(rule["verbs"])) for rule in role["rules"] for r in rule["resources"]}
    assert grants == {
        ("deployments", ("get", "patch")),
        ("deployments/scale", ("get", "patch")),
        ("horizontalpodautoscalers", ("get", "patch")),
        ("leases", ("create",)),  # the release lock only: create (RBAC cannot name it) ...
        ("leases", ("get", "update", "delete")),  # ... and the rest on its name alone
    }
    binding = by(prod, "RoleBinding", "tradewise-scaler")
    assert binding["subjects"][0]["name"] == "tradewise-scaler"


def test_the_ingress_routes_public_routes_of_the_app_only(prod: list[dict[str, Any]]) -> None:
    from app.api import ROUTES
    from tradewise_ops.core.policy import OPERATOR_PATHS

    routes = {rule for rule, *_ in ROUTES}
    ingress = by(prod, "Ingress", "tradewise-ingress")
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    published = {p["path"] for p in paths}
    assert published <= routes, published - routes  # a renamed route would 404 at the edge
    assert {"/api/stock-analysis", "/api/health"} <= published
    assert not published & set(OPERATOR_PATHS)
    assert set(OPERATOR_PATHS) <= routes
    assert all(p["pathType"] == "Exact" for p in paths)


def test_maintenance_switches_the_ingress_backend(config: Config, prod: list[dict]) -> None:
    def backend(ingress: dict[str, Any]) -> str:
        return ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]

    normal = by(prod, "Ingress", "tradewise-ingress")
    assert backend(normal) == "tradewise-api-service"
    assert normal["metadata"]["annotations"]["tradewise.io/maintenance"] == "off"
    on = render_ingress(config, "prod", maintenance=True)
    assert backend(on) == "tradewise-maintenance-service"
    assert on["metadata"]["annotations"]["tradewise.io/maintenance"] == "on"
    assert render_ingress(config, "prod", maintenance=False) == normal
    full = render_environment(config, "prod", tag=TAG, maintenance=True)
    assert by(full, "Ingress", "tradewise-ingress") == on
    page = by(prod, "ConfigMap", "tradewise-maintenance-page")["data"]
    assert "return 503" in page["default.conf"]
    assert "maintenance" in page["maintenance.html"]


@pytest.mark.parametrize("tag", [None, "latest"])
def test_prod_refuses_a_missing_or_latest_tag(config: Config, tag: str | None) -> None:
    with pytest.raises(BadInputError, match="requires a pinned image tag"):
        render_environment(config, "prod", tag=tag)


def test_staging_without_a_tag_uses_latest(config: Config) -> None:
    objects = render_environment(config, "staging")
    api = container(by(objects, "Deployment", "tradewise-api-deployment"))
    assert api["image"].endswith("tradewise-ai:latest")
    assert validate(objects, "1.37", require_pinned=False) == []


def test_digests_pin_images_even_without_a_tag(config: Config) -> None:
    objects = render_environment(config, "prod", image_digests={"api": DIGEST, "worker": DIGEST})
    api = container(by(objects, "Deployment", "tradewise-api-deployment"))
    assert api["image"] == f"registry.example.com/tradewise/tradewise-ai@{DIGEST}"
    assert validate(objects, "1.37") == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tag": "-bad"}, "image tag '-bad' is not valid"),
        ({"tag": "v1", "image_digests": {"api": "sha256:abc"}}, "digest 'sha256:abc'"),
        ({"tag": "v1", "image_digests": {"redis": DIGEST}}, "only api and worker"),
        ({"tag": "v1", "k8s_version": "1.26"}, r"use one of 1\.27 to 1\.\d+"),
    ],
)
def test_bad_render_input_is_refused(config: Config, kwargs: dict, match: str) -> None:
    with pytest.raises(BadInputError, match=match):
        render_environment(config, "prod", **kwargs)


@pytest.mark.parametrize("env", ["local", "compose"])
def test_non_kubernetes_environments_have_no_manifests(config: Config, env: str) -> None:
    with pytest.raises(BadInputError, match="Kubernetes environments: staging, prod"):
        render_environment(config, env, tag=TAG)


def test_manifest_files_are_numbered_in_apply_order(prod: list[dict[str, Any]]) -> None:
    files = manifest_files(prod)
    assert files[0][0] == "01-namespace-tradewise-ai.yaml"
    assert files[-1][0] == f"{len(prod):02d}-cronjob-tradewise-scale-market-open.yaml"
    assert "".join(text for _, text in files) == to_yaml_stream(prod)


def test_without_autoscaling_the_deployment_keeps_its_replicas() -> None:
    import yaml

    from tradewise_ops.core.config import parse_config

    doc = yaml.safe_load(data_path("tradewise.yaml").read_text(encoding="utf-8"))
    doc["environments"]["staging"]["components"]["api"] = {"autoscaling": None, "replicas": 4}
    config = parse_config(doc, environ={})
    objects = render_environment(config, "staging", tag=TAG)
    assert by(objects, "Deployment", "tradewise-api-deployment")["spec"]["replicas"] == 4
    hpas = [o["metadata"]["name"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    assert hpas == ["tradewise-worker-hpa"]
    assert by(objects, "PodDisruptionBudget", "tradewise-api-pdb")["spec"]["maxUnavailable"] == 1
    assert validate(objects, "1.37", require_pinned=False) == []
