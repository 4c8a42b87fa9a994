"""``--in-cluster``: the Locust Jobs applied through the Kubernetes gateway, on the emulator.

The emulator has no Job controller: the test plays it (a master pod that terminated with the
generator's summary as its termination message, then the Job marked succeeded), as the
emulator's own contract says tests do.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.k8s_emulator.emulator import Emulator
from tradewise_ops.cli.main import app
from tradewise_ops.core.loadreport import EndpointCounts, compact_summary

pytest_plugins = ["tests.k8s_emulator.fixtures"]

NS = "tradewise-ai"


def summary(latency_ms: float, requests: int = 400, failures: int = 0) -> dict[str, Any]:
    counts = EndpointCounts(requests=requests, failures=failures)
    for _ in range(requests):
        counts.latency.add(latency_ms)
    return compact_summary({"/api/health": counts}, ran_seconds=30.0, stopped_by="duration")


def play_controller(
    emu: Emulator, result: dict[str, Any], *, fail: bool = False
) -> threading.Thread:
    """When the master Job appears: its pod terminates with ``result``, the Job completes."""

    def run() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            jobs = [j for j in emu.list("Job", NS) if j["metadata"]["name"].endswith("-master")]
            if jobs:
                break
            time.sleep(0.05)
        else:
            return
        job = jobs[0]
        labels = job["spec"]["template"]["metadata"]["labels"]
        emu.put(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": job["metadata"]["name"] + "-x1", "namespace": NS,
                             "labels": labels},
                "spec": job["spec"]["template"]["spec"],
                "status": {
                    "phase": "Failed" if fail else "Succeeded",
                    "containerStatuses": [
                        {"name": "locust-master",
                         "state": {"terminated": {"exitCode": 1 if fail else 0,
                                                  "message": "" if fail else json.dumps(result)}}}
                    ],
                },
            }
        )  # fmt: skip
        job = emu.get("Job", NS, job["metadata"]["name"]) or job
        job["status"] = {"failed": 1} if fail else {"succeeded": 1}
        emu.put(job)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_in_cluster_applies_the_jobs_waits_and_reads_the_verdict(
    emulator: Emulator, kubeconfig: Path, tmp_path: Path
) -> None:
    thread = play_controller(emulator, summary(42.0))
    result = invoke(
        "load-test", "30", "10", "/api/health", "--env", "staging", "--in-cluster",
        "--workers", "2", "--report", str(tmp_path), "-o", "json",
    )  # fmt: skip
    thread.join(timeout=5)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["total"]["requests"] == 400
    assert doc["total"]["p95_ms"] == pytest.approx(42, rel=0.01)
    assert doc["verdict"]["met"] is True
    run_id = doc["in_cluster"]["run_id"]
    assert doc["target"] == f"http://tradewise-api-service.{NS}.svc"
    # the Jobs stay for their logs; the ConfigMap and the Service are cleaned up
    jobs = {j["metadata"]["name"] for j in emulator.list("Job", NS)}
    assert jobs == {f"tradewise-loadtest-{run_id}-master", f"tradewise-loadtest-{run_id}-worker"}
    worker = emulator.get("Job", NS, f"tradewise-loadtest-{run_id}-worker")
    assert worker is not None and worker["spec"]["parallelism"] == 2
    assert emulator.get("ConfigMap", NS, f"tradewise-loadtest-{run_id}-spec") is None
    assert emulator.get("Service", NS, f"tradewise-loadtest-{run_id}-master") is None
    assert json.loads((tmp_path / "report.json").read_text())["verdict"]["met"] is True


def test_in_cluster_slo_breach_exits_1(emulator: Emulator, kubeconfig: Path) -> None:
    thread = play_controller(emulator, summary(800.0))
    result = invoke("load-test", "30", "10", "/api/health", "--env", "staging", "--in-cluster")
    thread.join(timeout=5)
    assert result.exit_code == 1, result.stderr
    assert "SLOs missed: p95 < 500 ms (800 ms) MISSED" in result.stderr
    assert "/api/health" in result.stdout


def test_in_cluster_failed_master_job_says_where_the_logs_are(
    emulator: Emulator, kubeconfig: Path
) -> None:
    thread = play_controller(emulator, {}, fail=True)
    result = invoke("load-test", "30", "10", "/api/health", "--env", "staging", "--in-cluster")
    thread.join(timeout=5)
    assert result.exit_code == 1
    assert "Locust master Job" in result.stderr and "failed" in result.stderr
    assert f"kubectl logs -n {NS} job/tradewise-loadtest-" in result.stderr
