"""What the monitor shows: live tables, the summary, the combined load-vs-replicas report."""

from __future__ import annotations

import re

from tests.core.test_timeline import T0, Script, drive_scale_up
from tests.core.timeline_objects import API, API_HPA, event, hpa, pod
from tradewise_ops.core.config import Slo
from tradewise_ops.core.monitor_report import (
    change_line,
    combined_html,
    combined_report,
    deployment_rows,
    event_rows,
    hpa_rows,
    live_tables,
    process_rows,
    summary_tables,
    verdict_sentence,
)
from tradewise_ops.core.timeline import (
    LoadSample,
    ProcessSample,
    TimelineBuilder,
    analyze,
    hpa_record,
    pod_record,
)


def scenario() -> Script:
    """A scale-up under load, a pod failure, and the load's own numbers."""
    s = Script()
    drive_scale_up(s)
    for second in range(0, 60, 5):
        busy = 10 <= second < 40
        s.builder.add(
            LoadSample(
                T0 + second,
                rps=400.0 if busy else 100.0,
                p95_ms=650.0 if busy else 120.0,
                error_rate=0.0,
                users=50,
            )
        )
    s.at(57, "Pod", pod("api-0", ready=False, restarts=1, last_terminated="OOMKilled"))
    s.at(
        58, "Event", event("OOMKilling", "killed api-0", kind="Pod", name="api-0", type_="Warning")
    )
    s.at(63, "Pod", pod("api-0", restarts=1, last_terminated="OOMKilled"))
    return s


def test_live_tables_show_hpas_with_metrics_deployments_pods_and_events() -> None:
    s = Script()
    s.start()
    s.at(10, "HorizontalPodAutoscaler", hpa(current=3, desired=5, cpu=90))
    s.at(11, "Pod", pod("api-3", ready=False), "ADDED")
    s.at(12, "Pod", pod("api-1", ready=False, restarts=2, waiting="CrashLoopBackOff"))
    s.at(12, "Event", event("SuccessfulRescale", "New size: 5; reason: cpu above target"), "ADDED")
    view = s.builder.view
    (row,) = hpa_rows(view)["rows"]
    assert row == (API_HPA, API, 3, 20, 3, 5, "cpu 90%/70% ▲")
    (dep,) = deployment_rows(view)["rows"]
    # desired 5 (the HPA's decision), ready 2, updated 3, 2 starting, 1 restarting, 0 ending
    assert dep == (API, 5, 2, 3, 2, 1, 0)
    (ev,) = event_rows(s.builder.events, T0)["rows"]
    assert ev[1:5] == ("12.0", "Normal", "SuccessfulRescale", f"HorizontalPodAutoscaler/{API_HPA}")
    titles = [t["title"] for t in live_tables(view, s.builder.events, [], T0)]
    assert titles == ["Autoscalers", "Deployments and pods", "Events"]


def test_the_local_environment_shows_processes_and_traffic() -> None:
    b = TimelineBuilder()
    b.add(ProcessSample(T0, component="api", running=2, wanted=2))
    b.add(ProcessSample(T0, component="worker", running=0, wanted=1))
    b.add(LoadSample(T0 + 1, rps=12.5, p95_ms=30.0, error_rate=0.0, queue=75, source="app"))
    assert process_rows(b.view)["rows"] == [("api", 2, 2), ("worker", 0, 1)]
    tables = live_tables(b.view, b.events, b.warnings, T0)
    assert [t["title"] for t in tables] == ["Processes", "Traffic", "Warnings"]
    assert tables[1]["rows"] == [("app", "12.5", "30 ms", "0.00%", 75, "-")]
    assert "queue backlog 75" in tables[2]["rows"][0][3]


def test_summary_tables_and_sentences() -> None:
    s = scenario()
    result = s.analyze()
    titles = [t["title"] for t in summary_tables(result)]
    assert titles[:2] == ["Scale-ups (trigger -> rescale -> ready)", "Recoveries from pod failures"]
    up = summary_tables(result)[0]["rows"][0]
    assert up == (API_HPA, "3 -> 5", "cpu", "15.0s", "30.0s", "45.0s", "< 2m00s", "PASS")
    assert verdict_sentence(result, Slo()) == (
        "Scaling SLOs met: 1 scale-up(s), slowest 45.0s (SLO < 2m00s); "
        "1 pod failure(s), slowest recovery 6.0s (SLO < 1m00s)"
    )
    strict = s.analyze(slo=Slo(scale_up_seconds=30))
    assert verdict_sentence(strict, Slo(scale_up_seconds=30)).startswith(
        "Scaling SLOs missed by tradewise-api-hpa 3->5:"
    )
    assert verdict_sentence(analyze([]), Slo()).startswith("No scale-up and no pod failure")


def test_the_combined_report_puts_load_replicas_and_events_on_one_axis() -> None:
    s = scenario()
    result = s.analyze()
    doc = combined_report(s.builder.records, result, Slo(), title="run")
    assert doc["seconds"] == 63
    assert doc["traffic"][2] == {
        "second": 10.0,
        "rps": 400.0,
        "p95_ms": 650.0,
        "error_rate": 0.0,
        "users": 50,
        "queue": None,
        "source": "load-test",
    }
    replicas = doc["replicas"][API]
    assert replicas[0] == {"second": 0.0, "desired": 3, "ready": 3}
    assert {"second": 25.0, "desired": 5, "ready": 3} in replicas
    assert {"second": 55.0, "desired": 5, "ready": 5} in replicas
    assert [e["reason"] for e in doc["events"]] == ["SuccessfulRescale", "OOMKilling"]
    assert doc["events"][0]["second"] == 25.5
    assert doc["analysis"]["scale_ups"][0]["total_seconds"] == 45
    assert [w["code"] for w in doc["analysis"]["warnings"]] == ["p95"]


def test_the_combined_html_is_self_contained_with_charts_markers_and_latencies() -> None:
    s = scenario()
    result = s.analyze()
    load = {
        "kind": "load-test",
        "target": "http://127.0.0.1:8000",
        "total": {"requests": 9000, "rps": 150.0},
        "verdict": {"sentence": "SLOs missed: p95 < 500 ms (650 ms) MISSED"},
    }
    page = combined_html(combined_report(s.builder.records, result, Slo(), title="run", load=load))
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "src=" not in page and "href=" not in page
    for title in ("Requests per second", "p95 response time", "Error rate", f"Replicas of {API}"):
        assert title in page
    assert page.count("<svg") == 4
    # one dashed marker per scaling event in every chart, placed inside the plot area
    assert page.count("<title>+25.5s SuccessfulRescale") == 4
    assert page.count("<title>+58.0s OOMKilling") == 4
    assert "45.0s" in page and "PASS" in page and "3 -&gt; 5" in page
    assert "9000 requests" in page and "SLOs missed: p95" in page
    assert "Scaling SLOs met" in page


def test_a_report_without_load_has_only_replica_charts() -> None:
    s = Script()
    drive_scale_up(s)
    page = combined_html(combined_report(s.builder.records, s.analyze(), Slo()))
    assert page.count("<svg") == 1
    marker = re.search(r'<line x1="([\d.]+)"[^>]*stroke-dasharray="3 3"', page)
    assert marker is not None


def test_change_lines_say_what_moved_and_nothing_else() -> None:
    before = hpa_record(hpa(current=3, desired=3, cpu=40), T0)
    hotter = hpa_record(hpa(current=3, desired=3, cpu=85), T0 + 1)
    assert change_line(before, hotter) is None  # only a metric moved
    bounds = hpa_record(hpa(min_replicas=10, current=3, desired=10, cpu=85), T0 + 2)
    assert change_line(hotter, bounds) == (
        "hpa tradewise-api-hpa: desired 3 -> 10, current 3, min 3 -> 10, max 20 (cpu 85%/70%)"
    )
    assert change_line(None, before) == (
        "hpa tradewise-api-hpa: desired 3, current 3, min 3, max 20 (cpu 40%/70%)"
    )
    up = ProcessSample(T0, component="worker", running=1, wanted=3)
    assert change_line(ProcessSample(T0, "worker", 1, 1), up) == (
        "worker processes: running 1, wanted 1 -> 3"
    )
    assert change_line(up, ProcessSample(T0 + 1, "worker", 1, 3)) is None
    crashed = pod_record(pod("api-0", ready=False, restarts=1, last_terminated="OOMKilled"), T0)
    assert change_line(pod_record(pod("api-0"), T0), crashed) == (
        "pod api-0: restarted (OOMKilled), 1 restart"
    )
    assert change_line(None, crashed) is None  # a pod seen for the first time is no news
