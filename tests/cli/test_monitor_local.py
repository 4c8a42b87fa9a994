"""``tradewise monitor --env local``: process counts and the app's own metrics, scraped over HTTP.

The real bundled app under gunicorn on loopback, slowed by its chaos knob so that the seed's
p95 alert fires; the local stack's own processes are not started (their counts are real: zero).
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.helpers import free_port
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
