"""``tradewise stress db``: real load on the real app over the test PostgreSQL, a pool of 2.

The app runs one gunicorn process with 8 threads (WEB_THREADS) and a pool of 2 connections
(no overflow), so 8 concurrent uncached analyses contend for 2 connections: the wait is
measured by the app itself and read from its /metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.conftest import PostgresServer
from tests.loadtest_app import ApiServer
from tradewise_ops.cli.main import app

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pg_api(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """The app on the test PostgreSQL: one process, 8 threads, a pool of 2 + 0."""
    name = "stress_db"
    url = postgres_server.create_database(name)
    server = ApiServer(
        tmp_path_factory.mktemp("pg-api"),
        extra_env={
            "DATABASE_URL": url,
            "WEB_CONCURRENCY": "1",
            "WEB_THREADS": "8",
            "TRADEWISE_DB_POOL_SIZE": "2",
            "TRADEWISE_DB_POOL_OVERFLOW": "0",
            "TRADEWISE_DB_POOL_TIMEOUT_SECONDS": "5",
            "TRADEWISE_FAULTS": "uncached",
        },
    )
    try:
        yield server
    finally:
        server.stop()
        postgres_server.drop_database(name)


def config(tmp_path: Path, url: str, **local: Any) -> Path:
    """The repo's config with ``environments.local`` pointed at ``url`` (and ``local`` keys)."""
    doc: dict[str, Any] = yaml.safe_load((REPO / "tradewise.yaml").read_text(encoding="utf-8"))
    env = doc["environments"]["local"]
    env["url"] = url
    env["local"]["state_dir"] = str(tmp_path / "state")
    env.update(local)
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def invoke(cfg: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--config", str(cfg), "stress", *args])


def test_db_measures_the_wait_on_a_pool_of_two(pg_api: ApiServer, tmp_path: Path) -> None:
    cfg = config(tmp_path, pg_api.url, database_pool={"size": 2, "overflow": 0, "timeout": 5})
    out = tmp_path / "report"
    result = invoke(
        cfg, "db", "--env", "local", "--duration", "4", "--users", "8", "--report", str(out),
        "-o", "json",
    )  # fmt: skip
    doc = json.loads(result.stdout)
    print(json.dumps({k: doc[k] for k in ("verdict", "checks", "figures", "findings")}, indent=1))
    assert result.exit_code == (0 if doc["verdict"] == "pass" else 1), result.stderr
    assert doc["scenario"] == "db" and doc["environment"] == "local"
    assert doc["target"] == pg_api.url
    assert {c["name"] for c in doc["checks"]} == {"p95", "error_rate"}
    figures = doc["figures"]
    assert figures["users"] == 8 and figures["uncached"] is True
    assert figures["requests"] > 20 and figures["failures"] == 0
    pool = figures["pool"]
    assert (pool["size"], pool["overflow"], pool["capacity"]) == (2, 0, 2)
    # every uncached analysis is stored: one checkout each (plus readiness checks)
    assert pool["checkouts"] >= figures["requests"] - pool["not_stored"]
    assert pool["peak_checked_out"] <= 2
    assert pool["waits"] > 0 and pool["wait_p95_ms"] > 0
    (finding,) = [f for f in doc["findings"] if f["code"] == "pool-wait"]
    assert finding["setting"] == "environments.local.database_pool.size"
    assert "now 2 + 0 overflow per process" in finding["message"]
    assert not [f for f in doc["findings"] if f["code"] == "pool-settings-differ"]
    assert doc["slo"]["p95_ms"] == 500 and doc["slo"]["error_rate"] == 0.01
    assert "waited for a pool connection" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "pool.csv",
        "report.html",
        "report.json",
        "timeseries.csv",
    ]
    assert json.loads((out / "report.json").read_text())["figures"] == figures
    assert (out / "pool.csv").read_text().startswith("second,checked_out,capacity,waits")


def test_sigterm_stops_it_with_a_partial_verdict(pg_api: ApiServer, tmp_path: Path) -> None:
    """SIGTERM mid-run: the load stops at once, the verdict covers what ran, exit 130."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = config(tmp_path, pg_api.url, database_pool={"size": 2, "overflow": 0, "timeout": 5})
    cli = Path(sys.executable).parent / "tradewise"
    base = pg_api.requests_counted("stock_analysis")
    proc = subprocess.Popen(
        [str(cli), "--config", str(cfg), "stress", "db", "--env", "local", "--duration", "60",
         "--users", "4", "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and pg_api.requests_counted("stock_analysis") < base + 5:
            time.sleep(0.2)
        time.sleep(1.0)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert stopped_in < 10
    doc = json.loads(out)
    assert doc["interrupted"] is True and doc["figures"]["requests"] > 0
    assert doc["load"]["aborted"] is True and doc["load"]["ran_seconds"] < 30
    assert "interrupted: partial verdict: stress db:" in err


def test_a_target_outside_the_environment_is_refused(tmp_path: Path) -> None:
    cfg = config(tmp_path, "http://127.0.0.1:9")
    result = invoke(cfg, "db", "--env", "local", "--host", "http://127.0.0.1:8080")
    assert result.exit_code == 2
    assert "--host http://127.0.0.1:8080 is outside local's own URL http://127.0.0.1:9" in (
        result.stderr
    )
    result = invoke(cfg, "db", "--env", "local", "--duration", "5")
    assert result.exit_code == 3, result.stderr
    assert "target http://127.0.0.1:9/api/health does not answer" in result.stderr
