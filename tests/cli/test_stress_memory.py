"""``tradewise stress memory``: the memory fault grows real processes to a real limit.

Local path: the real local stack (gunicorn with 2 workers, a Celery worker, Redis); each target
process gets an address-space limit (RLIMIT_AS, as ``prlimit`` sets it: no cgroup is made
here), meets it, and ends as the OOM killer would end it; gunicorn brings its worker back, and
tradewise restarts the Celery worker as the kubelet would. Cluster path: the emulator, with the
test playing the kubelet's OOM kill of an API pod while the fault really grows the app process
(up to a bound, no limit).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.adapters.monitor_driver import Driver
from tests.k8s_emulator import Emulator
from tests.loadtest_app import ApiServer
from tradewise_ops.cli.main import app

pytest_plugins = ["tests.k8s_emulator.fixtures"]

REPO = Path(__file__).resolve().parents[2]


def invoke(cfg: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--config", str(cfg), "stress", *args])


def repo_config() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "tradewise.yaml").read_text(encoding="utf-8")))


def test_local_kill_recovery_and_no_task_lost(tmp_path: Path) -> None:
    from tests.helpers import free_port, require_binary
    from tradewise_ops.adapters.local import LocalStack
    from tradewise_ops.core.config import load_config

    require_binary("redis-server", "apt-get install redis-server")
    port = free_port()
    doc = repo_config()
    local = doc["environments"]["local"]
    local["url"] = f"http://127.0.0.1:{port}"
    local["local"].update(
        api_port=port, redis_port=free_port(), worker_processes=1, broker="redis",
        state_dir=str(tmp_path / "state"),
    )  # fmt: skip
    doc["stress"]["duration"]["memory"] = "60s"
    cfg = tmp_path / "tradewise.yaml"
    cfg.write_text(yaml.safe_dump(doc), encoding="utf-8")
    stack = LocalStack(load_config(cfg).environment("local"))
    stack.up(timeout=120)
    try:
        before = {p.name: p.pid for p in stack.status()}
        out = tmp_path / "report"
        result = invoke(cfg, "memory", "-e", "local", "--report", str(out), "-o", "json")
        after = {p.name: p for p in stack.status()}
    finally:
        stack.down()
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["scenario"] == "memory" and data["verdict"] == "pass"
    checks = {c["name"]: c for c in data["checks"]}
    assert set(checks) == {
        "api_oom_killed", "api_recovery_seconds", "worker_oom_killed",
        "worker_recovery_seconds", "no_task_lost", "error_rate",
    }  # fmt: skip
    assert checks["no_task_lost"]["actual"] == 5 == checks["no_task_lost"]["threshold"]
    assert checks["api_recovery_seconds"]["actual"] < 60
    assert checks["worker_recovery_seconds"]["actual"] < 60
    figures = data["figures"]
    assert set(figures["tasks"].values()) == {"SUCCESS"}
    (api_kill,) = figures["oom_kills"]["api"]
    (worker_kill,) = figures["oom_kills"]["worker"]
    assert api_kill["cause"] == worker_kill["cause"] == "OOMKilled"
    # the limits were real: 256 MiB above what each target had mapped
    for limit in figures["limits"].values():
        assert limit["limit_mb"] - limit["mapped_mb"] == 256
    assert str(before["worker-1"]) in figures["limits"]
    assert worker_kill["pod"] == f"worker-{before['worker-1']}"
    # the worker is a new process now (restarted), the gunicorn master the same
    assert after["worker-1"].state == "running" and after["worker-1"].pid != before["worker-1"]
    assert after["api"].pid == before["api"]
    assert data["load"]["stopped_by"] == "recovered"
    assert "restarting it, as the kubelet restarts a container" in result.stderr
    assert (out / "monitor.html").exists() and (out / "timeline.jsonl").exists()


def test_cluster_oom_kill_played_on_the_emulator(
    emulator: Emulator, kubeconfig: Path, tmp_path: Path
) -> None:
    """The fault really grows the app (64 Mi limit: at most 96 MiB, no limit met); the test
    plays the kubelet: an OOMKilling event, the pod's container OOMKilled, a replacement."""
    server = ApiServer(tmp_path / "api", extra_env={"TRADEWISE_FAULTS": "memory"})
    try:
        doc = repo_config()
        staging = doc["environments"]["staging"]
        staging["url"] = server.url
        staging["components"]["api"]["resources"] = {
            "requests": {"cpu": "500m", "memory": "32Mi"},
            "limits": {"cpu": "1000m", "memory": "64Mi"},
        }
        doc["stress"]["duration"]["memory"] = "30s"
        cfg = tmp_path / "tradewise.yaml"
        cfg.write_text(yaml.safe_dump(doc), encoding="utf-8")
        driver = Driver(emulator)
        driver.baseline()

        def play() -> None:
            driver.wait_watching(timeout=30)
            time.sleep(3.0)  # the fault has started (2 s of load first)
            driver.kill_pod("api-1", "api-9", gap=0.8)

        thread = threading.Thread(target=play, daemon=True)
        thread.start()
        result = invoke(cfg, "memory", "-e", "staging", "--target", "api", "-o", "json")
        thread.join(30)
    finally:
        server.stop()
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    checks = {c["name"]: c for c in data["checks"]}
    assert set(checks) == {"api_oom_killed", "api_recovery_seconds", "error_rate"}
    assert checks["api_recovery_seconds"]["actual"] == pytest.approx(0.8, abs=0.4)
    (kill,) = data["figures"]["oom_kills"]["api"]
    assert (kill["deployment"], kill["pod"], kill["cause"]) == (
        "tradewise-api-deployment", "api-1", "OOMKilled",
    )  # fmt: skip
    assert data["figures"]["tasks"] is None and data["figures"]["limits"] is None
    assert data["load"]["stopped_by"] == "recovered" and data["load"]["ran_seconds"] < 20
    assert "event OOMKilling Pod/api-1" in result.stderr
    assert "memory fault started in the api (pid " in result.stderr


def test_a_node_oom_fails_the_verdict(emulator: Emulator, kubeconfig: Path, tmp_path: Path) -> None:
    """An eviction for memory pressure on the node: the pod was not the one OOM-killed."""
    server = ApiServer(tmp_path / "api", extra_env={"TRADEWISE_FAULTS": "memory"})
    try:
        doc = repo_config()
        staging = doc["environments"]["staging"]
        staging["url"] = server.url
        staging["components"]["api"]["resources"] = {
            "requests": {"cpu": "500m", "memory": "32Mi"},
            "limits": {"cpu": "1000m", "memory": "64Mi"},
        }
        doc["stress"]["duration"]["memory"] = "8s"
        cfg = tmp_path / "tradewise.yaml"
        cfg.write_text(yaml.safe_dump(doc), encoding="utf-8")
        driver = Driver(emulator)
        driver.baseline()

        def play() -> None:
            driver.wait_watching(timeout=30)
            time.sleep(3.0)
            driver.event("Node", "node-1", "SystemOOM", "System OOM encountered", "Warning")
            driver.kill_pod("api-1", "api-9", gap=0.3)

        thread = threading.Thread(target=play, daemon=True)
        thread.start()
        result = invoke(cfg, "memory", "-e", "staging", "--target", "api", "-o", "json")
        thread.join(30)
    finally:
        server.stop()
    assert result.exit_code == 1, result.stderr
    data = json.loads(result.stdout)
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["api_oom_killed"]["met"] is False
    assert checks["api_recovery_seconds"]["met"] is True
    (finding,) = data["findings"]
    assert finding["code"] == "node-memory" and "SystemOOM Node/node-1" in finding["message"]


def test_refusals(tmp_path: Path) -> None:
    doc = repo_config()
    doc["environments"]["prod"]["url"] = "http://127.0.0.1:9"
    doc["environments"]["prod"]["faults"] = ["memory"]
    doc["environments"]["staging"]["url"] = "http://127.0.0.1:9"
    doc["environments"]["staging"]["faults"] = ["uncached"]
    cfg = tmp_path / "tradewise.yaml"
    cfg.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = invoke(cfg, "memory", "-e", "prod")
    assert result.exit_code == 2
    assert "prod is production: stress memory OOM-kills its pods; add --i-mean-prod" in (
        result.stderr
    )
    # with --i-mean-prod it goes on: prod asks for confirmation, stdin is no terminal
    result = invoke(cfg, "memory", "-e", "prod", "--i-mean-prod")
    assert result.exit_code == 2 and "needs confirmation: add --yes" in result.stderr
    result = invoke(cfg, "memory", "-e", "prod", "--i-mean-prod", "--yes")
    assert result.exit_code == 3 and "does not answer" in result.stderr
    result = invoke(cfg, "memory", "-e", "staging")
    assert result.exit_code == 2
    assert "add memory to environments.staging.faults" in result.stderr
    result = invoke(cfg, "memory", "-e", "local", "--target", "db")
    assert result.exit_code == 2 and "use api, worker or both" in result.stderr
