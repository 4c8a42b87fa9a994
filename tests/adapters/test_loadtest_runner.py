"""LoadRunner against the real bundled app under gunicorn on loopback: real Locust, short runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port
from tests.loadtest_app import ApiServer
from tradewise_ops.adapters.loadtest import LoadGeneratorError, LoadRunner, probe
from tradewise_ops.core.config import load_config
from tradewise_ops.core.loadplan import (
    WaitSpec,
    load_test_spec,
    parse_wait,
    performance_test_spec,
    render_locust_jobs,
)
from tradewise_ops.core.loadreport import Interval, run_totals
from tradewise_ops.errors import UnreachableError

ANALYSIS = "/api/stock-analysis?symbol=AAPL"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path_factory.mktemp("api"))
    yield server
    server.stop()


def test_counts_agree_with_the_apps_own_metrics(api: ApiServer) -> None:
    before = api.requests_counted("stock_analysis")
    seen: list[Interval] = []
    spec = load_test_spec(host=api.url, duration="3", users=4, endpoint=ANALYSIS, spawn_rate=50)
    result = LoadRunner().run(spec, on_interval=seen.append)
    time.sleep(0.3)  # let the last answers be counted
    after = api.requests_counted("stock_analysis")

    totals = run_totals(result.intervals)
    assert totals.requests > 50
    assert totals.failures == 0
    # Locust's own count and ours agree exactly; the app counted the same (in-flight: <= users)
    assert totals.requests == result.locust_requests
    assert 0 <= (after - before) - totals.requests <= spec.users
    # streamed as it ran: one interval a second, the last one partial
    assert seen == result.intervals
    assert 3 <= len(result.intervals) <= 4
    assert [iv.index for iv in result.intervals] == list(range(len(result.intervals)))
    assert result.intervals[-1].end == pytest.approx(3.0, abs=0.3)
    assert not result.aborted and result.stopped_by == "duration"
    assert result.generator()["cpu_seconds"] > 0
    # each interval's percentiles come from its own samples
    for iv in result.intervals:
        lat = iv.total.latency
        if lat.count:
            p50, p95 = lat.percentile(50), lat.percentile(95)
            assert p50 is not None and p95 is not None and 0 < p50 <= p95 <= lat.max


def test_local_workers_split_the_load_and_report_every_sample(api: ApiServer) -> None:
    before = api.requests_counted("health")
    spec = load_test_spec(
        host=api.url,
        duration="3",
        users=4,
        endpoint="/api/health",
        spawn_rate=50,
        workers=2,
        wait=parse_wait(None, rate=60, users=4),
    )
    result = LoadRunner().run(spec)
    time.sleep(0.3)
    after = api.requests_counted("health")
    totals = run_totals(result.intervals)
    assert totals.requests > 50
    # samples are booked in the second they completed in, not when the master heard of them:
    # a held 60 req/s shows as about 60 req/s in every interval after the first (ramp-up)
    later = [iv for iv in result.intervals[1:] if iv.end - iv.start > 0.5]
    assert later and all(35 <= iv.row()["rps"] <= 85 for iv in later), [
        iv.row() for iv in result.intervals
    ]
    assert totals.failures == 0
    assert 0 <= (after - before) - totals.requests <= spec.users
    assert max(iv.users for iv in result.intervals) == 4
    assert result.worker_cpu_seconds > 0


def test_stop_ends_the_load_at_once_and_keeps_what_ran(api: ApiServer) -> None:
    spec = load_test_spec(
        host=api.url, duration="30", users=3, endpoint="/api/health", spawn_rate=50
    )
    runner = LoadRunner()
    stopped_at: list[float] = []

    def after_two_seconds(interval: Interval) -> None:
        if interval.index == 1:
            stopped_at.append(time.monotonic())
            runner.stop()

    result = runner.run(spec, on_interval=after_two_seconds)
    took = time.monotonic() - stopped_at[0]
    assert result.aborted and result.stopped_by == "signal"
    assert took < 3, f"stopping took {took:.1f}s"
    # the two full intervals and the partial one that ran until the stop
    assert len(result.intervals) == 3
    assert 2.0 <= result.intervals[-1].end < 3.0
    assert run_totals(result.intervals).requests == result.locust_requests > 0
    # no load after the stop
    count = api.requests_counted("health")
    time.sleep(0.5)
    assert api.requests_counted("health") == count


def test_performance_test_shape_runs_its_stages_and_groups(api: ApiServer) -> None:
    perf = load_config().performance_test
    spec = performance_test_spec(host=api.url, perf=perf, scale=0.08, wait=parse_wait("0.1-0.3"))
    assert spec.duration_seconds == pytest.approx(4.0)
    result = LoadRunner().run(spec)
    names = set().union(*(iv.endpoints for iv in result.intervals))
    assert {"health", "analysis_hot", "analysis_cold", "stats"} <= names
    stages = [iv.stage for iv in result.intervals if iv.stage]
    assert stages[0] == "ramp" and "spike" in stages
    assert result.stopped_by in ("shape", "duration")
    assert run_totals(result.intervals).failures == 0


def test_probe_names_a_dead_target() -> None:
    url = f"http://127.0.0.1:{free_port()}/api/health"
    with pytest.raises(UnreachableError, match=url.replace("?", r"\?")):
        probe(url, timeout=1)


def test_probe_reports_any_http_answer(api: ApiServer) -> None:
    assert probe(api.url + "/api/health") == 200
    assert probe(api.url + "/no-such-page") == 404


def test_result_is_usable_without_a_report_dir(tmp_path: Path, api: ApiServer) -> None:
    spec = load_test_spec(
        host=api.url,
        duration="1",
        users=1,
        endpoint="/api/health",
        spawn_rate=10,
        wait=parse_wait(None, rate=20, users=1),
    )
    result = LoadRunner().run(spec)
    totals = run_totals(result.intervals)
    # a held rate of 20 req/s for 1 s: about 20 requests, not thousands
    assert 5 <= totals.requests <= 30


def test_in_cluster_pod_commands_run_for_real(api: ApiServer, tmp_path: Path) -> None:
    """The master and worker commands of the rendered Jobs, run here on loopback."""
    spec = load_test_spec(
        host=api.url, duration="2", users=2, endpoint="/api/health", spawn_rate=20,
        wait=WaitSpec(kind="constant", seconds=0.01),
    )  # fmt: skip
    objects = render_locust_jobs(
        spec, namespace="ns", environment="staging", image="img", run_id="t1", workers=1
    )
    configmap, _service, master_job, worker_job = objects
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(configmap["data"]["spec.json"])
    port = free_port()
    termination = tmp_path / "termination-log"

    def command(job: dict[str, Any]) -> list[str]:
        argv = list(job["spec"]["template"]["spec"]["containers"][0]["command"])
        argv[0] = sys.executable
        argv[argv.index("--spec-file") + 1] = str(spec_file)
        if "--worker" in argv:
            at = argv.index("--worker")
            argv[at + 1 : at + 3] = ["127.0.0.1", str(port)]
        else:
            argv[argv.index("--master-port") + 1] = str(port)
        return argv

    env = dict(
        os.environ, TRADEWISE_LOCUST_BIND="127.0.0.1", TRADEWISE_TERMINATION_LOG=str(termination)
    )
    before = api.requests_counted("health")
    master = subprocess.Popen(
        command(master_job), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    )
    worker = subprocess.Popen(command(worker_job), env=env, stdin=subprocess.DEVNULL)
    try:
        out, _ = master.communicate(timeout=60)
        worker.wait(timeout=20)
    finally:
        for proc in (master, worker):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert master.returncode == 0 and worker.returncode == 0
    time.sleep(0.3)
    counted = api.requests_counted("health") - before
    summary = json.loads(termination.read_text())
    assert len(termination.read_bytes()) <= 4096
    assert summary["total"]["requests"] > 20
    assert 0 <= counted - summary["total"]["requests"] <= spec.users
    # the interval lines are on the master's stdout (the pod log)
    lines = [json.loads(line) for line in out.splitlines()]
    intervals = [Interval.from_message(m) for m in lines if m["type"] == "interval"]
    assert run_totals(intervals).requests == summary["total"]["requests"]


def test_a_generator_that_dies_is_an_error_not_a_verdict() -> None:
    spec = load_test_spec(
        host="http://127.0.0.1:9", duration="5", users=1, endpoint="/", spawn_rate=1
    )
    with pytest.raises(LoadGeneratorError, match="exited with code 1"):
        LoadRunner(python="/bin/false").run(spec)
