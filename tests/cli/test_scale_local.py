"""``tradewise scale --env local``: real processes (gunicorn workers, Celery workers) at run time.

One local stack for the module (redis-server, gunicorn, a Celery worker, the scheduler) on free
loopback ports with a private state dir; small profiles so the 2-core machine stays responsive.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.helpers import free_port, require_binary, wait_until
from tradewise_ops.adapters.local import LocalStack
from tradewise_ops.cli.main import app
from tradewise_ops.core.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("scale-local")
    doc: dict[str, Any] = yaml.safe_load((REPO / "tradewise.yaml").read_text(encoding="utf-8"))
    local = doc["environments"]["local"]
    api_port = free_port()
    local["url"] = f"http://127.0.0.1:{api_port}"
    local["max_replicas"] = 4
    # every count within max_replicas, the inherited HPA ceilings too (the config refuses 20 > 4)
    local["components"] = {c: {"autoscaling": {"min": 1, "max": 4}} for c in ("api", "worker")}
    local["local"] = {
        "api_port": api_port,
        "api_processes": 1,
        "worker_processes": 1,
        "redis_port": free_port(),
        "state_dir": str(tmp / "state"),
    }
    doc["profiles"] = {"low": {"api": 1, "workers": 1}, "medium": {"api": 2, "workers": 2}}
    doc["schedules"] = []
    path = tmp / "tradewise.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stack(local_config: Path) -> Iterator[LocalStack]:
    require_binary("redis-server", "apt-get install redis-server")
    s = LocalStack(load_config(local_config, environ={}).environment("local"))
    try:
        s.up(timeout=120)
        yield s
    finally:
        s.down(grace=5)


def run(config: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--config", str(config), "--env", "local", *args])


def test_scale_workers_and_api_processes_at_run_time(stack: LocalStack, local_config: Path) -> None:
    assert stack.counts()["api"] == 1 and stack.counts()["worker"] == 1
    result = run(local_config, "scale", "workers", "2")
    assert result.exit_code == 0, result.stderr
    assert stack.counts()["worker"] == 2
    result = run(local_config, "scale", "api", "2", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["steps"][0]["target"] == "api processes"
    assert (doc["steps"][0]["replicas_before"], doc["steps"][0]["replicas"]) == (1, 2)
    assert doc["steps"][0]["hpa"] is None
    assert stack.counts()["api"] == 2

    status = run(local_config, "scale", "status", "-o", "json")
    assert status.exit_code == 0, status.stderr
    rows = {d["component"]: d for d in json.loads(status.stdout)["deployments"]}
    assert (rows["api"]["desired"], rows["worker"]["desired"]) == (2, 2)
    assert rows["precompute"]["desired"] == 1
    assert json.loads(status.stdout)["hpas"] == []


def test_profile_emergency_down_and_bad_input_locally(
    stack: LocalStack, local_config: Path
) -> None:
    result = run(local_config, "scale", "traffic", "medium")
    assert result.exit_code == 0, result.stderr
    assert (stack.counts()["api"], stack.counts()["worker"]) == (2, 2)
    status = json.loads(run(local_config, "scale", "status", "-o", "json").stdout)
    assert status["profile"]["name"] == "medium"
    assert status["profile"]["applied_at"].endswith("Z")
    table = run(local_config, "scale", "status")
    assert table.exit_code == 0, table.stderr
    assert "traffic profile: medium" in table.stdout and "api processes" in table.stdout

    down = run(local_config, "scale", "emergency-down")
    assert down.exit_code == 0, down.stderr
    counts = stack.counts()
    assert (counts["api"], counts["worker"]) == (1, 1)
    assert counts["precompute"] == 1  # the local stack does not stop precompute on its own
    assert "precompute not touched" in down.stderr
    status = json.loads(run(local_config, "scale", "status", "-o", "json").stdout)
    assert status["profile"]["name"] == "emergency-down"

    bad = run(local_config, "scale", "api", "0")
    assert bad.exit_code == 2
    assert "needs at least 1 API process" in bad.stderr
    over = run(local_config, "scale", "workers", "5")
    assert over.exit_code == 2 and "above the cap of 4" in over.stderr
    assert (stack.counts()["api"], stack.counts()["worker"]) == (1, 1)

    # scaled by hand: `local scale` records what it set as the profile manual
    by_hand = run(local_config, "local", "scale", "workers", "2")
    assert by_hand.exit_code == 0, by_hand.stderr
    status = json.loads(run(local_config, "scale", "status", "-o", "json").stdout)
    assert status["profile"]["name"] == "manual"
    assert status["profile"]["applied_at"].endswith("Z")
    rows = {d["component"]: d["desired"] for d in status["deployments"]}
    assert (rows["api"], rows["worker"]) == (1, 2)
    table = run(local_config, "scale", "status")
    assert "traffic profile: manual" in table.stdout
    assert "no `tradewise scale` has run" not in table.stdout

    # a count that no longer holds (a worker died since) shows no profile: nothing false
    worker = next(i for i in stack.status() if i.name == "worker-2")
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    wait_until(lambda: stack.counts()["worker"] == 1, timeout=10, what="worker-2 gone")
    status = json.loads(run(local_config, "scale", "status", "-o", "json").stdout)
    assert status["profile"]["name"] is None
