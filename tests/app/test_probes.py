"""The rendered probes and a down or hung database, against real gunicorn, Redis and PostgreSQL.

A private PostgreSQL cluster per module (stopping or freezing the session's would disturb other
tests); the session's Redis is stopped and started again as tests/app/test_api.py does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from tests.helpers import free_port, wait_until

BIN = Path(sys.executable).parent
SLOW = 1.5  # seconds: well under libpq's connect timeout, which a request used to wait


@pytest.fixture(scope="module")
def own_postgres(postgres_server: Any) -> Iterator[Any]:
    """A private PostgreSQL on loopback (same class and binaries as the session's)."""
    base = Path(tempfile.mkdtemp(prefix="tw-pg-probes-"))
    server = type(postgres_server)(postgres_server.bindir, free_port(), base / "data")
    server.init()
    server.start()
    try:
        yield server
    finally:
        _cont(server)
        try:
            server.stop()
        except RuntimeError:
            pass  # already stopped by a test
        shutil.rmtree(base, ignore_errors=True)


def _cluster_pids(server: Any) -> list[int]:
    """The postmaster and its children (backends, checkpointer, ...)."""
    pid_file = Path(server.datadir) / "postmaster.pid"
    if not pid_file.exists():
        return []
    postmaster = int(pid_file.read_text().split()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    return [postmaster, *(int(c) for c in children)]


def _freeze(server: Any) -> list[int]:
    """SIGSTOP every process of the cluster: the kernel still accepts connections, nothing
    answers (a hung server, or one behind a network that drops packets)."""
    pids = _cluster_pids(server)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    return pids


def _cont(server: Any) -> None:
    for pid in _cluster_pids(server):
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def _restart(server: Any) -> None:
    _cont(server)
    try:
        server.stop()
    except RuntimeError:
        pass
    server.start()


@contextmanager
def running_api(tmp_path: Path, **env: str) -> Iterator[str]:
    """``tradewise-api`` (real gunicorn, two workers) on a free port; yields its base URL."""
    port = free_port()
    prom = tmp_path / f"prometheus-{port}"
    prom.mkdir()
    log = tmp_path / f"gunicorn-{port}.log"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRADEWISE_")},
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(prom),
        "GUNICORN_WORKER_TMP_DIR": str(tmp_path),
        **env,
    }
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "tradewise-api")], env=full_env, stdout=out, stderr=subprocess.STDOUT
        )

    def up() -> bool:
        try:
            return httpx.get(url + "/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(lambda: up() or proc.poll() is not None, timeout=30, what="tradewise-api")
        assert proc.poll() is None, log.read_text()
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _rendered_api_container() -> dict[str, Any]:
    """The API container of ``tradewise render prod``, as the CLI prints it."""
    result = subprocess.run(
        [str(BIN / "tradewise"), "render", "prod", "--tag", "v1.2.3"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],  # the checkout's tradewise.yaml
        env={k: v for k, v in os.environ.items() if not k.startswith("TRADEWISE_")},
    )
    assert result.returncode == 0, result.stderr
    (deployment,) = [
        o
        for o in yaml.safe_load_all(result.stdout)
        if o and o["kind"] == "Deployment" and o["metadata"]["name"] == "tradewise-api-deployment"
    ]
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def _get(url: str, timeout: float = 10.0) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = httpx.get(url, timeout=timeout)
    return response, time.perf_counter() - started


def test_rendered_probes_pass_with_redis_and_postgres_stopped(
    tmp_path: Path, own_postgres: Any, redis_server: Any, redis_url: str
) -> None:
    container = _rendered_api_container()
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert all(p["port"] == "http" for p in probes.values())
    with running_api(tmp_path, DATABASE_URL=own_postgres.url, REDIS_URL=redis_url) as url:
        first, _ = _get(url + "/api/stock-analysis?symbol=AAPL", timeout=30)
        assert first.status_code == 200, first.text
        redis_server.stop()
        own_postgres.stop()
        try:
            # dependency health still says what is down ...
            ready, _ = _get(url + "/api/health/ready")
            assert ready.status_code == 503
            assert set(ready.json()["failing"]) == {"database", "redis"}
            # ... while every probe Kubernetes runs passes, within its own timeout
            for kind, probe in probes.items():
                for _ in range(4):  # both gunicorn workers, whichever answers
                    response, took = _get(url + probe["path"])
                    assert response.status_code == 200, (kind, probe, response.text)
                    assert took < container[kind]["timeoutSeconds"], (kind, took)
            # and the pod keeps serving correct answers
            answer, _ = _get(url + "/api/stock-analysis?symbol=MSFT")
            assert answer.status_code == 200 and answer.json()["symbol"] == "MSFT"
        finally:
            redis_server.start()
            _restart(own_postgres)


def _rows(database_url: str, symbol: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT COUNT(*) FROM stock_analyses WHERE symbol = :s")
            return int(conn.execute(query, {"s": symbol}).scalar_one())
    finally:
        engine.dispose()


def test_a_hung_or_stopped_database_costs_an_analysis_no_connect_timeout(
    tmp_path: Path, own_postgres: Any, redis_url: str
) -> None:
    db = own_postgres.url
    with running_api(
        tmp_path, DATABASE_URL=db, REDIS_URL=redis_url, TRADEWISE_DATABASE_RETRY_SECONDS="1"
    ) as url:
        warm, _ = _get(url + "/api/stock-analysis?symbol=AAPL", timeout=30)
        assert warm.status_code == 200 and _rows(db, "AAPL") == 1

        frozen = _freeze(own_postgres)
        assert len(frozen) > 1
        try:
            for symbol in ("MSFT", "IBM", "ORCL"):  # each uncached
                answer, took = _get(url + f"/api/stock-analysis?symbol={symbol}")
                assert answer.status_code == 200, answer.text
                assert answer.headers["X-Cache"] == "MISS"
                assert answer.json()["symbol"] == symbol
                assert took < SLOW, f"{symbol} took {took:.2f}s with the database hung"
            ready, took = _get(url + "/api/health/ready")
            assert ready.status_code == 503 and ready.json()["failing"] == ["database"]
            assert "answer" in ready.json()["checks"]["database"]["error"]
            assert took < SLOW
            metrics, took = _get(url + "/metrics")
            assert metrics.status_code == 200 and "tradewise_database_up 0.0" in metrics.text
            assert took < SLOW + 0.5  # a database check and a Redis ping
        finally:
            _cont(own_postgres)

        # it answers again: readiness sees it, and new analyses are stored again
        wait_until(
            lambda: _get(url + "/api/health/ready")[0].status_code == 200,
            timeout=20,
            what="readiness after the database answers again",
        )
        time.sleep(1.2)  # the retry period of both workers' circuits
        for symbol in ("KO", "PEP"):
            answer, _ = _get(url + f"/api/stock-analysis?symbol={symbol}")
            assert answer.status_code == 200
            wait_until(lambda s=symbol: _rows(db, s) == 1, timeout=10, what=f"{symbol} stored")
        # the write that was waiting when the database hung finished late, and was kept
        wait_until(lambda: _rows(db, "MSFT") == 1, timeout=10, what="the late write of MSFT")

        own_postgres.stop()  # stopped: connections refused
        try:
            for symbol in ("JPM", "WMT"):
                answer, took = _get(url + f"/api/stock-analysis?symbol={symbol}")
                assert answer.status_code == 200 and answer.json()["symbol"] == symbol
                assert took < SLOW, f"{symbol} took {took:.2f}s with the database stopped"
        finally:
            _restart(own_postgres)
