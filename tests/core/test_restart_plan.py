"""``core.restart``: which Deployment restarts, the plan's order, which pods are new."""

from __future__ import annotations

from typing import Any

import pytest

from tradewise_ops.core.restart import (
    RESTARTED_AT,
    components_for,
    is_restarted_pod,
    new_pods,
    pick_deployment,
    plan_local_restart,
    plan_restart,
    restart_patch,
)
from tradewise_ops.errors import BadInputError, NotFoundError

API = "tradewise-api-deployment"


def dep(name: str, component: str, slot: str | None = None) -> dict[str, Any]:
    labels = {"app.kubernetes.io/component": component}
    match = {"app.kubernetes.io/component": component}
    if slot:
        labels["tradewise.io/slot"] = match["tradewise.io/slot"] = slot
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": 3, "selector": {"matchLabels": match}},
    }


def svc(slot: str | None) -> dict[str, Any]:
    selector = {"app.kubernetes.io/component": "api"}
    if slot:
        selector["tradewise.io/slot"] = slot
    return {"kind": "Service", "spec": {"selector": selector}}


def hpa(target: str) -> dict[str, Any]:
    return {"spec": {"scaleTargetRef": {"kind": "Deployment", "name": target}}}


def test_targets() -> None:
    assert components_for("all") == ("api", "worker", "precompute")
    assert components_for(None) == ("api", "worker", "precompute")
    assert components_for("workers") == ("worker",)
    with pytest.raises(BadInputError, match="cannot restart 'redis'"):
        components_for("redis")


def test_the_api_is_the_live_slots_then_the_hpas_target() -> None:
    blue, green = dep(f"{API}-blue", "api", "blue"), dep(f"{API}-green", "api", "green")
    rolling = dep(API, "api")
    assert pick_deployment("api", [blue, green, rolling], svc("green"))[0] is green
    assert pick_deployment("api", [blue, green, rolling], svc("green"))[1] == "green"
    assert pick_deployment("api", [blue, rolling], svc(None), [hpa(f"{API}-blue")])[0] is blue
    assert pick_deployment("api", [blue, rolling], svc(None))[0] is rolling
    with pytest.raises(NotFoundError, match="selects slot green"):
        pick_deployment("api", [blue], svc("green"))
    with pytest.raises(NotFoundError, match="nothing to restart"):
        pick_deployment("worker", [rolling])


def test_plan_and_patch() -> None:
    deps = [dep(API, "api"), dep("tradewise-worker-deployment", "worker")]
    plan = plan_restart("staging", "ns", ["api", "worker"], "2025-01-01T00:00:00Z", deps)
    assert [(s.action, s.name) for s in plan.steps] == [
        ("patch", API),
        ("patch", "tradewise-worker-deployment"),
    ]
    assert plan.to_dict()["restarted_at"] == "2025-01-01T00:00:00Z"
    assert restart_patch("T") == {
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "T"}}}}
    }


def test_local_plan_is_one_process_at_a_time_api_first() -> None:
    running = {
        "precompute": "precompute",
        "worker-10": "worker",
        "worker-2": "worker",
        "api": "api",
    }
    plan = plan_local_restart("local", ["precompute", "worker", "api"], "T", running)
    assert [(s.action, s.name) for s in plan.steps] == [
        ("reload", "api"),
        ("stop-start", "worker-2"),
        ("stop-start", "worker-10"),
        ("stop-start", "precompute"),
    ]
    with pytest.raises(BadInputError, match="local up"):
        plan_local_restart("local", ["api"], "T", {})


def test_new_pods_carry_the_restart_time() -> None:
    workload = dep(API, "api")
    labels = {"app.kubernetes.io/component": "api"}
    pods = [
        {"metadata": {"name": "old", "labels": labels}},
        {"metadata": {"name": "new", "labels": labels, "annotations": {RESTARTED_AT: "T"}}},
        {"metadata": {"name": "earlier", "labels": labels, "annotations": {RESTARTED_AT: "S"}}},
        {
            "metadata": {
                "name": "going",
                "labels": labels,
                "annotations": {RESTARTED_AT: "T"},
                "deletionTimestamp": "x",
            }
        },
        {"metadata": {"name": "other", "labels": {}, "annotations": {RESTARTED_AT: "T"}}},
    ]
    assert [p["metadata"]["name"] for p in new_pods(workload, pods, "T")] == ["new"]
    keep = is_restarted_pod("T")
    assert [p["metadata"]["name"] for p in pods if keep(p)] == ["new", "going", "other"]
