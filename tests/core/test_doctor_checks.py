"""``core.doctor``: the checks' edges, as data (the CLI tests provoke each finding live)."""

from __future__ import annotations

import datetime
from typing import Any

from tradewise_ops.core.doctor import (
    AppSample,
    DoctorFinding,
    LocalSnapshot,
    ProcessState,
    check_app,
    check_hpas,
    check_pods,
    cpu_milli,
    diagnose_local,
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


# -- compose ----------------------------------------------------------------------------------
def compose_snapshot(**changes: Any) -> LocalSnapshot:
    snap = LocalSnapshot(
        environment="compose",
        url="http://127.0.0.1:8080",
        broker="redis",
        kind="compose",
        compose_command="docker-compose --file f.yml --project-name tradewise",
        services=["postgres", "redis", "api", "worker", "precompute", "nginx"],
        processes=[
            ProcessState(f"{s}-1", s, "running")
            for s in ("postgres", "redis", "api", "worker", "precompute", "nginx")
        ],
        ports={"nginx": (8080, True), "api": (8000, True), "postgres": (5432, True)},
        redis_ping="PONG",
        database_path="postgresql+psycopg://tradewise:***@127.0.0.1:5432/tradewise",
        database_check="ok",
        app=AppSample("http://127.0.0.1:8080", stats={}, readiness_status=200),
    )
    for key, value in changes.items():
        setattr(snap, key, value)
    return snap


def test_compose_healthy_passes_its_own_checks_not_the_local_ones() -> None:
    result = diagnose_local(compose_snapshot(), 500, 0.01)
    assert result.kind == "compose" and result.findings == ()
    assert "compose.database" in result.passed and "local.database" not in result.checks


def test_compose_not_up_is_one_finding_and_nothing_else_is_judged() -> None:
    result = diagnose_local(
        compose_snapshot(processes=[], database_check=None, app=None, ports={}), 500, 0.01
    )
    (finding,) = result.findings
    assert finding.check == "compose.containers" and finding.severity == "critical"
    assert finding.fix == "`tradewise local up --env compose`"
    assert result.checks == ("compose.containers",)


def test_compose_exited_container_missing_service_and_postgres_down() -> None:
    procs = [
        ProcessState("postgres-1", "postgres", "running"),
        ProcessState("redis-1", "redis", "running"),
        ProcessState("api-1", "api", "exited", exit_code=3, log_tail=["boom"]),
        ProcessState("worker-1", "worker", "running"),
        ProcessState("nginx-1", "nginx", "running"),
    ]
    result = diagnose_local(
        compose_snapshot(processes=procs, database_check="connection refused"), 500, 0.01
    )
    by_subject = {f.subject: f for f in result.findings}
    api = by_subject["container api-1"]
    assert api.severity == "critical" and "exited with code 3" in api.message
    assert "  | boom" in api.evidence
    assert "docker-compose --file f.yml --project-name tradewise up -d api" in api.fix
    missing = by_subject["service precompute"]
    assert missing.check == "compose.containers" and "no container" in missing.message
    (db,) = [f for f in result.findings if f.check == "compose.database"]
    assert db.evidence == (
        "SELECT 1 on postgresql+psycopg://tradewise:***@127.0.0.1:5432/tradewise: "
        "connection refused",
    )
    assert not any(f.check.startswith("local.") for f in result.findings)
