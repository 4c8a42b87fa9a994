"""``load-test --monitor``: a real short load test and an emulated scale-up, on one time axis."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.adapters.monitor_driver import Driver
from tests.k8s_emulator import Emulator
from tests.loadtest_app import ApiServer
from tradewise_ops.cli.main import app
from tradewise_ops.core.timeline import HpaSample, LoadSample, loads_jsonl

pytest_plugins = ["tests.k8s_emulator.fixtures"]

GAP = 0.5


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path_factory.mktemp("api"))
    yield server
    server.stop()


def test_load_test_with_monitor_reports_load_and_replicas_together(
    api: ApiServer, emulator: Emulator, kubeconfig: Path, tmp_path: Path
) -> None:
    driver = Driver(emulator)
    driver.baseline()

    def play() -> None:
        driver.wait_watching(timeout=20)
        driver.scale_up(GAP)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "load-test",
            "4",
            "5",
            "/api/health",
            "--host",
            api.url,
            "--monitor",
            "-e",
            "staging",
            "--report",
            str(out),
            "-o",
            "json",
        ],
    )
    thread.join(10)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kind"] == "load-test" and data["total"]["requests"] > 0
    scaling = data["monitor"]
    (up,) = scaling["scale_ups"]
    assert (up["from_replicas"], up["to_replicas"], up["verdict"]) == (3, 5, "pass")
    assert up["total_seconds"] == pytest.approx(2 * GAP, abs=0.35)
    assert "monitoring namespace tradewise-ai" in result.stderr

    records = loads_jsonl((out / "timeline.jsonl").read_text(encoding="utf-8"))
    loads = [r for r in records if isinstance(r, LoadSample)]
    assert len(loads) == len(data["intervals"])
    assert sum(1 for r in records if isinstance(r, HpaSample)) >= 3
    # the load and the HPA share one clock: the rescale happened before the load ended
    rescale = [r.t for r in records if isinstance(r, HpaSample) and r.desired == 5][0]
    assert records[0].t <= rescale <= loads[-1].t

    page = (out / "monitor.html").read_text(encoding="utf-8")
    for title in (
        "Requests per second",
        "p95 response time",
        "Error rate",
        "Replicas of tradewise-api-deployment",
    ):
        assert title in page
    assert page.count("<title>+") >= 4  # the rescale marked on every chart
    assert re.search(r"3 -&gt; 5</td><td>cpu</td>", page)
    assert f"Load test against {api.url}" in page
    assert (out / "report.html").exists()  # the load test's own report is still there
    # report.json, the file that travels (compare, --baseline), carries the scaling summary too
    saved = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert saved["monitor"] == scaling
    assert saved["monitor"]["scale_ups"][0]["to_replicas"] == 5
    assert saved["total"]["requests"] == data["total"]["requests"]


def test_performance_test_with_monitor(
    api: ApiServer, emulator: Emulator, kubeconfig: Path, tmp_path: Path
) -> None:
    Driver(emulator).baseline()
    out = tmp_path / "perf"
    result = CliRunner().invoke(
        app,
        [
            "performance-test",
            "--host",
            api.url,
            "--scale-duration",
            "0.06",
            "--p95",
            "10000",
            "--monitor",
            "-e",
            "staging",
            "--report",
            str(out),
            "-o",
            "json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["kind"] == "performance-test"
    scaling = data["monitor"]
    assert scaling["verdict"] == "none" and scaling["scale_ups"] == []
    assert scaling["state"]["deployments"] == [
        {"name": "tradewise-api-deployment", "desired": 3, "ready": 3}
    ]
    page = (out / "monitor.html").read_text(encoding="utf-8")
    assert "Requests per second" in page and "No scale-up seen." in page


def test_a_cluster_lost_during_the_load_keeps_the_load_tests_result(
    api: ApiServer, emulator: Emulator, kubeconfig: Path, tmp_path: Path
) -> None:
    driver = Driver(emulator)
    driver.baseline()

    def play() -> None:
        driver.wait_watching(timeout=20)
        driver.scale_up(GAP)
        emulator.stop()

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    result = CliRunner().invoke(
        app,
        [
            "load-test",
            "5",
            "3",
            "/api/health",
            "--host",
            api.url,
            "--monitor",
            "-e",
            "staging",
            "-o",
            "json",
        ],
    )
    thread.join(10)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["total"]["requests"] > 0
    assert data["monitor"]["interrupted"] is True
    assert len(data["monitor"]["scale_ups"]) == 1
    assert "monitoring stopped before the load did" in result.stderr
