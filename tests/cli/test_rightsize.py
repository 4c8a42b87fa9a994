"""``tradewise rightsize`` against the emulator serving the metrics API (and a VPA), through the
real CLI: the recommendation, QoS, the monthly cost, exit codes, ``--write`` (golden file)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.k8s_emulator import Emulator
from tradewise_ops.cli.main import app
from tradewise_ops.core.config import load_config
from tradewise_ops.core.rightsize import pod_hourly_cost

pytest_plugins = ["tests.k8s_emulator.fixtures"]

NS = "tradewise-ai"
GOLDEN_CONFIG = Path(__file__).parents[1] / "core" / "golden" / "tradewise.yaml"
WRITE_GOLDEN = Path(__file__).parent / "golden" / "rightsize_write.yaml"
CONTAINER = {
    "api": "tradewise-api",
    "worker": "tradewise-worker",
    "precompute": "tradewise-precompute",
    "postgres": "postgres",
    "redis": "redis",
}
# what the pods use now: (cpu, memory) per pod; the API far below its 500m/512Mi requests
BUSY_ENOUGH = {
    "api": [("400m", "420Mi"), ("380m", "400Mi"), ("450m", "430Mi")],
    "worker": [("200m", "210Mi"), ("220m", "200Mi")],
    "precompute": [("200m", "220Mi")],
    "postgres": [("400m", "800Mi")],
    "redis": [("80m", "100Mi")],
}
IDLE_API = {**BUSY_ENOUGH, "api": [("40m", "150Mi"), ("60m", "160Mi"), ("50m", "170Mi")]}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tradewise.yaml"
    path.write_text(GOLDEN_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    return path


@pytest.fixture
def cluster(emulator: Emulator, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    for name in ("TRADEWISE_CONFIG", "TRADEWISE_ENV", "TRADEWISE_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    emulator.serve_metrics_api()
    return emulator


def _pods(emu: Emulator, usage: dict[str, list[tuple[str, str]]]) -> None:
    for component, pods in usage.items():
        for i, (cpu, memory) in enumerate(pods):
            labels = {
                "app.kubernetes.io/name": "tradewise",
                "app.kubernetes.io/component": component,
            }
            emu.put_pod_metrics(
                NS, f"{component}-{i}", labels, {CONTAINER[component]: (cpu, memory)}
            )
    # another app's pod in the namespace: not ours, not counted
    emu.put_pod_metrics(NS, "other-0", {"app": "other"}, {"tradewise-api": ("4", "8Gi")})


def _run(config: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--config", str(config), "-o", "json", "rightsize", *args])


def test_an_idle_api_is_over_provisioned_exit_1(cluster: Emulator, config_file: Path) -> None:
    _pods(cluster, IDLE_API)
    result = _run(config_file, "--env", "staging")
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["over_provisioned"] == ["api"]
    assert "over-provisioned by more than 50%: api" in result.stderr
    api = {c["component"]: c for c in doc["components"]}["api"]
    # p95 over 3 pods (nearest rank) = the max: 60m, 170Mi; requests x1.2, limits above max x1.25
    # (a CPU limit equal to its request is raised by the limit headroom: Burstable)
    assert api["usage"] == {
        "cpu_p95_m": 60.0, "cpu_max_m": 60.0, "memory_p95_mib": 170.0, "memory_max_mib": 170.0,
        "samples": 3, "source": "metrics-api",
    }  # fmt: skip
    assert api["recommended"] == {
        "requests": {"cpu": "75m", "memory": "204Mi"},
        "limits": {"cpu": "95m", "memory": "216Mi"},
    }
    assert api["qos"] == "Burstable"
    # the cost: per profile, each component's change of hourly cost (its requests, less the spot
    # discount where placed on spot) times its replicas in that profile (API and workers from
    # the profile, the others as configured) times the hours of a month
    cfg = load_config(config_file, environ={})
    staging = cfg.environment("staging")
    from tradewise_ops.core.config import Resources

    def res(d: dict[str, Any]) -> Resources:
        r, lim = d["requests"], d["limits"]
        return Resources(r["cpu"], r["memory"], lim["cpu"], lim["memory"])

    costs = {c["profile"]: c for c in doc["costs"]}
    for name, profile in cfg.profiles.items():
        expected = 0.0
        for c in doc["components"]:
            comp = staging.components[c["component"]]
            spot = comp.placement == "spot"
            delta = pod_hourly_cost(res(c["recommended"]), spot, cfg.cost) - pod_hourly_cost(
                comp.resources, spot, cfg.cost
            )
            replicas = {"api": profile.api, "worker": profile.workers}.get(
                c["component"], comp.replicas
            )
            expected += delta * replicas * cfg.cost.hours_per_month
        assert costs[name]["change_monthly"] == pytest.approx(expected, abs=0.01)
    # the API's own part by hand: 500m/512Mi -> 75m/204Mi at the default prices, 2 replicas (low)
    api_delta = (0.075 - 0.5) * 0.0316 + (204 - 512) / 1024 * 0.0042
    assert api_delta * 2 * 730 == pytest.approx(-21.5, abs=0.1)
    assert costs["peak"]["change_monthly"] < costs["low"]["change_monthly"] < 0
    assert "one sample per pod" in result.stderr


def test_guaranteed_database_and_burstable_rest_exit_0(
    cluster: Emulator, config_file: Path
) -> None:
    _pods(cluster, BUSY_ENOUGH)
    result = _run(config_file, "--env", "staging")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    by = {c["component"]: c for c in doc["components"]}
    pg = by["postgres"]["recommended"]
    assert pg["requests"] == pg["limits"] and by["postgres"]["qos"] == "Guaranteed"
    assert pg["limits"] == {"cpu": "500m", "memory": "1000Mi"}  # max 400m/800Mi x 1.25
    for name in ("api", "worker", "precompute", "redis"):
        rec = by[name]["recommended"]
        assert rec["requests"] != rec["limits"], name
    assert doc["over_provisioned"] == []
    assert by["api"]["vpa"] is None


def test_the_vpas_recommendation_is_read_where_served(cluster: Emulator, config_file: Path) -> None:
    _pods(cluster, BUSY_ENOUGH)
    cluster.serve_vpa()
    cluster.put(
        {
            "apiVersion": "autoscaling.k8s.io/v1",
            "kind": "VerticalPodAutoscaler",
            "metadata": {"name": "tradewise-api-vpa", "namespace": NS},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                              "name": "tradewise-api-deployment"},
                "updatePolicy": {"updateMode": "Off"},
            },
            "status": {"recommendation": {"containerRecommendations": [
                {"containerName": "tradewise-api", "target": {"cpu": "450m", "memory": "460Mi"},
                 "upperBound": {"cpu": "900m", "memory": "700Mi"}}]}},
        }
    )  # fmt: skip
    result = _run(config_file, "--env", "staging")
    assert result.exit_code == 0, result.stderr
    by = {c["component"]: c for c in json.loads(result.stdout)["components"]}
    assert by["api"]["vpa"] == {
        "cpu_target": "450m", "memory_target": "460Mi", "cpu_upper": "900m",
        "memory_upper": "700Mi",
    }  # fmt: skip
    assert by["worker"]["vpa"] is None


def test_write_keeps_comments_and_layout(cluster: Emulator, config_file: Path) -> None:
    before = config_file.read_text(encoding="utf-8")
    _pods(cluster, IDLE_API)
    result = _run(config_file, "--env", "staging", "--write")
    assert result.exit_code == 1, result.stderr  # still reports what it found
    after = config_file.read_text(encoding="utf-8")
    if os.environ.get("UPDATE_GOLDEN"):
        WRITE_GOLDEN.write_text(after, encoding="utf-8")
    assert after == WRITE_GOLDEN.read_text(encoding="utf-8")
    # every line of the original is still there, in order; only resource lines were added
    lines = iter(after.splitlines())
    for line in before.splitlines():
        assert any(line == other for other in lines), line
    cfg = load_config(config_file, environ={})
    assert cfg.environment("staging").components["api"].resources.cpu_request == "75m"
    assert cfg.environment("prod").components["api"].resources.cpu_request == "500m"
    # written, the recommendation is no longer over-provisioned
    again = _run(config_file, "--env", "staging")
    assert again.exit_code == 0, again.stderr


def test_no_metrics_api_is_unreachable(
    emulator: Emulator, kubeconfig: Path, config_file: Path
) -> None:
    result = _run(config_file, "--env", "staging")
    assert result.exit_code == 3
    assert "does not serve the metrics API" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--since", "7x"), "--since"),
    (("--source", "guess"), "use one of auto, metrics-api, prometheus"),
    (("--source", "prometheus"), "set monitoring.prometheus_url"),
])  # fmt: skip
def test_bad_input_exits_2(
    cluster: Emulator, config_file: Path, args: tuple[str, ...], message: str
) -> None:
    result = _run(config_file, "--env", "staging", *args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
