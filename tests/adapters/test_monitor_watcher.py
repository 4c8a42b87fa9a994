"""The cluster watcher against the emulator: real HTTP watches through the gateway."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters.monitor_driver import API, API_HPA, NAMESPACE, Driver
from tests.core.timeline_objects import pod
from tests.helpers import wait_until
from tests.k8s_emulator import Emulator
from tradewise_ops.adapters.kube import KubeGateway
from tradewise_ops.adapters.monitor import ClusterWatcher, MonitorSession, parse_metrics
from tradewise_ops.core.timeline import (
    PASS,
    AppScrape,
    DeploymentSample,
    EventRecord,
    HpaSample,
    PodSample,
    analyze,
    app_load_sample,
    loads_jsonl,
)

pytest_plugins = ["tests.k8s_emulator.fixtures"]

GAP = 0.6  # seconds between the steps the driver plays
TOLERANCE = 0.35


@pytest.fixture
def gateway(kubeconfig: Path) -> Iterator[KubeGateway]:
    gw = KubeGateway.from_kubeconfig(context="emulator", namespace=NAMESPACE)
    try:
        yield gw
    finally:
        gw.close()


def test_a_scale_up_a_scale_down_and_a_pod_failure_are_timed(
    emulator: Emulator, gateway: KubeGateway, tmp_path: Path
) -> None:
    driver = Driver(emulator)
    driver.baseline()
    record = tmp_path / "timeline.jsonl"
    session = MonitorSession(record)
    watcher = ClusterWatcher(gateway, session)
    watcher.prime()
    assert sorted(session.builder.view.pods) == ["api-0", "api-1", "api-2"]
    watcher.start(30)
    try:
        driver.wait_watching()
        driver.scale_up(GAP)
        time.sleep(0.3)
        driver.scale_down()
        time.sleep(0.3)
        driver.kill_pod("api-1", "api-9", GAP)
        wait_until(
            lambda: session.builder.view.ready(API) == 3 and "api-9" in session.builder.view.pods,
            what="the replacement pod",
        )
        time.sleep(0.2)
    finally:
        watcher.stop()
        session.close()
    assert watcher.error is None

    result = analyze(session.records())
    (up,) = result.scale_ups
    assert (up.hpa, up.deployment, up.from_replicas, up.to_replicas, up.metric) == (
        API_HPA,
        API,
        3,
        5,
        "cpu",
    )
    assert up.trigger_observed
    assert up.to_rescale_seconds == pytest.approx(GAP, abs=TOLERANCE)
    assert up.to_ready_seconds == pytest.approx(GAP, abs=TOLERANCE)
    assert up.total_seconds == pytest.approx(2 * GAP, abs=TOLERANCE)
    assert up.verdict == PASS
    (down,) = result.scale_downs
    assert (down.from_replicas, down.to_replicas) == (5, 3)
    (recovery,) = result.recoveries  # the scale-down's deletions are not failures
    assert (recovery.pod, recovery.cause) == ("api-1", "OOMKilled")
    assert recovery.seconds == pytest.approx(GAP, abs=TOLERANCE)
    assert result.verdict == PASS

    # the recorded timeline: every HPA status change, in order, with its metric against target
    hpas = [
        (r.current, r.desired, r.metrics[0].value)
        for r in session.records()
        if isinstance(r, HpaSample)
    ]
    assert hpas == [(3, 3, 40), (3, 3, 85), (3, 5, 90), (5, 5, 20), (5, 3, 20)]
    assert all(r.metrics[0].target == 70 for r in session.records() if isinstance(r, HpaSample))
    deployments = [
        (r.desired, r.ready) for r in session.records() if isinstance(r, DeploymentSample)
    ]
    assert deployments == [(3, 3), (5, 3), (5, 5), (3, 5), (3, 3), (3, 2), (3, 3)]
    reasons = [e.reason for e in session.builder.events if not e.listed]
    assert reasons.count("SuccessfulRescale") == 2 and "OOMKilling" in reasons

    # the record file is the whole timeline and replays to the same analysis
    replayed = loads_jsonl(record.read_text(encoding="utf-8"))
    assert replayed == session.records()
    assert analyze(replayed, end=result.end).to_dict() == result.to_dict()

    # watched, not polled: one list per kind to prime, one for the watch's start, then streams
    lists = [r for r in emulator.requests_matching("GET", NAMESPACE) if not r.watch]
    watches = [r for r in emulator.requests_matching("GET", NAMESPACE) if r.watch]
    assert len(lists) == 8
    assert len(watches) == 4


def test_a_dropped_watch_resumes_without_losing_events(
    emulator: Emulator, gateway: KubeGateway
) -> None:
    driver = Driver(emulator)
    driver.baseline()
    session = MonitorSession()
    watcher = ClusterWatcher(gateway, session)
    watcher.prime()
    emulator.drop_watch(r"/namespaces/tradewise-ai/pods$", after_events=1)
    watcher.start(30)
    try:
        driver.wait_watching()
        # the first change goes through, then the connection is cut; the rest must still arrive
        for i, ready in enumerate([False, True, False, True, False]):
            driver.write(pod("api-0", ready=ready, restarts=i))
        driver.write(pod("api-7", ready=False))
        driver.delete("Pod", "api-2")
        wait_until(
            lambda: (
                "api-7" in session.builder.view.pods
                and "api-2" not in session.builder.view.pods
                and session.builder.view.pods["api-0"].restarts == 4
            ),
            what="every pod change",
        )
    finally:
        watcher.stop()
    assert watcher.error is None
    seen = [
        (r.restarts, r.ready)
        for r in session.records()
        if isinstance(r, PodSample) and r.name == "api-0"
    ]
    assert seen[-5:] == [(0, False), (1, True), (2, False), (3, True), (4, False)]
    pod_watches = [r for r in emulator.requests_matching("GET", r"/pods$") if r.watch]
    assert len(pod_watches) >= 2
    # the second watch resumes from the last resourceVersion seen: no re-list, nothing lost
    assert pod_watches[1].query.get("resourceVersion") not in (None, "", "0")
    pod_lists = [r for r in emulator.requests_matching("GET", r"/pods$") if not r.watch]
    assert len(pod_lists) == 2  # prime + the watch's start, none after the drop


def test_old_events_listed_at_start_are_history(emulator: Emulator, gateway: KubeGateway) -> None:
    driver = Driver(emulator)
    driver.baseline()
    driver.event(
        "HorizontalPodAutoscaler",
        API_HPA,
        "SuccessfulRescale",
        "New size: 3; reason: cpu above target",
    )
    session = MonitorSession()
    ClusterWatcher(gateway, session).prime()
    (old,) = [r for r in session.records() if isinstance(r, EventRecord)]
    assert old.listed and old.reason == "SuccessfulRescale"
    assert analyze(session.records()).scale_ups == ()


def test_app_metrics_become_load_samples() -> None:
    text = "\n".join(
        [
            "# TYPE flask_request_total counter",
            'flask_request_total{method="GET",endpoint="health",status="200"} 90.0',
            'flask_request_total{method="GET",endpoint="stock_analysis",status="500"} 10.0',
            "# TYPE flask_request_duration_seconds histogram",
            'flask_request_duration_seconds_bucket{method="GET",endpoint="health",le="0.1"} 50.0',
            'flask_request_duration_seconds_bucket{method="GET",endpoint="health",le="1.0"} 100.0',
            'flask_request_duration_seconds_bucket{method="GET",endpoint="health",le="+Inf"} 100.0',
            'flask_request_duration_seconds_count{method="GET",endpoint="health"} 100.0',
            'flask_request_duration_seconds_sum{method="GET",endpoint="health"} 20.0',
            "# TYPE tradewise_task_queue_length gauge",
            "tradewise_task_queue_length 64.0",
        ]
    )
    scrape = parse_metrics(text, 10.0)
    assert (scrape.requests, scrape.errors, scrape.queue) == (100.0, 10.0, 64)
    before = AppScrape(t=8.0, requests=0.0, errors=0.0, buckets=((0.1, 0.0), (1.0, 0.0)))
    sample = app_load_sample(before, scrape)
    assert sample.rps == 50.0 and sample.error_rate == 0.1 and sample.queue == 64
    # p95 of 100 requests, 50 under 0.1 s and 50 between 0.1 and 1 s: 0.1 + 0.9 * 45/50
    assert sample.p95_ms == pytest.approx(910.0)
    assert app_load_sample(None, scrape).rps is None


def test_an_expired_watch_relists_and_objects_deleted_meanwhile_leave_the_view(
    emulator: Emulator, gateway: KubeGateway
) -> None:
    driver = Driver(emulator)
    driver.baseline()
    session = MonitorSession()
    watcher = ClusterWatcher(gateway, session)
    watcher.prime()
    # the pods' watch is cut after its first event; resuming fails a few times (with backoff),
    # long enough for its resourceVersion to be compacted away: the resume gets 410 Gone
    pods = r"/namespaces/tradewise-ai/pods$"
    emulator.drop_watch(pods, after_events=1)
    emulator.fail_next("GET", pods, 503, count=3, watch=True)
    watcher.start(30)
    try:
        driver.wait_watching()
        driver.write(pod("api-0", ready=False, restarts=1))
        driver.delete("Pod", "api-2")
        driver.write(pod("api-5"))
        emulator.store.compact()
        wait_until(
            lambda: (
                "api-2" not in session.builder.view.pods
                and "api-5" in session.builder.view.pods
                and session.builder.view.pods["api-0"].restarts == 1
            ),
            timeout=15,
            what="the re-listed pods",
        )
        driver.write(pod("api-6", ready=False))  # and the watch goes on after the re-list
        wait_until(lambda: "api-6" in session.builder.view.pods, what="a pod after the re-list")
    finally:
        watcher.stop()
    assert watcher.error is None
    assert sorted(session.builder.view.pods) == ["api-0", "api-1", "api-5", "api-6"]
    gone = [r for r in session.records() if isinstance(r, PodSample) and r.deleted]
    assert [r.name for r in gone] == ["api-2"]
    # the deletion was never an event: prime, the watch's start, the gateway's re-list after
    # 410 Gone, and the monitor's own list that found api-2 missing
    pod_lists = [r for r in emulator.requests_matching("GET", pods) if not r.watch]
    assert len(pod_lists) == 4
