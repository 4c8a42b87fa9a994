"""Golden files of the reports: the load-test and monitor HTML pages, their JSON, the Locust Jobs.

Fixed inputs, byte-for-byte outputs, so moving how a page is built (Python strings to Jinja
templates, one chart module) cannot change what a user gets. The monitor pages are rendered
from frozen report documents (``golden/reports/monitor-*.json``), so a change in the timeline
analysis shows up in the document test, not as a page diff. After a deliberate change:
UPDATE_GOLDEN=1 pytest tests/core/test_reports_golden.py, and review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.core.test_timeline import T0, Script, drive_scale_up
from tests.core.timeline_objects import event, hpa, pod
from tradewise_ops.core.config import Slo
from tradewise_ops.core.loadplan import (
    StageSpec,
    TaskSpec,
    WaitSpec,
    load_test_spec,
    performance_test_spec,
    render_locust_jobs,
)
from tradewise_ops.core.loadreport import (
    EndpointCounts,
    Interval,
    LoadReport,
    report_html,
    run_totals,
    timeseries_csv,
)
from tradewise_ops.core.monitor_report import combined_html, combined_report
from tradewise_ops.core.slo import evaluate
from tradewise_ops.core.timeline import LoadSample, analyze

GOLDEN = Path(__file__).parent / "golden" / "reports"


def check_golden(name: str, text: str) -> None:
    """``text`` equals the golden file ``name`` (UPDATE_GOLDEN=1 writes it instead)."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def as_json(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------------
# load-test and performance-test reports
# --------------------------------------------------------------------------------------------
def _counts(samples: list[float], failures: int = 0) -> EndpointCounts:
    counts = EndpointCounts(requests=len(samples), failures=failures)
    for ms in samples:
        counts.latency.add(ms)
    return counts


def _report(
    kind: str,
    intervals: list[Interval],
    *,
    max_p95_ms: float = 500,
    **extra: Any,
) -> LoadReport:
    totals = run_totals(intervals)
    fields: dict[str, Any] = {
        "target": "http://127.0.0.1:8000",
        "started_at": 1_800_000_000.0,
        "planned_seconds": 3.0,
        "users": 5,
        "spawn_rate": 5.0,
        "workers": 0,
        **extra,
    }
    return LoadReport(
        kind=kind,
        intervals=intervals,
        verdict=evaluate(
            requests=totals.requests,
            failures=totals.failures,
            p95_ms=totals.latency.percentile(95),
            max_p95_ms=max_p95_ms,
            max_error_rate=0.01,
        ),
        **fields,
    )


def load_met() -> LoadReport:
    """Two endpoints over three seconds, SLOs met, a few failures with HTML in the message."""
    intervals = [
        Interval(
            index=i,
            start=float(i),
            end=i + 1.0,
            users=5,
            endpoints={
                "/api/health": _counts([4.0 + i, 5.5, 6.25 * (i + 1)] * 20),
                "/api/stock-analysis?symbol=A&B": _counts(
                    [40.0 + 3 * i, 55.0, 120.0], failures=1 if i == 1 else 0
                ),
            },
        )
        for i in range(3)
    ]
    return _report(
        "load-test",
        intervals,
        errors=[
            {
                "name": "/api/stock-analysis?symbol=A&B",
                "error": "HTTPError('500 <boom> & \"quoted\"')",
                "occurrences": 1,
            }
        ],
        generator={"cpu_percent": 41.5, "processes": 1},
        settings=load_test_spec(
            host="http://127.0.0.1:8000",
            duration="3s",
            users=5,
            endpoint="/api/health",
            spawn_rate=5,
        ).settings(),
    )


def performance_missed() -> LoadReport:
    """Staged, aborted, SLOs missed; one silent interval (a gap) and a lone point (a dot)."""
    samples = {
        0: {"health": [20.0] * 30, "analysis_hot": [300.0, 450.0] * 10},
        1: {"health": [25.0] * 30, "analysis_hot": [700.0, 900.0, 1250.0] * 10},
        2: {},  # nothing completed: a gap in every line
        3: {"health": [30.0] * 5},
        4: {},
        5: {"analysis_cold": [1500.0] * 8},
    }
    stages = ["ramp", "ramp", "spike", "spike", "spike", "cool-down"]
    intervals = [
        Interval(
            index=i,
            start=float(i * 2),
            end=float(i * 2 + 2),
            users=10 * (i + 1),
            endpoints={
                name: _counts(ms, failures=len(ms) // 4 if name == "analysis_hot" else 0)
                for name, ms in samples[i].items()
            },
            stage=stages[i],
        )
        for i in range(6)
    ]
    perf_settings = {
        "tasks": [
            {"name": t.name, "paths": list(t.paths), "weight": t.weight}
            for t in (
                TaskSpec("health", ("/api/health",), 2),
                TaskSpec("analysis_hot", ("/api/stock-analysis?symbol=AAPL",), 5),
            )
        ],
        "wait": WaitSpec(kind="between", low=0.5, high=1.5).describe(),
        "interval_seconds": 2.0,
        "stages": [
            {"name": s.name, "seconds": s.duration_seconds, "users": s.users}
            for s in (StageSpec("ramp", 4, 20, 5), StageSpec("spike", 6, 50, 10))
        ],
    }
    return _report(
        "performance-test",
        intervals,
        planned_seconds=20.0,
        users=60,
        spawn_rate=2.5,
        workers=4,
        aborted=True,
        stopped_by="interrupt",
        settings=perf_settings,
    )


def empty_run() -> LoadReport:
    """Nothing was measured: no interval at all."""
    return _report("load-test", [], planned_seconds=10.0, stopped_by="target-unreachable")


LOAD_REPORTS: dict[str, Callable[[], LoadReport]] = {
    "load-met": load_met,
    "performance-missed": performance_missed,
    "empty": empty_run,
}


@pytest.mark.parametrize("name", sorted(LOAD_REPORTS))
def test_load_report_html_matches_golden(name: str) -> None:
    check_golden(f"{name}.html", report_html(LOAD_REPORTS[name]()))


@pytest.mark.parametrize("name", sorted(LOAD_REPORTS))
def test_load_report_json_and_csv_match_golden(name: str) -> None:
    """The document ``-o json`` prints (and report.json holds), and the time-series CSV."""
    report = LOAD_REPORTS[name]()
    check_golden(f"{name}.json", as_json(report.to_dict()))
    check_golden(f"{name}.csv", timeseries_csv(report))


# --------------------------------------------------------------------------------------------
# the monitor's combined report
# --------------------------------------------------------------------------------------------
def _under_load(s: Script) -> None:
    for second in range(0, 60, 5):
        busy = 10 <= second < 40
        s.builder.add(
            LoadSample(
                T0 + second,
                rps=400.0 if busy else 100.0,
                p95_ms=650.0 if busy else 120.0,
                error_rate=0.02 if second == 30 else 0.0,
                users=50,
                queue=None if second < 20 else second * 2,
            )
        )


def monitor_load_pass() -> dict[str, Any]:
    """A scale-up under load, an OOM kill and its recovery, the load test's own numbers."""
    s = Script()
    drive_scale_up(s)
    _under_load(s)
    s.at(57, "Pod", pod("api-0", ready=False, restarts=1, last_terminated="OOMKilled"))
    s.at(
        58,
        "Event",
        event("OOMKilling", "killed <api-0> & co", kind="Pod", name="api-0", type_="Warning"),
    )
    s.at(63, "Pod", pod("api-0", restarts=1, last_terminated="OOMKilled"))
    load = {
        "kind": "load-test",
        "target": "http://127.0.0.1:8000",
        "total": {"requests": 9000, "rps": 150.0},
        "verdict": {"sentence": "SLOs missed: p95 < 500 ms (650 ms) MISSED"},
    }
    return combined_report(
        s.builder.records, s.analyze(), Slo(), title="tradewise monitor <staging>", load=load
    )


def monitor_fail() -> dict[str, Any]:
    """The same scale-up held to a 30 s SLO: missed; no load test."""
    s = Script()
    drive_scale_up(s)
    slo = Slo(scale_up_seconds=30, p95_ms=800, error_rate=0.05)
    return combined_report(s.builder.records, s.analyze(slo=slo), slo)


def monitor_pending() -> dict[str, Any]:
    """A scale-up decided but not ready when monitoring ended, and a pod evicted."""
    s = Script()
    s.start()
    s.at(10, "HorizontalPodAutoscaler", hpa(cpu=85))
    s.at(20, "HorizontalPodAutoscaler", hpa(desired=6, cpu=85))
    s.at(22, "Pod", pod("api-1", ready=False, phase="Failed", reason="Evicted"))
    return combined_report(s.builder.records, s.analyze(end=60), Slo(), title="pending")


def monitor_empty() -> dict[str, Any]:
    """Nothing seen at all."""
    return combined_report([], analyze([]), Slo())


MONITOR_REPORTS: dict[str, Callable[[], dict[str, Any]]] = {
    "monitor-load-pass": monitor_load_pass,
    "monitor-fail": monitor_fail,
    "monitor-pending": monitor_pending,
    "monitor-empty": monitor_empty,
}


@pytest.mark.parametrize("name", sorted(MONITOR_REPORTS))
def test_monitor_report_document_matches_golden(name: str) -> None:
    """The combined report as data (what monitor.json / ``-o json`` carries)."""
    check_golden(f"{name}.json", as_json(MONITOR_REPORTS[name]()))


@pytest.mark.parametrize("name", sorted(MONITOR_REPORTS))
def test_monitor_report_html_matches_golden(name: str) -> None:
    """The page, from the frozen document (independent of the timeline analysis)."""
    doc = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    check_golden(f"{name}.html", combined_html(doc))


def test_a_frozen_document_renders_like_the_live_one() -> None:
    """Reading the document back from JSON changes nothing on the page."""
    doc = monitor_load_pass()
    assert combined_html(json.loads(as_json(doc))) == combined_html(doc)


# --------------------------------------------------------------------------------------------
# the in-cluster Locust run
# --------------------------------------------------------------------------------------------
def locust_load_test() -> list[dict[str, Any]]:
    spec = load_test_spec(
        host="http://tradewise-api-service.tradewise-ai.svc:8000",
        duration="2m",
        users=40,
        endpoint="/api/stock-analysis?symbol=AAPL",
        spawn_rate=8,
        wait=WaitSpec(kind="throughput", per_user=2.5),
    )
    return render_locust_jobs(
        spec,
        namespace="tradewise-ai",
        environment="staging",
        image="registry.example.com/tradewise/tradewise-ai:v1.2.3",
        run_id="20260101-abc123",
        workers=3,
    )


def locust_performance_test() -> list[dict[str, Any]]:
    from tradewise_ops.core.config import load_config

    perf = load_config(
        Path(__file__).parent / "golden" / "tradewise.yaml", environ={}
    ).performance_test
    spec = performance_test_spec(host="https://api.example.com", perf=perf, scale=0.5)
    return render_locust_jobs(
        spec,
        namespace="tradewise-ai",
        environment="prod",
        image="registry.example.com/tradewise/tradewise-ai@sha256:" + "ab" * 32,
        run_id="perf-1",
    )


LOCUST_JOBS: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "locust-load-test": locust_load_test,
    "locust-performance-test": locust_performance_test,
}


@pytest.mark.parametrize("name", sorted(LOCUST_JOBS))
def test_locust_jobs_match_golden(name: str) -> None:
    """The objects, and their keys' order as ``load-test --in-cluster --dry-run`` prints them."""
    import yaml

    objects = LOCUST_JOBS[name]()
    check_golden(f"{name}.json", as_json(objects))
    check_golden(f"{name}.yaml", yaml.safe_dump_all(objects, sort_keys=False))
