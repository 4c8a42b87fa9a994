"""Load specs as data: input checks (exit 2 before any load), the workload, in-cluster Jobs."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest

from tradewise_ops.core.config import load_config
from tradewise_ops.core.loadplan import (
    check_host,
    load_test_spec,
    parse_wait,
    performance_tasks,
    performance_test_spec,
    render_locust_jobs,
)
from tradewise_ops.core.validate import newest_version, supported_versions, validate
from tradewise_ops.errors import BadInputError

GOOD = {
    "host": "http://127.0.0.1:8000",
    "duration": "60s",
    "users": 50,
    "endpoint": "/api/health",
    "spawn_rate": 10.0,
}


def test_a_good_spec() -> None:
    spec = load_test_spec(**GOOD)  # type: ignore[arg-type]
    assert spec.duration_seconds == 60 and spec.users == 50
    assert spec.tasks[0].paths == ("/api/health",)
    wire = spec.to_wire()
    assert wire["wait"] == {"kind": "constant", "seconds": 0.0}
    assert json.loads(json.dumps(wire)) == wire


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"duration": "60x"}, "not a positive duration"),
        ({"duration": "0"}, "not a positive duration"),
        ({"users": 0}, "users must be at least 1"),
        ({"endpoint": "api/health"}, "must start with '/'"),
        ({"endpoint": "/a b"}, "must not contain spaces"),
        ({"spawn_rate": 0.0}, "spawn rate must be above 0"),
        ({"host": None}, "no target"),
        ({"host": "127.0.0.1:8000"}, "not an http:// or https:// URL"),
        ({"workers": 100}, "--workers must be between"),
        ({"users": 2, "workers": 3}, "cannot be spread over 3 workers"),
    ],
)
def test_bad_input_is_refused(change: dict[str, object], says: str) -> None:
    with pytest.raises(BadInputError, match=says):
        load_test_spec(**{**GOOD, **change})  # type: ignore[arg-type]


def test_host_is_normalised() -> None:
    assert check_host("https://tradewise.example.com/") == "https://tradewise.example.com"
    with pytest.raises(BadInputError):
        check_host("http://x/?a=1")


def test_waits() -> None:
    assert parse_wait(None).to_wire() == {"kind": "constant", "seconds": 0.0}
    assert parse_wait("2s").to_wire() == {"kind": "constant", "seconds": 2.0}
    assert parse_wait("1-3").to_wire() == {"kind": "between", "min": 1.0, "max": 3.0}
    assert parse_wait("0", rate=100, users=4).to_wire() == {"kind": "throughput", "per_user": 25.0}
    for bad in ("soon", "3-1", "-2"):
        with pytest.raises(BadInputError):
            parse_wait(bad)
    with pytest.raises(BadInputError):
        parse_wait(None, rate=0)


def test_performance_workload_follows_the_config() -> None:
    perf = load_config().performance_test
    tasks = {t.name: t for t in performance_tasks(perf)}
    assert {name: t.weight for name, t in tasks.items()} == dict(perf.weights)
    assert tasks["health"].paths == ("/api/health",)
    assert tasks["stats"].paths == ("/api/performance/stats",)
    assert tasks["analysis_hot"].paths == tuple(
        f"/api/stock-analysis?symbol={s}" for s in perf.hot_symbols
    )
    assert len(tasks["analysis_cold"].paths) == len(perf.cold_symbols)
    spec = performance_test_spec(host="http://127.0.0.1:1", perf=perf, scale=0.1)
    assert [s.name for s in spec.stages] == ["ramp", "steady", "spike", "cool-down"]
    assert spec.duration_seconds == pytest.approx(sum(s.duration_seconds for s in perf.stages) / 10)
    assert spec.users == max(s.users for s in perf.stages)
    with pytest.raises(BadInputError, match="--scale-duration"):
        performance_test_spec(host="http://127.0.0.1:1", perf=perf, scale=0)


def test_in_cluster_jobs_are_valid_kubernetes_objects() -> None:
    spec = load_test_spec(**GOOD)  # type: ignore[arg-type]
    objects = render_locust_jobs(
        spec,
        namespace="tradewise-ai",
        environment="staging",
        image="registry.example.com/tradewise/tradewise-ai:v1",
        run_id="20260101-abc123",
        workers=4,
    )
    for obj in objects:
        kubernetes_validate.validate(obj, "1.37", strict=True)
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "loadtest"
        assert labels["tradewise.io/environment"] == "staging"
    configmap, service, master, worker = objects
    assert json.loads(configmap["data"]["spec.json"])["workers"] == 4
    assert worker["spec"]["parallelism"] == 4 and master["spec"]["parallelism"] == 1
    # the Service selects exactly the master's pods
    selector = service["spec"]["selector"]
    master_labels = master["spec"]["template"]["metadata"]["labels"]
    worker_labels = worker["spec"]["template"]["metadata"]["labels"]
    assert all(master_labels[k] == v for k, v in selector.items())
    assert not all(worker_labels.get(k) == v for k, v in selector.items())
    worker_cmd = worker["spec"]["template"]["spec"]["containers"][0]["command"]
    assert worker_cmd[-3:] == ["--worker", service["metadata"]["name"], "5557"]
    for job in (master, worker):
        assert job["spec"]["backoffLimit"] == 0
        assert job["spec"]["activeDeadlineSeconds"] >= spec.duration_seconds


@pytest.mark.parametrize("version", [supported_versions()[0], newest_version()])
def test_in_cluster_objects_pass_the_schema_and_policy_checks(version: str) -> None:
    """Rendered by the manifests' engine, checked like them: schema and policy, no finding."""
    for spec, workers in (
        (load_test_spec(**GOOD), 3),  # type: ignore[arg-type]
        (performance_test_spec(host="http://api:8000", perf=load_config().performance_test), 1),
    ):
        objects = render_locust_jobs(
            spec,
            namespace="tradewise-ai",
            environment="prod",
            image="registry.example.com/tradewise/tradewise-ai:v1.2.3",
            run_id="20260101-abc123",
            workers=workers,
        )
        assert [o["kind"] for o in objects] == ["ConfigMap", "Service", "Job", "Job"]
        assert validate(objects, version) == []
    # the checks do bite on these objects: an unpinned image is a finding
    latest = render_locust_jobs(
        spec, namespace="n", environment="e", image="reg/tradewise-ai:latest", run_id="r"
    )
    assert {f.rule for f in validate(latest, version)} == {"image-pinned"}


def test_in_cluster_needs_a_worker_and_a_dns_run_id() -> None:
    spec = load_test_spec(**GOOD)  # type: ignore[arg-type]
    with pytest.raises(BadInputError):
        render_locust_jobs(spec, namespace="n", environment="e", image="i", run_id="Bad_Id")
    with pytest.raises(BadInputError, match="at least one worker"):
        render_locust_jobs(spec, namespace="n", environment="e", image="i", run_id="ok", workers=0)
