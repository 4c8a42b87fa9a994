"""``tradewise restart --env local`` on a real local stack: processes restarted one at a time,
the API reloaded by gunicorn without a single failed request (a request loop runs throughout)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.helpers import free_port
from tradewise_ops.adapters.local.common import children_of
from tradewise_ops.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text())
    raw["environments"]["local"]["local"] = {
        "api_port": free_port(),
        "redis_port": free_port(),
        "api_processes": 1,
        "worker_processes": 1,
        "state_dir": str(tmp_path / "state"),
    }
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--config", str(config), *args])


class RequestLoop:
    """GETs the API back to back on fresh connections, recording each answer and its time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.results: list[tuple[float, str]] = []  # (monotonic time, "200" or the error)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        paths = ["/api/health", "/api/stock-analysis?symbol=AAPL", "/api/performance/stats"]
        i = 0
        while not self.stop.is_set():
            path = paths[i % len(paths)]
            i += 1
            try:
                with urllib.request.urlopen(self.url + path, timeout=30) as response:
                    response.read()
                    outcome = str(response.status)
            except urllib.error.HTTPError as exc:
                outcome = f"HTTP {exc.code} on {path}"
            except OSError as exc:
                outcome = f"{type(exc).__name__} on {path}: {exc}"
            self.results.append((time.monotonic(), outcome))

    def __enter__(self) -> RequestLoop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=40)


def test_local_restart_all_drops_no_request(config: Path) -> None:
    try:
        up = run(config, "local", "up", "-o", "json")
        assert up.exit_code == 0, up.stderr
        url = json.loads(up.stdout)["url"]
        assert run(config, "local", "scale", "api", "2").exit_code == 0
        before = {
            p["name"]: p
            for p in json.loads(run(config, "local", "ps", "-o", "json").stdout)["processes"]
        }
        master = before["api"]["pid"]
        old_workers = set(children_of(master))
        assert len(old_workers) == 2

        dry = run(config, "restart", "all", "--env", "local", "--dry-run", "-o", "json")
        assert dry.exit_code == 0, dry.stderr
        steps = [(s["action"], s["name"]) for s in json.loads(dry.stdout)["steps"]]
        assert steps == [
            ("reload", "api"),
            ("stop-start", "worker-1"),
            ("stop-start", "precompute"),
        ]
        assert set(children_of(master)) == old_workers  # a dry run

        with RequestLoop(url) as loop:
            time.sleep(0.5)
            began = time.monotonic()
            result = run(config, "restart", "all", "--env", "local", "-o", "json")
            ended = time.monotonic()
            time.sleep(0.5)
        assert result.exit_code == 0, result.stderr
        doc = json.loads(result.stdout)
        assert doc["ok"] and [w["name"] for w in doc["workloads"]] == [
            "api",
            "worker-1",
            "precompute",
        ]

        failures = [r for r in loop.results if r[1] != "200"]
        assert failures == [], failures[:5]
        during = [t for t, _ in loop.results if began <= t <= ended]
        assert len(during) >= 10, f"only {len(during)} requests during the restart"

        after = {
            p["name"]: p
            for p in json.loads(run(config, "local", "ps", "-o", "json").stdout)["processes"]
        }
        assert after["api"]["pid"] == master  # the master reloads; it is not replaced
        new_workers = set(children_of(master))
        assert len(new_workers) == 2  # the count `scale` set survives the reload
        assert not (new_workers & old_workers)
        assert {f"pid {p}" for p in new_workers} == set(doc["workloads"][0]["new_pods"])
        for name in ("worker-1", "precompute"):
            assert after[name]["state"] == "running"
            assert after[name]["pid"] != before[name]["pid"]
            assert doc["workloads"][[w["name"] for w in doc["workloads"]].index(name)][
                "new_pods"
            ] == [f"pid {after[name]['pid']}"]
        assert "reloading api" in result.stderr and "restarting worker-1" in result.stderr

        only = run(config, "restart", "precompute", "--env", "local")
        assert only.exit_code == 0, only.stderr
        assert set(children_of(master)) == new_workers  # only the scheduler this time
    finally:
        down = run(config, "local", "down")
    assert down.exit_code == 0, down.stderr


def test_local_restart_when_down_says_so(config: Path) -> None:
    result = run(config, "restart", "api", "--env", "local")
    assert result.exit_code == 2
    assert "local up" in result.stderr
