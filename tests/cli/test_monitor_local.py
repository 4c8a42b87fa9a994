"""``tradewise monitor --env local``: process counts and the app's own metrics, scraped over HTTP.

The real bundled app under gunicorn on loopback, slowed by its chaos knob so that the seed's
p95 alert fires; the local stack's own processes are not started (their counts are real: zero).
Then the real local stack (redis-server, gunicorn, Celery workers, the scheduler), scaled by
``local scale`` and ``scale traffic`` from another process while the monitor watches it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.helpers import free_port, require_binary, wait_until
from tests.loadtest_app import ApiServer
from tradewise_ops.cli.main import app

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def slow_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer(
        tmp_path_factory.mktemp("slow-app"), extra_env={"TRADEWISE_INJECT_LATENCY_MS": "600"}
    )
    yield server
    server.stop()


def _config(tmp_path: Path, url: str) -> Path:
    doc: dict[str, Any] = yaml.safe_load((REPO / "tradewise.yaml").read_text(encoding="utf-8"))
    local = doc["environments"]["local"]
    local["url"] = url
    local["local"]["state_dir"] = str(tmp_path / "state")
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _traffic(url: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url + "/api/stock-analysis?symbol=AAPL", timeout=5) as r:
                r.read()
        except OSError:
            pass


def test_local_monitor_scrapes_the_app_and_warns_on_p95(
    slow_app: ApiServer, tmp_path: Path
) -> None:
    stop = threading.Event()
    senders = [
        threading.Thread(target=_traffic, args=(slow_app.url, stop), daemon=True) for _ in range(4)
    ]
    for t in senders:
        t.start()
    try:
        result = CliRunner().invoke(
            app,
            [
                "--config",
                str(_config(tmp_path, slow_app.url)),
                "monitor",
                "4",
                "-e",
                "local",
                "-o",
                "json",
                "--record",
                str(tmp_path / "local.jsonl"),
            ],
        )
    finally:
        stop.set()
        for t in senders:
            t.join(10)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    state = data["state"]
    assert state["processes"]["api"] == {"running": 0, "wanted": 2}
    assert state["processes"]["worker"] == {"running": 0, "wanted": 1}
    assert state["hpas"] == [] and data["scale_ups"] == []
    traffic = state["traffic"]
    assert traffic["source"] == "app" and traffic["rps"] > 1
    assert traffic["p95_ms"] > 500
    assert [w["code"] for w in data["warnings"]] == ["p95"]
    assert "p95 response time" in result.stderr  # shown when seen
    assert data["verdict"] == "none"
    lines = (tmp_path / "local.jsonl").read_text(encoding="utf-8").splitlines()
    assert {json.loads(line)["type"] for line in lines} >= {"process", "load", "warning"}


def test_local_monitor_with_the_app_down_exits_3(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        app, ["--config", str(_config(tmp_path, url)), "monitor", "3", "-e", "local"]
    )
    assert result.exit_code == 3, result.stderr
    assert f"the app's metrics at {url}/metrics do not answer" in result.stderr
    assert "tradewise local up" in result.stderr


# -- the real local stack, scaled while the monitor runs -----------------------------------------
@pytest.fixture(scope="module")
def stack_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running local stack (1 gunicorn worker, 1 Celery worker) on free loopback ports."""
    from tradewise_ops.adapters.local import LocalStack
    from tradewise_ops.core.config import load_config

    require_binary("redis-server", "apt-get install redis-server")
    tmp = tmp_path_factory.mktemp("monitor-stack")
    doc: dict[str, Any] = yaml.safe_load((REPO / "tradewise.yaml").read_text(encoding="utf-8"))
    local = doc["environments"]["local"]
    api_port = free_port()
    local["url"] = f"http://127.0.0.1:{api_port}"
    local["max_replicas"] = 4
    local["components"] = {c: {"autoscaling": {"min": 1, "max": 4}} for c in ("api", "worker")}
    local["local"] = {
        "api_port": api_port,
        "api_processes": 1,
        "worker_processes": 1,
        "redis_port": free_port(),
        "state_dir": str(tmp / "state"),
    }
    doc["profiles"] = {"low": {"api": 1, "workers": 1}, "high": {"api": 2, "workers": 2}}
    doc["schedules"] = []
    path = tmp / "tradewise.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    stack = LocalStack(load_config(path, environ={}).environment("local"))
    try:
        stack.up(timeout=120)
        yield path
    finally:
        stack.down(grace=5)


def test_local_monitor_sees_scales_made_while_it_runs(stack_config: Path) -> None:
    """`local scale workers 3`, then `scale traffic high`, from another process: both show as
    they happen (a line each, stderr not a terminal), and the summary times the scale-ups."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWISE_")}
    env["NO_COLOR"] = "1"
    cmd = [sys.executable, "-m", "tradewise_ops", "--config", str(stack_config)]
    proc = subprocess.Popen(
        [*cmd, "monitor", "60", "-e", "local", "-o", "json"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err: list[str] = []
    stderr = proc.stderr
    assert stderr is not None
    reader = threading.Thread(target=lambda: err.extend(iter(stderr.readline, "")))
    reader.start()
    try:
        wait_until(lambda: any("==> monitoring" in line for line in err), 30, what="monitoring")
        by_hand = CliRunner().invoke(
            app, ["--config", str(stack_config), "local", "scale", "workers", "3", "-e", "local"]
        )
        assert by_hand.exit_code == 0, by_hand.stderr
        wait_until(lambda: _now(err, "worker") == (3, 3), 20, what="3 workers")
        profile = CliRunner().invoke(
            app, ["--config", str(stack_config), "scale", "traffic", "high", "-e", "local"]
        )
        assert profile.exit_code == 0, profile.stderr
        wait_until(lambda: _now(err, "api") == (2, 2), 20, what="2 API workers")
        wait_until(lambda: _now(err, "worker") == (2, 2), 20, what="2 workers")
        time.sleep(1.5)  # one more sample
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the summary of what was seen
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(10)
    assert proc.returncode == 0, "".join(err)
    data = json.loads(out)
    ups = [
        (u["hpa"], u["from_replicas"], u["to_replicas"], u["verdict"]) for u in data["scale_ups"]
    ]
    assert ups == [("worker processes", 1, 3, "pass"), ("api processes", 1, 2, "pass")]
    assert all(u["total_seconds"] is not None for u in data["scale_ups"])
    downs = [(d["hpa"], d["from_replicas"], d["to_replicas"]) for d in data["scale_downs"]]
    assert downs == [("worker processes", 3, 2)]
    assert data["sentence"].startswith("Scaling SLOs met: 2 scale-up(s)")
    # "wanted" follows the recorded scale, not the config's 1 and 1
    processes = data["state"]["processes"]
    assert processes["api"] == {"running": 2, "wanted": 2}
    assert processes["worker"] == {"running": 2, "wanted": 2}
    # a line per change, in order: wanted first, then the processes following it (or both in
    # one line when they moved within one sample)
    lines = [line.strip() for line in err]
    assert _first(lines, "worker", wanted=3) <= _first(lines, "worker", running=3)
    assert _first(lines, "api", wanted=2) <= _first(lines, "api", running=2)
    assert _first(lines, "worker", wanted=2) > _first(lines, "worker", running=3)


_LINE = re.compile(r"^(\w+) processes: running (?:\d+ -> )?(\d+), wanted (?:\d+ -> )?(\d+)$")


def _changes(lines: list[str], component: str) -> list[tuple[int, int, int]]:
    """(line number, running, wanted) of each change line of ``component``."""
    out = []
    for i, line in enumerate(list(lines)):
        m = _LINE.match(line.strip())
        if m and m.group(1) == component:
            out.append((i, int(m.group(2)), int(m.group(3))))
    return out


def _now(lines: list[str], component: str) -> tuple[int, int] | None:
    """(running, wanted) as the latest line says, None before any line."""
    changes = _changes(lines, component)
    return changes[-1][1:] if changes else None


def _first(
    lines: list[str], component: str, running: int | None = None, wanted: int | None = None
) -> int:
    return next(
        i
        for i, r, w in _changes(lines, component)
        if (running is None or r == running) and (wanted is None or w == wanted)
    )
