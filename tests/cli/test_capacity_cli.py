"""``tradewise capacity``: real stepped load against the real app, nodes from the emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.helpers import port_open, require_binary, wait_until
from tests.k8s_emulator import Emulator
from tests.loadtest_app import ApiServer
from tradewise_ops.cli.main import app
from tradewise_ops.core.config import embedded_config_path

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ANALYSIS = "/api/stock-analysis?symbol=AAPL"
TRADEWISE = str(Path(sys.executable).parent / "tradewise")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def node(name: str, cpu: str, memory: str, taint: bool = False) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {
            "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
        }
        if taint
        else {},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


@pytest.fixture(scope="module")
def slow_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One gunicorn worker, 150 ms added to every analysis: 4 users queue past 500 ms."""
    server = ApiServer(
        tmp_path_factory.mktemp("slow"),
        extra_env={"TRADEWISE_INJECT_LATENCY_MS": "150", "WEB_CONCURRENCY": "1"},
    )
    yield server
    server.stop()


@pytest.mark.parametrize("generator", ["wrk", "locust"])
def test_local_measures_one_process_it_starts_and_stops(generator: str) -> None:
    if generator == "wrk":
        require_binary("wrk", "apt-get install wrk")
    result = invoke(
        "capacity", "--env", "local", "--endpoint", "/api/health", "--max-seconds", "8",
        "--step-seconds", "2", "--generator", generator, "-o", "json",
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert doc["measurement"]["generator"]["tool"] == generator
    assert doc["measurement"]["generator"]["cpu_seconds"] > 0
    shortfall = [p["name"] for p in doc["profiles"] if not p["ok"]]
    assert result.exit_code == (1 if shortfall else 0), result.stderr
    measured = doc["measurement"]
    assert measured["replicas_measured"] == 1 and measured["workload"] == "/api/health"
    assert "one local API process at http://127.0.0.1:" in measured["target"]
    steps = measured["steps"]
    assert [s["users"] for s in steps] == [1, 2, 4, 8][: len(steps)] and len(steps) >= 2
    best = max(s["rps"] for s in steps if s["within_slo"])
    assert doc["per_replica_rps"] == pytest.approx(best, abs=0.1) and best > 20
    assert [p["name"] for p in doc["profiles"]] == ["low", "medium", "high", "peak"]
    for p in doc["profiles"]:
        assert set(p) >= {"name", "rps", "replicas", "replicas_needed", "ok"}
    # the process it started is gone
    port = urlsplit(measured["target"].split(" at ")[1].split(",")[0]).port
    assert port is not None and not port_open("127.0.0.1", port)


@pytest.mark.parametrize("generator", ["wrk", "locust"])
def test_stepping_stops_where_the_slo_breaks(slow_api: ApiServer, generator: str) -> None:
    if generator == "wrk":
        require_binary("wrk", "apt-get install wrk")
    result = invoke(
        "capacity", "--host", slow_api.url, "--endpoint", ANALYSIS, "--max-seconds", "20",
        "--step-seconds", "2", "--generator", generator, "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    steps = doc["measurement"]["steps"]
    assert doc["measurement"]["stopped_by"] == "slo"
    assert steps[-1]["within_slo"] is False and steps[-1]["p95_ms"] > 500
    assert all(s["within_slo"] for s in steps[:-1]) and len(steps) < 10  # stopped early
    assert doc["per_replica_rps"] == max(s["rps"] for s in steps[:-1])
    assert doc["per_replica_rps"] < 20  # ~6 analyses/s per user, a few users at most
    low = doc["profiles"][0]
    assert low["name"] == "low" and low["ok"] is False and low["replicas_needed"] > 2
    assert "under-provisioned: low: 100 req/s needs" in result.stderr


def test_wrk_sends_the_performance_mix_by_its_weights(slow_api: ApiServer) -> None:
    require_binary("wrk", "apt-get install wrk")
    before = {e: slow_api.requests_counted(e) for e in ("health", "stock_analysis")}
    result = invoke(
        "capacity", "--host", slow_api.url, "--max-seconds", "4", "--step-seconds", "2",
        "--generator", "wrk", "-o", "json",
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert doc["measurement"]["workload"] == "performance_test mix", result.stderr
    sent = {e: slow_api.requests_counted(e) - before[e] for e in before}
    # weights health 3, analysis 5 + 2, stats 1: analyses take 150 ms here, health none, so the
    # closed loop sends far more health checks, but both kinds (and only the mix's paths) arrive
    assert sent["health"] > 0 and sent["stock_analysis"] > 0, sent
    assert slow_api.requests_counted("unmatched") == 0
    steps = doc["measurement"]["steps"]
    assert [s["users"] for s in steps] == [1, 2] and all(s["requests"] > 0 for s in steps)


def test_sigterm_during_a_wrk_step_stops_it_and_exits_143(slow_api: ApiServer) -> None:
    require_binary("wrk", "apt-get install wrk")
    proc = subprocess.Popen(
        [TRADEWISE, "capacity", "--host", slow_api.url, "--endpoint", "/api/health",
         "--max-seconds", "120", "--step-seconds", "30", "--generator", "wrk"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, NO_COLOR="1"),
    )  # fmt: skip
    try:
        base = slow_api.requests_counted("health")
        wait_until(lambda: slow_api.requests_counted("health") > base + 20, timeout=30, what="load")
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
        took = time.monotonic() - sent_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    assert took < 10, f"stopping took {took:.1f}s"
    assert "step-1: 1 user" in stderr  # the partial step, judged and printed
    assert "interrupted after 1 step(s)" in stderr
    count = slow_api.requests_counted("health")
    time.sleep(0.5)
    assert slow_api.requests_counted("health") == count  # wrk is gone: no load after the exit


def test_nodes_allocatable_from_the_cluster(emulator: Emulator, kubeconfig: Path) -> None:
    for obj in (node("n1", "4", "16Gi"), node("n2", "4", "16Gi"), node("cp", "8", "32Gi", True)):
        emulator.put(obj)
    result = invoke("capacity", "--env", "staging", "--per-replica-rps", "400", "-o", "json")
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["measurement"] is None and doc["per_replica_rps"] == 400
    by_name = {p["name"]: p for p in doc["profiles"]}
    assert by_name["low"]["ok"] is True and by_name["low"]["allocatable"]["fits"] is True
    peak = by_name["peak"]["allocatable"]
    assert by_name["peak"]["ok"] is False and peak["pending"] == {"api": 4}
    assert peak["skipped_nodes"] == ["cp (taint node-role.kubernetes.io/control-plane:NoSchedule)"]
    sentence = (
        "peak needs 9.85 CPU and 10.4 GiB of requests; the 2 schedulable node(s) have 8 CPU and "
        "32.0 GiB allocatable: 4 API pods would stay Pending"
    )
    assert peak["sentence"] == sentence and sentence in result.stderr
    assert any(r.method == "GET" and r.path == "/api/v1/nodes" for r in emulator.requests)


def test_nodes_that_rbac_hides_skip_the_check_with_a_warning(
    emulator: Emulator, kubeconfig: Path
) -> None:
    emulator.put(node("n1", "1", "1Gi"))
    emulator.deny("list", "nodes")
    result = invoke("capacity", "--env", "staging", "--per-replica-rps", "400", "-o", "json")
    assert result.exit_code == 0, result.stderr  # enough replicas; the nodes were not judged
    doc = json.loads(result.stdout)
    assert "nodes cannot be read" in doc["allocatable_skipped"] and "nodes" in result.stderr
    assert all("allocatable" not in p for p in doc["profiles"])


def test_measured_replica_against_the_clusters_nodes(
    emulator: Emulator, kubeconfig: Path, slow_api: ApiServer
) -> None:
    emulator.put(node("big", "64", "256Gi"))
    result = invoke(
        "capacity", "--env", "staging", "--host", slow_api.url, "--endpoint", "/api/health",
        "--max-seconds", "4", "--step-seconds", "2", "-o", "json",
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert all(p["allocatable"]["fits"] for p in doc["profiles"])
    short = [p for p in doc["profiles"] if not p["ok"]]
    assert result.exit_code == (1 if short else 0), result.stderr
    assert doc["measurement"]["target"] == slow_api.url
    assert len(doc["measurement"]["steps"]) == 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--max-seconds", "1", "--step-seconds", "2"], "shorter than one step"),
        (["--headroom", "-5", "--per-replica-rps", "10"], "--headroom must be 0 or more"),
        (["--per-replica-rps", "0"], "--per-replica-rps must be above 0"),
        (["--env", "compose"], "give --host URL of one API process"),
        (["--env", "local", "--replicas", "2"], "--replicas goes with --host"),
        (["--generator", "ab"], "--generator 'ab': use auto, wrk or locust"),
    ],
)
def test_bad_input_exits_2(args: list[str], says: str) -> None:
    result = invoke("capacity", *args)
    assert result.exit_code == 2, result.stderr
    assert says in result.stderr


def test_a_band_that_is_no_band_exits_2(tmp_path: Path) -> None:
    raw = yaml.safe_load(embedded_config_path().read_text())
    raw["profiles"]["low"]["rps"] = "lots"
    config = tmp_path / "tradewise.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = invoke("--config", str(config), "capacity", "--per-replica-rps", "100")
    assert result.exit_code == 2
    assert "profiles.low.rps 'lots' is not a requests/s band" in result.stderr
