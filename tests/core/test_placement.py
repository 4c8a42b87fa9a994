"""Placement by price: spot tolerations and node affinity per cloud, PriorityClasses, the lint."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tradewise_ops.cli.main import app
from tradewise_ops.core import placement as pl
from tradewise_ops.core.config import Config, load_config, parse_config
from tradewise_ops.core.render import render_environment
from tradewise_ops.core.validate import validate
from tradewise_ops.errors import ConfigError

GOLDEN_CONFIG = Path(__file__).parent / "golden" / "tradewise.yaml"
ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = {
    "api": ("Deployment", "tradewise-api-deployment"),
    "worker": ("Deployment", "tradewise-worker-deployment"),
    "precompute": ("Deployment", "tradewise-precompute-deployment"),
    "postgres": ("StatefulSet", "postgres"),
    "redis": ("StatefulSet", "redis"),
}


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(GOLDEN_CONFIG, environ={})


def _pod(objects: list[dict[str, Any]], component: str) -> dict[str, Any]:
    kind, name = WORKLOADS[component]
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj["spec"]["template"]["spec"]


def _render(config: Config, env: str, cloud: str) -> list[dict[str, Any]]:
    environment = dataclasses.replace(config.environment(env), cloud=cloud)
    return render_environment(config, environment, tag="v1.2.3")


@pytest.mark.parametrize("cloud", ["gke", "eks", "aks", "none"])
def test_each_cloud_renders_valid_manifests_with_spot_only_where_allowed(
    config: Config, cloud: str
) -> None:
    objects = _render(config, "prod", cloud)
    assert validate(objects, config.kubernetes_version) == []
    assert validate(objects, "1.27") == []
    pool = pl.SPOT_POOLS.get(cloud)
    for component in WORKLOADS:
        pod = _pod(objects, component)
        spot = component in ("worker", "precompute")
        if pool is None:
            assert "affinity" not in pod and "tolerations" not in pod
            assert pl.on_spot(pod) is None
            continue
        node = pod["affinity"]["nodeAffinity"]
        if spot:
            (pref,) = node["preferredDuringSchedulingIgnoredDuringExecution"]
            assert pref["preference"]["matchExpressions"] == [
                {"key": pool.label, "operator": "In", "values": [pool.value]}
            ]
            assert pod["tolerations"] == [
                {"key": pool.label, "operator": "Equal", "value": pool.value,
                 "effect": "NoSchedule"}
            ]  # fmt: skip
            assert pl.on_spot(pod) == f"{cloud.upper()} spot"
        else:
            terms = node["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            assert terms == [
                {"matchExpressions": [
                    {"key": pool.label, "operator": "NotIn", "values": [pool.value]}]}
            ]  # fmt: skip
            assert "tolerations" not in pod
            assert pl.on_spot(pod) is None


def test_the_clouds_conventions() -> None:
    assert (pl.SPOT_POOLS["gke"].label, pl.SPOT_POOLS["gke"].value) == (
        "cloud.google.com/gke-spot", "true")  # fmt: skip
    assert (pl.SPOT_POOLS["eks"].label, pl.SPOT_POOLS["eks"].value) == (
        "eks.amazonaws.com/capacityType", "SPOT")  # fmt: skip
    assert (pl.SPOT_POOLS["aks"].label, pl.SPOT_POOLS["aks"].value) == (
        "kubernetes.azure.com/scalesetpriority", "spot")  # fmt: skip
    assert pl.SPOT_POOLS["aks"].tainted


def test_priority_classes_put_the_database_and_api_above_workers_above_precompute(
    config: Config,
) -> None:
    objects = _render(config, "prod", "gke")
    classes = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PriorityClass"}
    assert set(classes) == {"tradewise-critical", "tradewise-normal", "tradewise-batch"}
    assert all("namespace" not in c["metadata"] for c in classes.values())
    value = {
        component: classes[_pod(objects, component)["priorityClassName"]]["value"]
        for component in WORKLOADS
    }
    assert value["postgres"] == value["redis"] == value["api"] > value["worker"]
    assert value["worker"] > value["precompute"]
    assert classes["tradewise-batch"]["preemptionPolicy"] == "Never"
    assert not any(c["globalDefault"] for c in classes.values())
    # applied before any pod names them
    kinds = [o["kind"] for o in objects]
    assert kinds.index("PriorityClass") < kinds.index("StatefulSet")


def _raw() -> dict[str, Any]:
    return yaml.safe_load(GOLDEN_CONFIG.read_text(encoding="utf-8"))


def test_lint_finds_a_statefulset_on_spot(config: Config) -> None:
    raw = _raw()
    raw["environments"]["prod"]["components"] = {"postgres": {"placement": "spot"}}
    objects = render_environment(parse_config(raw), "prod", tag="v1")
    findings = [f for f in validate(objects, "1.37") if f.rule == "spot-placement"]
    assert [(f.kind, f.name) for f in findings] == [("StatefulSet", "postgres")]
    assert "GKE spot" in findings[0].message


def test_lint_finds_a_deployment_on_spot_without_a_pdb(config: Config) -> None:
    objects = _render(config, "prod", "eks")
    without = [
        o for o in objects
        if not (o["kind"] == "PodDisruptionBudget" and "worker" in o["metadata"]["name"])
    ]  # fmt: skip
    findings = [f for f in validate(without, "1.37") if f.rule == "spot-placement"]
    assert [(f.kind, f.name) for f in findings] == [("Deployment", "tradewise-worker-deployment")]
    assert "no PodDisruptionBudget" in findings[0].message
    # a PDB in another namespace does not count
    moved = copy.deepcopy(objects)
    for o in moved:
        if o["kind"] == "PodDisruptionBudget" and "worker" in o["metadata"]["name"]:
            o["metadata"]["namespace"] = "elsewhere"
    assert any(f.rule == "spot-placement" for f in pl.placement_findings(moved))


def test_a_hand_written_spot_selector_is_recognised() -> None:
    assert pl.on_spot({"nodeSelector": {"eks.amazonaws.com/capacityType": "SPOT"}}) == "EKS spot"
    aks = {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Exists"}
    assert pl.on_spot({"tolerations": [aks]}) == "AKS spot"
    assert pl.on_spot({"nodeSelector": {"eks.amazonaws.com/capacityType": "ON_DEMAND"}}) is None


def test_lint_command_exits_1_on_spot_findings(tmp_path: Path) -> None:
    raw = _raw()
    raw["environments"]["staging"]["components"]["redis"] = {"placement": "spot"}
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(path), "-o", "json", "lint", "staging"])
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert [(f["kind"], f["name"], f["rule"]) for f in doc] == [
        ("StatefulSet", "redis", "spot-placement")
    ]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("defaults", "cloud"), "azure", "defaults.cloud is 'azure'; expected one of none, gke"),
        (("defaults", "components", "worker", "placement"), "cheap", "one of spot, on-demand"),
        (("defaults", "components", "api", "priority"), "high", "one of critical, normal, batch"),
    ],
)
def test_bad_placement_keys_name_the_key(path: tuple[str, ...], value: str, message: str) -> None:
    raw = _raw()
    node = raw
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_the_shipped_defaults() -> None:
    cfg = load_config(ROOT / "tradewise.yaml", environ={})
    prod = cfg.environment("prod")
    assert prod.cloud == "none"
    assert {n: c.placement for n, c in prod.components.items()} == dict(pl.DEFAULT_PLACEMENT)
    assert {n: c.priority for n, c in prod.components.items()} == dict(pl.DEFAULT_PRIORITY)


def test_a_vpa_in_recommendation_mode_per_deployment(config: Config) -> None:
    """Right-sizing (issue 16): VPAs that only recommend, checked by their CRD schema."""
    from tradewise_ops.core.validate import schema_findings

    objects = _render(config, "prod", "none")
    vpas = {o["metadata"]["name"]: o for o in objects if o["kind"] == "VerticalPodAutoscaler"}
    deployments = {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"}
    assert set(vpas) == {"tradewise-api-vpa", "tradewise-worker-vpa", "tradewise-precompute-vpa"}
    for vpa in vpas.values():
        assert vpa["spec"]["updatePolicy"] == {"updateMode": "Off"}
        assert vpa["spec"]["targetRef"]["name"] in deployments
    bad = copy.deepcopy(vpas["tradewise-api-vpa"])
    bad["spec"]["updatePolicy"]["updateMode"] = "Sometimes"
    bad["spec"]["surprise"] = 1
    assert {f.path for f in schema_findings([bad], "1.37")} == {
        "spec",
        "spec.updatePolicy.updateMode",
    }
