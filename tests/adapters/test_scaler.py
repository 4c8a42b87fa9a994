"""``ClusterScaler`` against the emulator: what it reads, and the order of what it writes.

The emulator holds prod's rendered Deployments, HPAs and Ingress (real HTTP, a kubeconfig); the
plans come from ``core.scaling`` as a command builds them.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.k8s_emulator import Emulator
from tradewise_ops.adapters.scaler import ClusterScaler, scaler_for
from tradewise_ops.core.config import Config, load_config
from tradewise_ops.core.render import render_environment
from tradewise_ops.core.scaling import plan_emergency_down, plan_manual
from tradewise_ops.errors import NotFoundError

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
NS = "tradewise-ai"
API, API_HPA = "tradewise-api-deployment", "tradewise-api-hpa"
WORKER, WORKER_HPA = "tradewise-worker-deployment", "tradewise-worker-hpa"
NOW = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


@pytest.fixture
def config() -> Config:
    return load_config(ROOT / "tradewise.yaml", environ={})


@pytest.fixture
def scaler(emulator: Emulator, kubeconfig: Path, config: Config) -> Any:
    kinds = ("Deployment", "HorizontalPodAutoscaler", "Ingress")
    for obj in render_environment(config, "prod", tag="v1"):
        if obj["kind"] in kinds and obj["metadata"]["name"] != "tradewise-maintenance-deployment":
            emulator.put(obj)
    emulator.controllers.set_hpa(NS, API_HPA, 3)
    emulator.controllers.set_hpa(NS, WORKER_HPA, 2)
    emulator.reset_requests()
    with scaler_for(config.environment("prod"), config) as s:
        yield s


def writes(emu: Emulator) -> list[str]:
    return [
        f"{r.method} {r.path.split('/namespaces/' + NS)[-1]}"
        for r in emu.requests
        if r.method in ("POST", "PUT", "PATCH", "DELETE")
    ]


def test_read_follows_each_hpa_to_the_deployment_it_scales(
    scaler: ClusterScaler, emulator: Emulator
) -> None:
    assert isinstance(scaler, ClusterScaler)
    # after a blue-green switch the API HPA targets the live slot, whatever its name
    api = emulator.get("Deployment", NS, API)
    assert api is not None
    blue = copy.deepcopy(api)
    blue["metadata"] = {"name": f"{API}-blue", "namespace": NS}
    blue["spec"]["replicas"] = 7
    emulator.put(blue)
    hpa = emulator.get("HorizontalPodAutoscaler", NS, API_HPA)
    assert hpa is not None
    hpa["spec"]["scaleTargetRef"]["name"] = f"{API}-blue"
    emulator.put(hpa)
    live = scaler.read()
    assert (live["api"].name, live["api"].replicas) == (f"{API}-blue", 7)
    assert live["worker"].replicas == 2 and live["worker"].hpa is not None
    assert writes(emulator) == []  # reads only, and only by name (the CronJobs' Role: get, patch)
    assert {r.method for r in emulator.requests} == {"GET"}
    assert not any(r.path.endswith("/deployments") for r in emulator.requests)


def test_apply_writes_the_hpa_before_the_scale_before_the_annotations(
    scaler: ClusterScaler, emulator: Emulator, config: Config
) -> None:
    env = config.environment("prod")
    plan = plan_manual(env, "api", 8, scaler.read(), NOW)
    emulator.reset_requests()
    scaler.apply(plan)
    assert writes(emulator) == [
        f"PATCH /horizontalpodautoscalers/{API_HPA}",
        f"PATCH /deployments/{API}/scale",
        f"PATCH /deployments/{API}",
    ]
    assert emulator.get("Deployment", NS, API)["spec"]["replicas"] == 8  # type: ignore[index]
    bounds = emulator.get("HorizontalPodAutoscaler", NS, API_HPA)["spec"]  # type: ignore[index]
    assert (bounds["minReplicas"], bounds["maxReplicas"]) == (8, 20)


def test_maintenance_goes_first_and_needs_the_page(
    scaler: ClusterScaler, emulator: Emulator, config: Config
) -> None:
    env = config.environment("prod")
    plan = plan_emergency_down(env, scaler.read(), NOW, maintenance=True)
    emulator.reset_requests()
    with pytest.raises(NotFoundError, match="maintenance page is not deployed"):
        scaler.check(plan)
    assert writes(emulator) == []
    page = next(
        o
        for o in render_environment(config, "prod", tag="v1")
        if o["metadata"]["name"] == "tradewise-maintenance-deployment"
    )
    emulator.put(page)
    scaler.check(plan)
    emulator.reset_requests()
    steps: list[str] = []
    with scaler_for(env, config, on_step=steps.append) as announcing:
        announcing.apply(plan)
    done = writes(emulator)
    assert done[0] == "PATCH /ingresses/tradewise-ingress"  # users see the page before pods go
    assert steps == ["maintenance mode on for prod"]
    for component, hpa in ((API, API_HPA), (WORKER, WORKER_HPA)):
        assert done.index(f"PATCH /horizontalpodautoscalers/{hpa}") < done.index(
            f"PATCH /deployments/{component}/scale"
        )
    ingress = emulator.get("Ingress", NS, "tradewise-ingress")
    assert ingress is not None
    assert ingress["metadata"]["annotations"]["tradewise.io/maintenance"] == "on"
