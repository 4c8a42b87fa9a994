"""``tradewise load-test`` / ``performance-test``: exit codes, output, reports, Ctrl-C.

Real runs (a few seconds) against the real bundled app under gunicorn on loopback.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.helpers import free_port, wait_until
from tests.loadtest_app import ApiServer
from tradewise_ops.cli.main import app
from tradewise_ops.core.config import embedded_config_path

ANALYSIS = "/api/stock-analysis?symbol=AAPL"
TRADEWISE = str(Path(sys.executable).parent / "tradewise")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path_factory.mktemp("api"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def slow_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer(
        tmp_path_factory.mktemp("slow"), extra_env={"TRADEWISE_INJECT_LATENCY_MS": "700"}
    )
    yield server
    server.stop()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_met_slos_exit_0_with_a_json_report_and_files(api: ApiServer, tmp_path: Path) -> None:
    out = tmp_path / "report"
    before = api.requests_counted("stock_analysis")
    result = invoke(
        "load-test", "3", "4", ANALYSIS, "--host", api.url, "--report", str(out), "-o", "json"
    )
    assert result.exit_code == 0, result.stderr
    time.sleep(0.3)
    counted = api.requests_counted("stock_analysis") - before
    report = json.loads(result.stdout)
    assert report["verdict"]["met"] is True
    total = report["total"]
    assert total["requests"] > 30 and total["failures"] == 0
    assert 0 <= counted - total["requests"] <= 4
    assert report["endpoints"][ANALYSIS]["requests"] == total["requests"]
    assert total["p50_ms"] <= total["p95_ms"] <= total["p99_ms"] <= total["max_ms"]
    assert report["generator"]["locust_requests"] == total["requests"]
    assert "SLOs met" in result.stderr
    # the files: the same JSON, a CSV row per interval, a self-contained HTML page
    assert json.loads((out / "report.json").read_text())["total"] == total
    rows = list(csv.DictReader((out / "timeseries.csv").open()))
    assert len(rows) == len(report["intervals"]) >= 3
    assert sum(int(r["requests"]) for r in rows) == total["requests"]
    assert all(float(r["p95_ms"]) >= float(r["p50_ms"]) for r in rows if r["p95_ms"])
    page = (out / "report.html").read_text()
    assert "<svg" in page and "<script" not in page and "https://" not in page


def test_slo_breach_on_a_slow_endpoint_exits_1(slow_api: ApiServer, tmp_path: Path) -> None:
    result = invoke(
        "load-test", "3", "2", ANALYSIS, "--host", slow_api.url, "--report", str(tmp_path)
    )
    assert result.exit_code == 1, result.stderr
    assert "SLOs missed" in result.stderr and "p95 < 500 ms" in result.stderr
    assert ANALYSIS in result.stdout  # the summary table is shown before the verdict
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"]["met"] is False
    assert report["total"]["p95_ms"] >= 700
    # the same run passes with a looser objective given on the command line
    loose = invoke("load-test", "2", "2", ANALYSIS, "--host", slow_api.url, "--p95", "5000")
    assert loose.exit_code == 0, loose.stderr


def test_failing_requests_miss_the_error_objective(api: ApiServer, tmp_path: Path) -> None:
    bad = "/api/stock-analysis?symbol=no!such"
    result = invoke(
        "load-test", "2", "2", bad, "--host", api.url, "--wait", "0.05", "--report", str(tmp_path)
    )
    assert result.exit_code == 1, result.stderr
    assert "errors < 1% (100.00%) MISSED" in result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["total"]["failures"] == report["total"]["requests"] > 1
    assert report["errors"] and report["errors"][0]["name"] == bad
    assert "400" in report["errors"][0]["error"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["60x", "5", "/api/health"], "'60x' is not a positive duration"),
        (["5", "0", "/api/health"], "users must be at least 1"),
        (["5", "5", "api/health"], "must start with '/'"),
        (["5", "5", "/api/health", "--spawn-rate", "0"], "spawn rate must be above 0"),
        (["5", "5", "/api/health", "--max-error-rate", "2"], "--max-error-rate"),
        (["5", "5", "/api/health", "--wait", "soon"], "--wait"),
    ],
)
def test_bad_input_exits_2_before_any_request(api: ApiServer, args: list[str], says: str) -> None:
    before = api.requests_counted("health")
    result = invoke("load-test", *args, "--host", api.url)
    assert result.exit_code == 2, result.stderr
    assert says in result.stderr
    assert api.requests_counted("health") == before


def test_bad_host_exits_2() -> None:
    result = invoke("load-test", "5", "5", "/api/health", "--host", "ftp://example")
    assert result.exit_code == 2
    assert "not an http:// or https:// URL" in result.stderr


def test_dead_target_exits_3_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = invoke("load-test", "5", "5", "/api/health", "--host", url)
    assert result.exit_code == 3
    assert f"{url}/api/health does not answer" in result.stderr


def test_target_from_the_environment(api: ApiServer, tmp_path: Path) -> None:
    raw = yaml.safe_load(embedded_config_path().read_text())
    raw["environments"]["local"]["url"] = api.url
    raw["load_test"] = {"duration": "2s", "users": 2, "endpoint": "/api/health", "spawn_rate": 10}
    raw["slo"] = {"p95_ms": 3000, "error_rate": 0.05}
    config = tmp_path / "tradewise.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = invoke("--config", str(config), "load-test", "--env", "local", "-o", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["target"] == api.url
    assert report["users"] == 2 and report["planned_seconds"] == 2
    assert list(report["endpoints"]) == ["/api/health"]
    assert report["verdict"]["checks"][0]["threshold"] == 3000


def test_performance_test_rows_per_group(api: ApiServer, tmp_path: Path) -> None:
    result = invoke(
        "performance-test",
        "--host",
        api.url,
        "--scale-duration",
        "0.08",
        "--wait",
        "0.1-0.3",
        "--p95",
        "10000",
        "--report",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.stderr
    for group in ("health", "analysis_hot", "analysis_cold", "stats", "total"):
        assert group in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["kind"] == "performance-test"
    assert {s["name"] for s in report["settings"]["stages"]} == {
        "ramp",
        "steady",
        "spike",
        "cool-down",
    }
    assert any(r["stage"] == "spike" for r in report["intervals"])


def test_performance_test_against_an_environments_public_url_leaves_out_stats(
    api: ApiServer, tmp_path: Path
) -> None:
    """The environment's URL is its Ingress, which routes no /api/performance/stats."""
    raw = yaml.safe_load(embedded_config_path().read_text())
    raw["environments"]["staging"]["url"] = api.url  # as if the Ingress answered here
    config = tmp_path / "tradewise.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = invoke(
        "--config", str(config), "performance-test", "--env", "staging", "--scale-duration",
        "0.05", "--wait", "0.1-0.3", "--p95", "10000", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["target"] == api.url
    assert "stats" not in report["endpoints"] and "health" in report["endpoints"]
    assert {t["name"] for t in report["settings"]["tasks"]} == {
        "health",
        "analysis_hot",
        "analysis_cold",
    }
    assert result.stderr.count("leaving out stats") == 1
    assert f"{api.url} is staging's public (Ingress) URL" in result.stderr


def test_in_cluster_dry_run_prints_the_jobs() -> None:
    result = invoke(
        "load-test", "30", "10", "/api/health", "--env", "staging", "--in-cluster", "--workers",
        "3", "--dry-run", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    objects = json.loads(result.stdout)
    kinds = [o["kind"] for o in objects]
    assert kinds == ["ConfigMap", "Service", "Job", "Job"]
    assert objects[3]["spec"]["parallelism"] == 3
    spec = json.loads(objects[0]["data"]["spec.json"])
    assert spec["host"] == "http://tradewise-api-service.tradewise-ai.svc"  # the Service, inside


def test_in_cluster_needs_a_kubernetes_environment() -> None:
    local = invoke("load-test", "30", "10", "/api/health", "--env", "local", "--in-cluster")
    assert local.exit_code == 2 and "needs a Kubernetes environment" in local.stderr


def test_in_cluster_with_monitor_is_refused_before_anything_is_sent() -> None:
    result = invoke(
        "load-test", "30", "10", "/api/health", "--env", "staging", "--in-cluster", "--monitor",
        "--dry-run",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--monitor cannot be combined with --in-cluster" in result.stderr
    assert result.stdout == ""


def test_ctrl_c_stops_at_once_and_writes_the_report(api: ApiServer, tmp_path: Path) -> None:
    out = tmp_path / "report"
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.Popen(
        [TRADEWISE, "load-test", "60", "3", "/api/health", "--host", api.url, "--report", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        # wait until load arrives, then a little more
        base = api.requests_counted("health")
        wait_until(lambda: api.requests_counted("health") > base + 20, timeout=20, what="load")
        time.sleep(1.5)
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=15)
        took = time.monotonic() - sent_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert took < 5, f"stopping took {took:.1f}s"
    assert "interrupted" in stderr and "SLOs" in stderr
    assert "/api/health" in stdout  # the summary of what ran
    report = json.loads((out / "report.json").read_text())
    assert report["aborted"] is True
    assert report["total"]["requests"] > 20
    assert report["ran_seconds"] < 20
    # no load after the exit
    count = api.requests_counted("health")
    time.sleep(0.5)
    assert api.requests_counted("health") == count


def test_sigterm_stops_like_ctrl_c_writes_the_report_and_exits_143(
    api: ApiServer, tmp_path: Path
) -> None:
    """What a CI cancel, a job timeout or `timeout` sends: the report is still written."""
    out = tmp_path / "report"
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.Popen(
        [TRADEWISE, "load-test", "60", "3", "/api/health", "--host", api.url, "--report", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        base = api.requests_counted("health")
        wait_until(lambda: api.requests_counted("health") > base + 20, timeout=20, what="load")
        time.sleep(1.5)
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=15)
        took = time.monotonic() - sent_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    assert took < 5, f"stopping took {took:.1f}s"
    assert "interrupted" in stderr and "SLOs" in stderr
    assert "/api/health" in stdout  # the summary of what ran
    report = json.loads((out / "report.json").read_text())
    assert report["aborted"] is True
    assert report["verdict"]["checks"] and "met" in report["verdict"]
    assert report["total"]["requests"] > 20 and report["ran_seconds"] < 20
    count = api.requests_counted("health")
    time.sleep(0.5)
    assert api.requests_counted("health") == count  # no load after the exit
