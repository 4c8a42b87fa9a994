"""The monitoring timeline: records from watch events, scale-up latency, recoveries, warnings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.core.timeline_objects import (
    API,
    API_HPA,
    WORKER,
    WORKER_HPA,
    deployment,
    event,
    hpa,
    pod,
)
from tradewise_ops.core.config import Slo
from tradewise_ops.core.timeline import (
    FAIL,
    NONE,
    PASS,
    PENDING,
    EventRecord,
    HpaSample,
    LoadSample,
    PodSample,
    ProcessSample,
    TimelineBuilder,
    WarningRecord,
    analyze,
    deployment_record,
    dumps_jsonl,
    event_record,
    hpa_record,
    loads_jsonl,
    pod_record,
    quantity,
    replica_series,
)
from tradewise_ops.errors import BadInputError

T0 = 1_800_000_000.0


class Script:
    """Feeds watch events to a builder at given seconds after T0."""

    def __init__(self) -> None:
        self.builder = TimelineBuilder()

    def at(self, seconds: float, kind: str, obj: dict[str, Any], event_type: str = "MODIFIED"):
        return self.builder.observe(kind, event_type, obj, T0 + seconds)

    def start(self, api_pods: int = 3, desired: int = 3, cpu: int = 40) -> None:
        """The steady state: an HPA at ``desired`` and that many ready pods."""
        self.at(
            0, "HorizontalPodAutoscaler", hpa(current=desired, desired=desired, cpu=cpu), "ADDED"
        )
        self.at(0, "Deployment", deployment(replicas=desired, ready=api_pods), "ADDED")
        for i in range(api_pods):
            self.at(0, "Pod", pod(f"api-{i}"), "ADDED")

    def analyze(self, end: float | None = None, slo: Slo | None = None):
        return analyze(self.builder.records, slo, None if end is None else T0 + end)


# -- parsing ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [("750m", 0.75), ("2k", 2000.0), (70, 70.0), ("512Mi", 512 * 2**20), ("1.5", 1.5)],
)
def test_quantities(text: Any, value: float) -> None:
    assert quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", [None, "", "abc", "5x", True])
def test_bad_quantities_are_none(text: Any) -> None:
    assert quantity(text) is None


def test_hpa_record_reads_bounds_replicas_and_metrics_against_targets() -> None:
    record = hpa_record(hpa(current=3, desired=5, cpu=85, p95="620", p95_target="500"), T0)
    assert (record.name, record.target) == (API_HPA, API)
    assert (record.min_replicas, record.max_replicas, record.current, record.desired) == (
        3,
        20,
        3,
        5,
    )
    cpu, p95 = record.metrics
    assert (cpu.name, cpu.value, cpu.target, cpu.unit, cpu.above) == ("cpu", 85, 70, "%", True)
    assert (p95.name, p95.value, p95.target, p95.above) == (
        "http_request_duration_p95_ms",
        620,
        500,
        True,
    )
    assert cpu.describe() == "cpu 85%/70%"


def test_hpa_without_status_has_unknown_metric_values() -> None:
    record = hpa_record(hpa(current=None, desired=None, cpu=None), T0)
    assert record.desired == 0
    assert record.metrics[0].value is None and record.metrics[0].above is None


def test_autoscaling_v1_hpa() -> None:
    obj = {
        "metadata": {"name": "h"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "d"},
            "maxReplicas": 4,
            "targetCPUUtilizationPercentage": 60,
        },
        "status": {
            "currentReplicas": 2,
            "desiredReplicas": 3,
            "currentCPUUtilizationPercentage": 90,
        },
    }
    record = hpa_record(obj, T0)
    assert record.min_replicas == 1
    assert record.metrics[0].describe() == "cpu 90%/60%"


def test_pod_record_finds_its_deployment_readiness_restarts_and_reasons() -> None:
    record = pod_record(
        pod(
            "api-x",
            ready=False,
            restarts=2,
            waiting="CrashLoopBackOff",
            last_terminated="OOMKilled",
        ),
        T0,
    )
    assert record.deployment == API
    assert (record.ready, record.restarts) == (False, 2)
    assert (record.reason, record.last_termination) == ("CrashLoopBackOff", "OOMKilled")
    evicted = pod_record(pod("api-y", ready=False, phase="Failed", reason="Evicted"), T0)
    assert (evicted.phase, evicted.reason, evicted.serving) == ("Failed", "Evicted", False)
    assert pod_record(pod("api-z", terminating=True), T0).serving is False


def test_pod_without_owner_is_matched_by_the_deployment_selector() -> None:
    obj = pod("bare")
    del obj["metadata"]["ownerReferences"]
    s = Script()
    s.at(0, "Deployment", deployment(), "ADDED")
    s.at(0, "Pod", obj, "ADDED")
    assert s.builder.view.ready(API) == 1


def test_event_records_from_both_event_apis() -> None:
    core = event_record(event("SuccessfulRescale", "New size: 5; reason: cpu above target"), T0)
    assert (core.reason, core.object_kind, core.object_name, core.at) == (
        "SuccessfulRescale",
        "HorizontalPodAutoscaler",
        API_HPA,
        "2026-11-27T14:00:00Z",
    )
    assert core.notable
    new = event_record(
        {
            "reason": "BackOff",
            "note": "Back-off restarting failed container",
            "type": "Warning",
            "regarding": {"kind": "Pod", "name": "api-1"},
            "series": {"count": 4, "lastObservedTime": "2026-11-27T14:01:00.000000Z"},
        },
        T0,
    )
    assert (new.object_name, new.count, new.message, new.event_type) == (
        "api-1",
        4,
        "Back-off restarting failed container",
        "Warning",
    )
    assert not event_record(event("Pulled", "pulled", kind="Pod"), T0).notable


def test_deployment_record() -> None:
    record = deployment_record(deployment(replicas=None, ready=2, updated=1), T0)
    assert (record.desired, record.ready, record.updated, record.available) == (None, 2, 1, 2)


# -- the builder --------------------------------------------------------------------------------
def test_unchanged_objects_add_no_record_and_repeated_events_do() -> None:
    s = Script()
    assert len(s.at(0, "Deployment", deployment(), "ADDED")) == 1
    assert s.at(1, "Deployment", deployment(), "MODIFIED") == []
    assert len(s.at(2, "Deployment", deployment(ready=2))) == 1
    first = event("BackOff", "back-off", kind="Pod", name="api-1", type_="Warning", uid="e1")
    assert len(s.at(3, "Event", first, "ADDED")) == 1
    assert s.at(4, "Event", first, "MODIFIED") == []
    again = dict(first, count=2)
    assert len(s.at(5, "Event", again, "MODIFIED")) == 1
    assert s.at(6, "Event", again, "DELETED") == []
    assert [e.count for e in s.builder.events] == [1, 2]


def test_deleted_objects_leave_the_view() -> None:
    s = Script()
    s.start()
    s.at(5, "Pod", pod("api-0"), "DELETED")
    assert sorted(s.builder.view.pods) == ["api-1", "api-2"]
    assert s.builder.view.ready(API) == 2


def test_unknown_kind_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="ConfigMap"):
        TimelineBuilder().observe("ConfigMap", "ADDED", {}, T0)


# -- scale-up latency ---------------------------------------------------------------------------
def drive_scale_up(s: Script, ready_at: tuple[float, float] = (40, 55)) -> None:
    """cpu crosses 70% at 10s, the HPA rescales 3 -> 5 at 25s, the new pods are ready later."""
    s.start()
    s.at(5, "HorizontalPodAutoscaler", hpa(cpu=60))
    s.at(10, "HorizontalPodAutoscaler", hpa(cpu=85))
    s.at(25, "HorizontalPodAutoscaler", hpa(current=3, desired=5, cpu=90))
    s.at(
        25.5,
        "Event",
        event(
            "SuccessfulRescale",
            "New size: 5; reason: cpu resource utilization (percentage of request) above target",
        ),
        "ADDED",
    )
    s.at(26, "Deployment", deployment(replicas=5, ready=3))
    s.at(27, "Pod", pod("api-3", ready=False), "ADDED")
    s.at(27, "Pod", pod("api-4", ready=False), "ADDED")
    s.at(ready_at[0], "Pod", pod("api-3"))
    s.at(ready_at[1], "Pod", pod("api-4"))
    s.at(ready_at[1] + 1, "Deployment", deployment(replicas=5, ready=5))


def test_scale_up_latency_from_metric_crossing_to_rescale_to_pods_ready() -> None:
    s = Script()
    drive_scale_up(s)
    result = s.analyze()
    (up,) = result.scale_ups
    assert (up.hpa, up.deployment, up.from_replicas, up.to_replicas, up.metric) == (
        API_HPA,
        API,
        3,
        5,
        "cpu",
    )
    assert up.trigger_observed
    assert up.to_rescale_seconds == pytest.approx(15)
    assert up.to_ready_seconds == pytest.approx(30)
    assert up.total_seconds == pytest.approx(45)
    assert up.verdict == PASS and result.verdict == PASS
    data = result.to_dict()["scale_ups"][0]
    assert data["total_seconds"] == 45 and data["verdict"] == "pass"
    assert data["trigger_at"].endswith("Z")


def test_a_slow_scale_up_misses_the_slo() -> None:
    s = Script()
    drive_scale_up(s, ready_at=(60, 140))
    (up,) = s.analyze().scale_ups
    assert up.total_seconds == pytest.approx(130)
    assert up.verdict == FAIL
    assert s.analyze().breached


def test_the_slo_comes_from_the_config() -> None:
    s = Script()
    drive_scale_up(s)
    strict = s.analyze(slo=Slo(scale_up_seconds=30))
    assert strict.scale_ups[0].verdict == FAIL and strict.scale_ups[0].slo_seconds == 30


def test_an_unfinished_scale_up_is_pending_until_its_slo_has_passed() -> None:
    s = Script()
    s.start()
    s.at(10, "HorizontalPodAutoscaler", hpa(cpu=85))
    s.at(20, "HorizontalPodAutoscaler", hpa(desired=6, cpu=85))
    assert s.analyze(end=60).scale_ups[0].verdict == PENDING
    assert s.analyze(end=60).verdict == PENDING
    late = s.analyze(end=200)
    assert late.scale_ups[0].verdict == FAIL and late.scale_ups[0].ready_at is None
    assert late.scale_ups[0].total_seconds is None


def test_the_rescale_event_seen_before_the_hpa_status_sets_the_rescale_time() -> None:
    s = Script()
    s.start()
    s.at(10, "HorizontalPodAutoscaler", hpa(cpu=85))
    s.at(20, "Event", event("SuccessfulRescale", "New size: 4; reason: cpu above target"), "ADDED")
    s.at(22, "HorizontalPodAutoscaler", hpa(desired=4, cpu=85))
    s.at(30, "Pod", pod("api-3"), "ADDED")
    (up,) = s.analyze().scale_ups
    assert up.rescale_at == T0 + 20 and up.from_replicas == 3
    assert up.total_seconds == pytest.approx(20)


def test_a_rescale_known_only_from_its_event() -> None:
    s = Script()
    s.at(0, "Deployment", deployment(), "ADDED")
    for i in range(3):
        s.at(0, "Pod", pod(f"api-{i}"), "ADDED")
    s.at(
        10,
        "Event",
        event("SuccessfulRescale", "New size: 4; reason: memory resource above target"),
        "ADDED",
    )
    s.at(18, "Pod", pod("api-3"), "ADDED")
    (up,) = s.analyze().scale_ups
    assert (up.deployment, up.to_replicas, up.metric, up.trigger_at) == (API, 4, "memory", None)
    assert up.to_ready_seconds == pytest.approx(8)
    assert up.total_seconds == pytest.approx(8)


def test_listed_history_and_scale_down_events_open_no_scale_up() -> None:
    s = Script()
    s.start()
    old = event("SuccessfulRescale", "New size: 8; reason: cpu above target", uid="old")
    s.builder.observe("Event", "ADDED", old, T0 + 1, listed=True)
    down = event("SuccessfulRescale", "New size: 2; reason: All metrics below target", uid="d")
    s.at(2, "Event", down, "ADDED")
    assert s.analyze().scale_ups == ()
    assert s.analyze().verdict == NONE


def test_a_metric_already_above_target_when_watching_began() -> None:
    s = Script()
    s.start(cpu=95)
    s.at(12, "HorizontalPodAutoscaler", hpa(desired=4, cpu=95))
    s.at(20, "Pod", pod("api-3"), "ADDED")
    (up,) = s.analyze().scale_ups
    assert up.trigger_at == T0 and not up.trigger_observed
    assert up.total_seconds == pytest.approx(20)


def test_a_second_scale_up_while_the_metric_stays_above_counts_from_the_first_rescale() -> None:
    s = Script()
    s.start()
    s.at(10, "HorizontalPodAutoscaler", hpa(cpu=85))
    s.at(20, "HorizontalPodAutoscaler", hpa(desired=4, cpu=85))
    s.at(30, "Pod", pod("api-3"), "ADDED")
    s.at(80, "HorizontalPodAutoscaler", hpa(desired=6, cpu=80))
    s.at(90, "Pod", pod("api-4"), "ADDED")
    s.at(95, "Pod", pod("api-5"), "ADDED")
    first, second = s.analyze().scale_ups
    assert first.total_seconds == pytest.approx(20)
    assert (second.from_replicas, second.to_replicas) == (4, 6)
    assert second.trigger_at == T0 + 20 and not second.trigger_observed
    assert second.total_seconds == pytest.approx(75)


def test_the_p95_metric_can_trigger_the_scale_up() -> None:
    s = Script()
    s.at(0, "HorizontalPodAutoscaler", hpa(cpu=40, p95="300"), "ADDED")
    s.at(4, "HorizontalPodAutoscaler", hpa(cpu=40, p95="650"))
    s.at(9, "HorizontalPodAutoscaler", hpa(desired=4, cpu=40, p95="700"))
    s.at(0, "Deployment", deployment(ready=4, replicas=None), "ADDED")
    (up,) = s.analyze().scale_ups
    assert up.metric == "http_request_duration_p95_ms" and up.to_rescale_seconds == 5


def test_scale_down_is_reported_and_its_deleted_pods_are_no_failures() -> None:
    s = Script()
    drive_scale_up(s)
    s.at(100, "HorizontalPodAutoscaler", hpa(current=5, desired=3, cpu=30))
    s.at(101, "Deployment", deployment(replicas=3, ready=5))
    s.at(102, "Pod", pod("api-4", terminating=True))
    s.at(103, "Pod", pod("api-4"), "DELETED")
    s.at(102, "Pod", pod("api-3"), "DELETED")
    s.at(104, "Deployment", deployment(replicas=3, ready=3))
    result = s.analyze()
    (down,) = result.scale_downs
    assert (down.from_replicas, down.to_replicas, down.at) == (5, 3, T0 + 100)
    assert result.recoveries == ()
    assert len(result.scale_ups) == 1 and result.verdict == PASS


def test_replica_series_follows_desired_and_ready() -> None:
    s = Script()
    drive_scale_up(s)
    series = replica_series(s.builder.records)[API]
    points = [(p.t - T0, p.desired, p.ready) for p in series]
    assert points[0] == (0, 3, 3)
    assert (25, 5, 3) in points
    assert (40, 5, 4) in points
    assert points[-1] == (55, 5, 5)


# -- recovery ---------------------------------------------------------------------------------
def test_recovery_from_a_deleted_pod_to_its_replacement_ready() -> None:
    s = Script()
    s.start()
    s.at(10, "Pod", pod("api-1", terminating=True))
    s.at(11, "Pod", pod("api-1"), "DELETED")
    s.at(11, "Pod", pod("api-9", ready=False), "ADDED")
    s.at(30, "Pod", pod("api-9"))
    (rec,) = s.analyze().recoveries
    assert (rec.deployment, rec.pod, rec.cause) == (API, "api-1", "deleted")
    assert rec.seconds == pytest.approx(20)
    assert rec.verdict == PASS


def test_an_oom_killed_container_recovers_when_the_pod_is_ready_again() -> None:
    s = Script()
    s.start()
    s.at(10, "Pod", pod("api-2", ready=False, restarts=1, last_terminated="OOMKilled"))
    s.at(85, "Pod", pod("api-2", restarts=1, last_terminated="OOMKilled"))
    (rec,) = s.analyze().recoveries
    assert rec.cause == "OOMKilled"
    assert rec.seconds == pytest.approx(75)
    assert rec.verdict == FAIL
    assert s.analyze().verdict == FAIL


def test_an_evicted_pod_not_replaced_is_pending_then_failed() -> None:
    s = Script()
    s.start()
    s.at(10, "Pod", pod("api-0", ready=False, phase="Failed", reason="Evicted"))
    assert s.analyze(end=30).recoveries[0].verdict == PENDING
    rec = s.analyze(end=80).recoveries[0]
    assert (rec.cause, rec.verdict, rec.recovered_at) == ("Evicted", FAIL, None)


def test_a_pod_that_never_served_is_no_failure() -> None:
    s = Script()
    s.start()
    s.at(5, "Pod", pod("api-7", ready=False), "ADDED")
    s.at(9, "Pod", pod("api-7", ready=False, waiting="CrashLoopBackOff", restarts=1))
    assert s.analyze().recoveries == ()


# -- warnings ---------------------------------------------------------------------------------
def test_the_seed_warnings_are_raised_once_per_episode() -> None:
    b = TimelineBuilder()
    b.add(LoadSample(T0, rps=100, p95_ms=120, error_rate=0.01, queue=10))
    b.add(LoadSample(T0 + 1, rps=100, p95_ms=650, error_rate=0.08, queue=75))
    b.add(LoadSample(T0 + 2, rps=100, p95_ms=700, error_rate=0.09, queue=80))
    b.add(LoadSample(T0 + 3, rps=100, p95_ms=100, error_rate=0.0, queue=3))
    b.add(LoadSample(T0 + 4, rps=100, p95_ms=900, error_rate=0.0, queue=3))
    codes = [(w.t - T0, w.code) for w in b.warnings]
    assert codes == [(1, "error-rate"), (1, "p95"), (1, "queue-backlog"), (4, "p95")]
    assert "8.0%" in b.warnings[0].message and "5%" in b.warnings[0].message
    assert "650 ms" in b.warnings[1].message


def test_warning_thresholds_are_exclusive() -> None:
    b = TimelineBuilder()
    b.add(LoadSample(T0, p95_ms=500, error_rate=0.05, queue=50))
    assert b.warnings == []


def test_more_than_three_restarts_in_fifteen_minutes() -> None:
    s = Script()
    s.start()
    for n in range(1, 4):
        s.at(60 * n, "Pod", pod("api-0", restarts=n, last_terminated="Error"))
    assert s.builder.warnings == []
    s.at(240, "Pod", pod("api-0", restarts=4, last_terminated="OOMKilled"))
    (warning,) = s.builder.warnings
    assert warning.code == "restarts" and "api-0 restarted 4 times" in warning.message
    assert "OOMKilled" in warning.message
    # four restarts spread over more than 15 minutes are not a crash loop
    s2 = Script()
    s2.start()
    for n in range(1, 6):
        s2.at(400 * n, "Pod", pod("api-0", restarts=n))
    assert s2.builder.warnings == []


# -- the local stack: processes, no HPA --------------------------------------------------------
def test_local_processes_scale_up_when_wanted_rises_and_down_when_it_falls() -> None:
    s = Script()

    def sample(second: float, running: int, wanted: int) -> None:
        s.builder.add(
            ProcessSample(T0 + second, component="worker", running=running, wanted=wanted)
        )

    sample(0, 1, 1)
    sample(1, 1, 1)
    sample(2, 1, 3)  # `local scale workers 3`: wanted first ...
    sample(3, 2, 3)
    sample(4.5, 3, 3)  # ... then the processes: ready 2.5 s after the rescale
    sample(6, 3, 2)  # `scale traffic ...`: fewer
    sample(7, 2, 2)
    result = s.analyze(end=8, slo=Slo(scale_up_seconds=2))
    (up,) = result.scale_ups
    assert (up.hpa, up.deployment, up.from_replicas, up.to_replicas) == (
        "worker processes",
        "worker",
        1,
        3,
    )
    assert up.rescale_at == T0 + 2 and up.ready_at == T0 + 4.5 and up.trigger_at is None
    assert up.total_seconds == pytest.approx(2.5) and up.verdict == FAIL  # SLO 2 s here
    (down,) = result.scale_downs
    assert (down.hpa, down.from_replicas, down.to_replicas, down.at) == (
        "worker processes",
        3,
        2,
        T0 + 6,
    )
    assert s.analyze(end=8).verdict == PASS  # within the default 120 s


def test_a_local_scale_up_never_reached_is_pending_then_failed() -> None:
    s = Script()
    s.builder.add(ProcessSample(T0, component="api", running=2, wanted=2))
    s.builder.add(ProcessSample(T0 + 1, component="api", running=2, wanted=4))
    assert s.analyze(end=10).verdict == PENDING
    assert s.analyze(end=200).verdict == FAIL
    # running counts alone (no wanted known) open nothing
    t = Script()
    t.builder.add(ProcessSample(T0, component="api", running=2))
    t.builder.add(ProcessSample(T0 + 1, component="api", running=4))
    assert t.analyze().scale_ups == () and t.analyze().verdict == NONE


# -- records as JSON lines --------------------------------------------------------------------
def test_a_recorded_timeline_replays_to_the_same_analysis() -> None:
    s = Script()
    drive_scale_up(s)
    s.builder.add(LoadSample(T0 + 30, rps=250.0, p95_ms=640.0, error_rate=0.0, users=50))
    s.builder.add(ProcessSample(T0 + 31, component="worker", running=2, wanted=2))
    text = dumps_jsonl(s.builder.records)
    lines = text.splitlines()
    assert len(lines) == len(s.builder.records)
    first = json.loads(lines[0])
    assert first["type"] == "hpa" and first["time"].endswith("Z") and first["t"] == T0
    replayed = loads_jsonl(text)
    assert replayed == s.builder.records
    assert analyze(replayed).to_dict() == s.analyze().to_dict()
    assert any(isinstance(r, WarningRecord) for r in replayed)
    assert {type(r) for r in replayed} >= {HpaSample, PodSample, EventRecord, LoadSample}


def test_a_bad_record_file_names_the_line() -> None:
    with pytest.raises(BadInputError, match="rec.jsonl, line 2: not JSON"):
        loads_jsonl('{"type": "load", "t": 1}\n{oops\n', "rec.jsonl")
    with pytest.raises(BadInputError, match="line 1: .*unknown type 'nope'"):
        loads_jsonl('{"type": "nope", "t": 1}\n')


def test_worker_and_api_are_tracked_separately() -> None:
    s = Script()
    s.start()
    s.at(0, "Deployment", deployment(WORKER, replicas=2, ready=2, component="worker"), "ADDED")
    s.at(0, "Pod", pod("w-0", deployment_name=WORKER, component="worker"), "ADDED")
    s.at(0, "Pod", pod("w-1", deployment_name=WORKER, component="worker"), "ADDED")
    assert (s.builder.view.ready(API), s.builder.view.ready(WORKER)) == (3, 2)
    assert s.builder.view.deployment_names() == [API, WORKER]


def test_a_crash_while_scaling_down_is_still_a_failure() -> None:
    s = Script()
    drive_scale_up(s)
    s.at(100, "HorizontalPodAutoscaler", hpa(current=5, desired=3, cpu=30))
    s.at(101, "Pod", pod("api-0", ready=False, restarts=1, last_terminated="OOMKilled"))
    s.at(109, "Pod", pod("api-0", restarts=1, last_terminated="OOMKilled"))
    (rec,) = s.analyze().recoveries
    assert (rec.pod, rec.cause) == ("api-0", "OOMKilled")
    # ready again when the Deployment is back to what it still wants (3 of the 4 left)
    assert rec.seconds == pytest.approx(0)


def test_a_scale_up_overtaken_by_a_scale_down_is_done_at_the_lower_size() -> None:
    s = Script()
    s.start()
    s.at(10, "HorizontalPodAutoscaler", hpa(cpu=85))
    s.at(20, "HorizontalPodAutoscaler", hpa(desired=6, cpu=85))
    s.at(30, "Pod", pod("api-3"), "ADDED")
    s.at(40, "HorizontalPodAutoscaler", hpa(current=4, desired=4, cpu=50))
    (up,) = s.analyze().scale_ups
    assert up.ready_at == T0 + 40 and up.verdict == PASS


def test_scale_down_deletions_seen_before_the_decision_are_no_failures() -> None:
    s = Script()
    drive_scale_up(s)
    # the pods' watch delivers the deletions before the HPA's and the Deployment's watches
    s.at(100, "Pod", pod("api-4", terminating=True))
    s.at(100.1, "Pod", pod("api-3"), "DELETED")
    s.at(100.2, "HorizontalPodAutoscaler", hpa(current=5, desired=3, cpu=30))
    s.at(100.3, "Deployment", deployment(replicas=3, ready=3))
    assert s.analyze().recoveries == ()
    # a pod deleted while nothing scales down is a failure
    s.at(200, "Pod", pod("api-0"), "DELETED")
    s.at(215, "Pod", pod("api-8"), "ADDED")
    (rec,) = s.analyze().recoveries
    assert (rec.pod, rec.cause, rec.seconds) == ("api-0", "deleted", pytest.approx(15))


def test_the_rendered_hpas_are_read_with_every_metric_against_its_target() -> None:
    from tradewise_ops.core.config import load_config
    from tradewise_ops.core.render import render_environment

    config = load_config(Path(__file__).resolve().parents[2] / "tradewise.yaml")
    objects = render_environment(config, "prod", tag="v1")
    hpas = {o["metadata"]["name"]: o for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    api = dict(hpas["tradewise-api-hpa"])
    api["status"] = {
        "currentReplicas": 3,
        "desiredReplicas": 5,
        "currentMetrics": [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": 91}},
            },
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "http_request_duration_seconds_p95"},
                    "current": {"averageValue": "620m"},
                },
            },
        ],
    }
    record = hpa_record(api, T0)
    assert (record.target, record.min_replicas, record.max_replicas) == (API, 3, 20)
    by_name = {m.name: m for m in record.metrics}
    assert by_name["cpu"].describe() == "cpu 91%/70%"
    assert by_name["memory"].value is None and by_name["memory"].target == 80
    p95 = by_name["http_request_duration_seconds_p95"]
    assert (p95.value, p95.target, p95.above) == (0.62, 0.5, True)
    worker = dict(hpas["tradewise-worker-hpa"])
    worker["status"] = {
        "currentReplicas": 2,
        "desiredReplicas": 2,
        "currentMetrics": [
            {
                "type": "External",
                "external": {
                    "metric": {"name": "tradewise_task_queue_length"},
                    "current": {"averageValue": "3"},
                },
            }
        ],
    }
    queue = {m.name: m for m in hpa_record(worker, T0).metrics}["tradewise_task_queue_length"]
    assert (queue.kind, queue.value, queue.target, queue.above) == ("External", 3, 5, False)


def test_the_autoscalers_own_latency_and_queue_metrics_raise_the_seed_warnings() -> None:
    s = Script()
    s.at(0, "HorizontalPodAutoscaler", hpa(cpu=40, p95="300", p95_target="500"), "ADDED")
    s.at(5, "HorizontalPodAutoscaler", hpa(cpu=40, p95="620", p95_target="500"))  # ms
    worker: dict[str, Any] = {
        "metadata": {"name": WORKER_HPA},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": WORKER},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {"name": "tradewise_task_queue_length"},
                        "target": {"type": "AverageValue", "averageValue": "5"},
                    },
                }
            ],
        },
        "status": {
            "currentReplicas": 2,
            "desiredReplicas": 2,
            "currentMetrics": [
                {
                    "type": "External",
                    "external": {
                        "metric": {"name": "tradewise_task_queue_length"},
                        "current": {"averageValue": "30"},
                    },
                }
            ],
        },
    }
    s.at(6, "HorizontalPodAutoscaler", worker, "ADDED")
    codes = [(w.t - T0, w.code) for w in s.builder.warnings]
    assert codes == [(5, "p95"), (6, "queue-backlog")]
    assert "620 ms" in s.builder.warnings[0].message
    assert "backlog 60 tasks" in s.builder.warnings[1].message  # 30 per worker, 2 workers
    assert [w.code for w in s.analyze().warnings] == ["p95", "queue-backlog"]


def test_a_copied_view_does_not_follow_later_records() -> None:
    s = Script()
    s.start()
    snapshot = s.builder.view.copy()
    s.at(5, "Pod", pod("api-0"), "DELETED")
    s.at(6, "HorizontalPodAutoscaler", hpa(desired=6, cpu=90))
    assert (snapshot.ready(API), snapshot.desired(API)) == (3, 3)
    assert (s.builder.view.ready(API), s.builder.view.desired(API)) == (2, 6)
