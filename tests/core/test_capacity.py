"""``core.capacity``: the stepped load, judging steps, replicas per profile, nodes' allocatable."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tradewise_ops.core.capacity import (
    allocatable_check,
    hpa_ceiling,
    measure_step,
    parse_band,
    per_replica_rps,
    profile_needs,
    replicas_needed,
    schedulable_nodes,
    step_spec,
    step_users,
    stop_reason,
)
from tradewise_ops.core.config import Slo, load_config
from tradewise_ops.core.loadplan import TaskSpec
from tradewise_ops.core.loadreport import EndpointCounts, Interval
from tradewise_ops.errors import BadInputError

CFG = load_config(None, environ={})
STAGING = CFG.environment("staging")
SLO = Slo(p95_ms=500, error_rate=0.01)


def interval(
    i: int, stage: str, users: int, requests: int, ms: float, failures: int = 0
) -> Interval:
    counts = EndpointCounts(requests=requests, failures=failures)
    counts.latency.add(ms, requests)
    return Interval(i, float(i), i + 1.0, users, {"/api/health": counts}, stage)


# -- stepping ---------------------------------------------------------------------------------
def test_steps_double_the_users_within_the_bound() -> None:
    assert step_users(20, 5) == [1, 2, 4, 8]
    assert step_users(9, 4) == [1, 2]
    spec = step_spec("http://127.0.0.1:1", [TaskSpec("/api/health", ("/api/health",))], 12, 3)
    assert [(s.name, s.users, s.duration_seconds) for s in spec.stages] == [
        ("step-1", 1, 3),
        ("step-2", 2, 3),
        ("step-3", 4, 3),
        ("step-4", 8, 3),
    ]
    assert spec.duration_seconds == 12 and spec.wait.kind == "constant" and spec.wait.seconds == 0
    with pytest.raises(BadInputError, match="shorter than one step"):
        step_users(3, 5)
    with pytest.raises(BadInputError, match="at least 2 seconds"):
        step_users(10, 1)


def test_a_step_leaves_out_its_first_interval() -> None:
    ivs = [interval(0, "step-2", 2, 10, 900.0), interval(1, "step-2", 2, 100, 20.0),
           interval(2, "step-2", 2, 120, 30.0, failures=1)]  # fmt: skip
    step = measure_step("step-2", ivs, SLO)
    assert (step.requests, step.failures, step.users) == (220, 1, 2)
    assert step.rps == pytest.approx(110.0)
    assert step.p95_ms == pytest.approx(30.0, rel=0.01)
    assert step.within_slo  # the slow first second (users starting) is not counted
    slow = measure_step("s", [interval(0, "s", 1, 5, 10.0), interval(1, "s", 1, 5, 800.0)], SLO)
    assert not slow.within_slo


def test_stepping_stops_on_the_slo_or_a_plateau() -> None:
    def step(rps: float, ok: bool = True) -> Any:
        base = measure_step("s", [interval(0, "s", 1, 1, 1.0), interval(1, "s", 1, 1, 1.0)], SLO)
        return dataclasses.replace(base, rps=rps, within_slo=ok)

    assert stop_reason([step(100), step(190)]) is None
    assert stop_reason([step(100), step(190), step(300, ok=False)]) == "slo"
    assert stop_reason([step(100), step(190), step(330)]) is None
    assert stop_reason([step(100), step(190), step(195), step(196)]) is None  # noise, maybe
    assert stop_reason([step(100), step(190), step(195), step(196), step(150)]) == "plateau"
    assert stop_reason([step(100), step(190), step(150), step(196), step(200)]) is None
    steps = [step(100), step(190), step(400, ok=False)]
    assert per_replica_rps(steps) == 190
    assert per_replica_rps(steps, replicas=2) == 95
    assert per_replica_rps([step(50, ok=False)]) is None


# -- profiles ---------------------------------------------------------------------------------
def test_bands() -> None:
    assert parse_band("0-100") == (0, 100)
    assert parse_band("1000+") == (1000, None)
    assert parse_band(" 300 ") == (300, 300)
    for bad in ("lots", "", "500-100"):
        with pytest.raises(BadInputError):
            parse_band(bad, "profiles.x.rps")


def test_replicas_needed_for_each_profile_of_the_guide() -> None:
    assert replicas_needed(500, 100, 30) == 7  # 650 / 100
    assert replicas_needed(100, 130, 30) == 1  # exactly 130 / 130
    needs = {n.name: n for n in profile_needs(CFG.profiles.values(), STAGING, 100, 30)}
    assert {k: (v.replicas, v.replicas_needed, v.ok) for k, v in needs.items()} == {
        "low": (2, 2, True),
        "medium": (5, 7, False),
        "high": (10, 13, False),
        "peak": (15, 13, True),  # 1000+: at least 1000 req/s
    }
    assert (
        needs["medium"].note()
        == "500 req/s needs 7, above the HPA's ceiling of 6 (the profile sets 5)"
    )
    prod = {
        n.name: n for n in profile_needs(CFG.profiles.values(), CFG.environment("prod"), 100, 30)
    }
    assert prod["medium"].note() == (
        "500 req/s needs 7, the profile sets 5: the HPA can add 2 (ceiling 20), only after a "
        "scale-up"
    )
    assert not prod["medium"].ok  # the profile itself is short, whatever the HPA may add
    assert needs["high"].hpa_max == 10  # staging's ceiling 6, raised to the profile's 10
    assert "above the HPA's ceiling of 10" in needs["high"].note()
    assert "at least 1000 req/s needs 13" in needs["peak"].note()
    assert hpa_ceiling(CFG.profile("low"), CFG.environment("prod")) == 20


# -- nodes ------------------------------------------------------------------------------------
def node(name: str, cpu: str, memory: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": dict(extra.get("spec", {})),
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": extra.get("ready", "True")}],
        },
    }
    return doc


def test_which_nodes_take_new_pods() -> None:
    nodes = [
        node("a", "3900m", "15Gi"),
        node("cp", "2", "8Gi", spec={"taints": [{"key": "node-role", "effect": "NoSchedule"}]}),
        node("cordoned", "4", "16Gi", spec={"unschedulable": True}),
        node("sick", "4", "16Gi", ready="False"),
    ]
    rooms, skipped = schedulable_nodes(nodes)
    assert [(r.name, r.cpu_m, r.memory) for r in rooms] == [("a", 3900, 15 * 2**30)]
    assert skipped == ["cp (taint node-role:NoSchedule)", "cordoned (cordoned)", "sick (not Ready)"]


def test_peak_does_not_fit_two_small_nodes() -> None:
    nodes = [node("n1", "4", "16Gi"), node("n2", "4", "16Gi")]
    check = allocatable_check(CFG.profile("peak"), STAGING, nodes)
    # 15 API x 500m/512Mi + 6 workers x 250m/256Mi + precompute 250m/256Mi + postgres 500m/1Gi
    # + redis 100m/128Mi
    assert check.cpu_requested_m == 7500 + 1500 + 250 + 500 + 100
    assert check.cpu_allocatable_m == 8000
    assert not check.fits
    assert check.pending == {"postgres": 0, "redis": 0, "precompute": 0, "worker": 0, "api": 4}
    assert check.sentence() == (
        "peak needs 9.85 CPU and 10.4 GiB of requests; the 2 schedulable node(s) have 8 CPU "
        "and 32.0 GiB allocatable: 4 API pods would stay Pending"
    )
    low = allocatable_check(CFG.profile("low"), STAGING, nodes)
    assert low.fits and low.sentence().endswith("every pod fits")


def test_fragmented_nodes_leave_pods_pending_though_the_sum_fits() -> None:
    # 2.8 CPU allocatable for 2.35 CPU of requests, but after the database, Redis and precompute
    # no node has 500m left for the third API pod
    nodes = [node(f"n{i}", "700m", "4Gi") for i in range(4)]
    low = dataclasses.replace(CFG.profile("low"), api=3, workers=0)
    check = allocatable_check(low, STAGING, nodes)
    assert (check.cpu_requested_m, check.cpu_allocatable_m) == (2350, 2800)
    assert check.pending["api"] == 1 and not check.fits
    assert check.sentence().endswith("1 API pod would stay Pending")
