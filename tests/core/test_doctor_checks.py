"""``core.doctor``: the checks' edges, as data (the CLI tests provoke each finding live)."""

from __future__ import annotations

import datetime
from typing import Any

from tradewise_ops.core.doctor import (
    AppSample,
    DoctorFinding,
    check_app,
    check_hpas,
    check_pods,
    cpu_milli,
    report,
)

NOW = datetime.datetime(2025, 3, 3, 12, 0, tzinfo=datetime.UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - datetime.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(restarts: int, last_ago: float, created_ago: float, phase: str = "Running") -> dict:
    return {
        "metadata": {
            "name": "p",
            "creationTimestamp": stamp(created_ago),
            "labels": {"app.kubernetes.io/component": "worker"},
        },
        "spec": {"containers": [{"name": "c"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": "c",
                    "restartCount": restarts,
                    "state": {"running": {}},
                    "lastState": {
                        "terminated": {
                            "reason": "Error",
                            "exitCode": 1,
                            "finishedAt": stamp(last_ago),
                        }
                    },
                }
            ],
        },
    }


def test_restarts_count_only_within_the_window() -> None:
    assert [f.check for f in check_pods([pod(4, 60, 86400)], [], {}, NOW)] == ["pods.restarts"]
    assert check_pods([pod(4, 3600, 86400)], [], {}, NOW) == []  # long ago: not "lately"
    assert check_pods([pod(3, 60, 600)], [], {}, NOW) == []  # not more than 3
    young = check_pods([pod(5, 1000, 600)], [], {}, NOW)  # all within the pod's 10 minutes
    assert [f.check for f in young] == ["pods.restarts"]
    assert "pod created 10m ago" in young[0].evidence


def test_a_pod_pending_for_long_without_a_reason_is_named() -> None:
    stuck = pod(0, 0, 900, phase="Pending")
    stuck["status"]["containerStatuses"] = []
    (finding,) = check_pods([stuck], [], {}, NOW)
    assert finding.check == "pods.pending" and "since 15m ago" in finding.evidence[0]


def test_cpu_units_of_the_metrics_api() -> None:
    assert cpu_milli("250000000n") == 250.0
    assert cpu_milli("1500u") == 1.5
    assert cpu_milli("2") == 2000.0
    assert cpu_milli("bad") is None


def test_error_rate_warning_then_critical() -> None:
    def stats(errors: int, total: int) -> dict[str, Any]:
        by_status = {"200": total - errors, "503": errors}
        return {"requests": {"total": total, "by_status": by_status}, "latency_ms": {"p95": 1}}

    assert check_app(AppSample("x", stats(1, 100)), 500, 0.01) == []  # at the SLO: fine
    (warn,) = check_app(AppSample("x", stats(3, 100)), 500, 0.01)
    assert warn.severity == "warning"
    (crit,) = check_app(AppSample("x", stats(6, 100)), 500, 0.01)
    assert crit.severity == "critical"
    assert check_app(AppSample("x", stats(5, 10)), 500, 0.01) == []  # too few to judge


def test_an_hpa_below_its_ceiling_is_fine() -> None:
    hpa = {
        "metadata": {"name": "h"},
        "spec": {"maxReplicas": 10, "scaleTargetRef": {"name": "d"}},
        "status": {
            "currentReplicas": 4,
            "desiredReplicas": 4,
            "conditions": [
                {"type": "AbleToScale", "status": "True"},
                {"type": "ScalingActive", "status": "True"},
            ],
        },
    }
    assert check_hpas([hpa]) == []


def test_report_orders_worst_first() -> None:
    found = report(
        "e",
        "kubernetes",
        ["a", "b", "c"],
        [
            DoctorFinding("info", "c", "s", "m"),
            DoctorFinding("critical", "b", "s", "m"),
            DoctorFinding("warning", "a", "s", "m"),
        ],
    )
    assert [f.severity for f in found.findings] == ["critical", "warning", "info"]
    assert found.passed == [] and found.to_dict()["critical"] == 1
