"""``tradewise stress cpu``: real stepped load on the real app; the HPA played on the emulator
(cluster path) or a real scale step of the local stack's gunicorn workers (local path)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.adapters.monitor_driver import Driver
from tests.k8s_emulator import Emulator
from tests.loadtest_app import ApiServer
from tradewise_ops.cli.main import app
from tradewise_ops.core.timeline import HpaSample, LoadSample, loads_jsonl

pytest_plugins = ["tests.k8s_emulator.fixtures"]

REPO = Path(__file__).resolve().parents[2]
STRESS = {
    "duration": {"cpu": "30s", "memory": "30s", "db": "10s"},
    "step_seconds": 2,
    "max_users": 4,
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer(
        tmp_path_factory.mktemp("cpu-api"), extra_env={"TRADEWISE_FAULTS": "uncached"}
    )
    yield server
    server.stop()


def config(tmp_path: Path, env: str, url: str, **extra: Any) -> Path:
    """The repo's config with ``env`` at ``url`` and short stress steps."""
    doc: dict[str, Any] = yaml.safe_load((REPO / "tradewise.yaml").read_text(encoding="utf-8"))
    doc["environments"][env]["url"] = url
    doc["environments"]["local"]["local"]["state_dir"] = str(tmp_path / "state")
    doc["stress"] = {**STRESS, **extra}
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def invoke(cfg: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--config", str(cfg), "stress", *args])


def wait_quiet(server: ApiServer, endpoint: str = "stock_analysis", quiet: float = 5.0) -> None:
    """Until the app has answered no new request for ``quiet`` seconds (the load stopped: the
    climb and the hold are two runs, about 2 s apart)."""
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        count = server.requests_counted(endpoint)
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.2)
    raise TimeoutError("the load did not stop")


def wait_load(server: ApiServer, endpoint: str = "stock_analysis") -> None:
    """Until the app answers requests of a load that began after this call."""
    base = server.requests_counted(endpoint)
    deadline = time.monotonic() + 30
    while server.requests_counted(endpoint) == base and time.monotonic() < deadline:
        time.sleep(0.05)


def test_cluster_scale_up_and_down_within_the_slos(
    api: ApiServer, emulator: Emulator, kubeconfig: Path, tmp_path: Path
) -> None:
    driver = Driver(emulator)
    driver.baseline()
    played: dict[str, float] = {}

    def play() -> None:
        driver.wait_watching(timeout=30)
        wait_load(api)
        time.sleep(2.5)  # the climb is in its second step (2 users)
        played["trigger"] = time.time()
        driver.scale_up(0.5)
        played["ready"] = time.time()
        wait_quiet(api)
        driver.scale_down()
        played["down"] = time.time()

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    out = tmp_path / "report"
    cfg = config(tmp_path, "staging", api.url)
    result = invoke(
        cfg, "cpu", "-e", "staging", "--through-scale-down", "--report", str(out), "-o", "json"
    )
    thread.join(30)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["scenario"] == "cpu" and doc["verdict"] == "pass"
    checks = {c["name"]: c for c in doc["checks"]}
    assert set(checks) == {
        "cpu_target", "scale_up", "p95_during_climb", "error_rate_during_climb", "scale_down",
    }  # fmt: skip
    assert all(c["met"] for c in checks.values())
    assert checks["cpu_target"]["actual"] == 90 and checks["cpu_target"]["threshold"] == 70
    assert checks["scale_up"]["actual"] == pytest.approx(1.0, abs=0.4)
    assert checks["scale_up"]["threshold"] == 120
    figures = doc["figures"]
    assert figures["users_at_crossing"] == 2  # crossed in the second step: held there
    (up,) = figures["scale_ups"]
    assert (up["hpa"], up["from_replicas"], up["to_replicas"]) == ("tradewise-api-hpa", 3, 5)
    down = figures["scale_down"]
    assert (down["from_replicas"], down["floor"]) == (5, 3)
    assert down["window_seconds"] == 300 + 60 + 30  # 5 -> 4 -> 3: one period after the window
    assert down["seconds"] is not None and down["seconds"] < 10
    # the load: the climb, then the hold at 2 users until the scale-up was ready, one clock
    rows = doc["load"]["intervals"]
    stages = [r["stage"] for r in rows]
    assert stages[0] == "climb-1" and "climb-2" in stages and stages[-1] == "hold"
    assert "climb-3" not in stages
    assert {r["users"] for r in rows if r["stage"] == "hold"} == {2}
    assert [r["second"] for r in rows] == sorted(r["second"] for r in rows)
    assert doc["load"]["stopped_by"] == "scaled" and doc["load"]["aborted"] is False
    assert doc["monitor"]["verdict"] == "pass"
    assert figures["climb"]["requests"] > 0
    # the report: as load-test --monitor's
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "monitor.html",
        "report.html",
        "report.json",
        "timeline.jsonl",
        "timeseries.csv",
    ]
    records = loads_jsonl((out / "timeline.jsonl").read_text(encoding="utf-8"))
    assert sum(isinstance(r, LoadSample) for r in records) == len(rows)
    assert any(isinstance(r, HpaSample) and r.desired == 5 for r in records)
    page = (out / "monitor.html").read_text(encoding="utf-8")
    assert "Replicas of tradewise-api-deployment" in page and "Requests per second" in page
    assert "CPU above its target" in result.stderr
    assert "holding 2 users until the scale-up is ready" in result.stderr


def test_cluster_without_a_scale_up_fails(
    api: ApiServer, emulator: Emulator, kubeconfig: Path, tmp_path: Path
) -> None:
    """The CPU crosses its target, the HPA never rescales: the scale-up check fails, exit 1."""
    driver = Driver(emulator)
    driver.baseline()

    def cross() -> None:
        driver.wait_watching(timeout=30)
        time.sleep(1.0)
        from tests.core.timeline_objects import hpa

        driver.write(hpa(current=3, desired=3, cpu=95))

    thread = threading.Thread(target=cross, daemon=True)
    thread.start()
    cfg = config(tmp_path, "staging", api.url, duration={"cpu": "8s"})
    result = invoke(cfg, "cpu", "-e", "staging", "-o", "json")
    thread.join(30)
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["cpu_target"]["met"] is True and checks["scale_up"]["met"] is False
    assert checks["scale_up"]["actual"] is None
    assert doc["verdict"] == "fail" and doc["figures"]["scale_ups"] == []
    assert "no scale-up was seen" in " ".join(doc["notes"])
    assert "stress cpu: FAILED" in result.stderr
    assert doc["load"]["ran_seconds"] <= 9


def _served(url: str) -> int:
    """Analyses the app has answered (its own flask_request_total)."""
    import re
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = re.compile(r'^flask_request_total\{[^}]*endpoint="stock_analysis"[^}]*\}\s+(\S+)$')
    return int(sum(float(m.group(1)) for m in map(pattern.match, text.splitlines()) if m))


def test_local_stack_processes_stand_in_for_pods(tmp_path: Path) -> None:
    """The real local stack (gunicorn, 2 workers); the test scales it to 3 and back to 2."""
    from tests.helpers import free_port
    from tradewise_ops.adapters.local import LocalStack
    from tradewise_ops.core.config import load_config

    port = free_port()
    doc: dict[str, Any] = yaml.safe_load((REPO / "tradewise.yaml").read_text(encoding="utf-8"))
    local = doc["environments"]["local"]
    local["url"] = f"http://127.0.0.1:{port}"
    local["local"].update(
        api_port=port, redis_port=free_port(), worker_processes=0,
        state_dir=str(tmp_path / "state"),
    )  # fmt: skip
    # a small CPU request: on 2 shared cores the workers cross 70% of it for sure
    local["components"] = {"api": {"resources": {"requests": {"cpu": "100m"}}}}
    doc["stress"] = STRESS
    cfg = tmp_path / "tradewise.yaml"
    cfg.write_text(yaml.safe_dump(doc), encoding="utf-8")
    stack = LocalStack(load_config(cfg).environment("local"))
    stack.up(timeout=120)
    played: dict[str, Any] = {}

    def play() -> None:
        base = _served(stack.url)
        deadline = time.monotonic() + 30
        while _served(stack.url) == base and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3.5)  # three samples of CPU above the target
        played["scaled_up"] = stack.scale("api", 3)
        last, since = -1, time.monotonic()
        # quiet for 5 s: the load has ended (the climb and the hold are two runs, ~2 s apart)
        while time.monotonic() - since < 5 and time.monotonic() < deadline + 60:
            count = _served(stack.url)
            if count != last:
                last, since = count, time.monotonic()
            time.sleep(0.2)
        played["scaled_down"] = stack.scale("api", 2)

    thread = threading.Thread(target=play, daemon=True)
    try:
        thread.start()
        out = tmp_path / "report"
        result = invoke(
            cfg, "cpu", "-e", "local", "--through-scale-down", "--report", str(out), "-o", "json"
        )
        thread.join(60)
    finally:
        stack.down()
    assert played["scaled_up"]["api"] == 3 and played["scaled_down"]["api"] == 2
    doc = json.loads(result.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["cpu_target"]["met"], result.stderr
    assert checks["cpu_target"]["actual"] > 70 and checks["cpu_target"]["threshold"] == 70
    figures = doc["figures"]
    assert figures["hpa"] == "api-processes" and figures["cpu_target_percent"] == 70
    (up,) = figures["scale_ups"]
    assert (up["from_replicas"], up["to_replicas"], up["metric"]) == (2, 3, "cpu")
    assert up["trigger_observed"] is True and up["total_seconds"] < 120
    assert checks["scale_up"]["met"] and checks["scale_down"]["met"]
    assert figures["scale_down"]["floor"] == 2 and figures["scale_down"]["from_replicas"] == 3
    assert result.exit_code == (0 if doc["verdict"] == "pass" else 1), result.stderr
    replicas = doc["monitor"]["state"]["processes"]["api"]
    assert replicas["running"] == 2
    page = (out / "monitor.html").read_text(encoding="utf-8")
    assert "Replicas of api" in page
