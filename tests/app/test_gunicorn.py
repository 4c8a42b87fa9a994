"""``tradewise-api`` under real gunicorn with two workers: stats and /metrics add up across them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import free_port, wait_until

BIN = Path(sys.executable).parent


class ApiServer:
    """A ``tradewise-api`` process group on a free port."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path, prom: Path) -> None:
        self.proc, self.url, self.log, self.prom = proc, url, log, prom

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(pid) for pid in children.split()]


@pytest.fixture
def api_server(redis_url: str, postgres_url: str, tmp_path: Path) -> Iterator[ApiServer]:
    port = free_port()
    prom = tmp_path / "prometheus"  # a fresh multiprocess dir for this server only
    prom.mkdir()
    log = tmp_path / "gunicorn.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRADEWISE_")},
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "PROMETHEUS_MULTIPROC_DIR": str(prom),
        "GUNICORN_WORKER_TMP_DIR": str(tmp_path),
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "tradewise-api")], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    server = ApiServer(proc, f"http://127.0.0.1:{port}", log, prom)

    def up() -> bool:
        try:
            return httpx.get(server.url + "/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(lambda: up() or proc.poll() is not None, timeout=30, what="tradewise-api")
        assert proc.poll() is None, log.read_text()
        wait_until(lambda: len(server.workers()) == 2, timeout=15, what="two workers")
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def _hammer(url: str, n: int) -> list[int]:
    with httpx.Client(timeout=10) as client, ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: client.get(url).status_code, range(n)))


def test_counts_add_up_across_two_workers(api_server: ApiServer) -> None:
    base = api_server.url
    # before any analysis was served: stats and metrics answer with zeros, not errors
    fresh = httpx.get(base + "/api/performance/stats", timeout=10)
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["cache"] == {
        "hits": 0,
        "misses": 0,
        "hit_rate": 0.0,
        "available": True,
        "enabled": True,
    }
    assert httpx.get(base + "/metrics", timeout=10).status_code == 200
    health = _hammer(base + "/api/health", 200)
    assert health == [200] * 200
    first = httpx.get(base + "/api/stock-analysis?symbol=AAPL", timeout=30)
    assert first.status_code == 200 and first.headers["X-Cache"] == "MISS"
    analyses = _hammer(base + "/api/stock-analysis?symbol=AAPL", 59)
    assert analyses == [200] * 59
    assert _hammer(base + "/api/stock-analysis?symbol=1X", 5) == [400] * 5

    # both workers answered and wrote their own files
    pids = {p.name.rsplit("_", 1)[1].split(".")[0] for p in api_server.prom.glob("counter_*.db")}
    assert len(pids) >= 2, pids

    stats = httpx.get(base + "/api/performance/stats", timeout=10).json()
    assert stats["multiprocess"] is True
    # the fixture's start-up probes hit /api/health too, so health counts are ">="
    assert stats["requests"]["by_endpoint"]["stock_analysis"] == 65
    assert stats["requests"]["by_endpoint"]["performance_stats"] == 1
    assert stats["requests"]["by_endpoint"]["health"] >= 200
    assert stats["cache"]["misses"] == 1
    assert stats["cache"]["hits"] == 59
    assert stats["task_queue_length"] == 0

    text = httpx.get(base + "/metrics", timeout=10).text
    assert _metric(text, "flask_request_total", endpoint="stock_analysis", status="200") == 60
    assert _metric(text, "flask_request_total", endpoint="stock_analysis", status="400") == 5
    assert _metric(text, "flask_request_duration_seconds_count", endpoint="stock_analysis") == 65
    assert _metric(text, "tradewise_cache_hit_rate") == pytest.approx(59 / 60, abs=1e-6)
    assert "tradewise_task_queue_length 0.0" in text
    assert _metric(text, "flask_request_exceptions_total", endpoint="stock_analysis") == 0
    assert 'flask_request_exceptions_total{endpoint="stock_analysis",method="GET"}' in text

    # a worker killed and replaced: its counts stay in the totals
    victim = api_server.workers()[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: victim not in api_server.workers() and len(api_server.workers()) == 2,
        timeout=20,
        what="gunicorn to replace the killed worker",
    )
    time.sleep(0.2)
    text_after: Any = httpx.get(base + "/metrics", timeout=10).text
    assert _metric(text_after, "flask_request_total", endpoint="stock_analysis", status="200") == 60
    assert _hammer(base + "/api/stock-analysis?symbol=AAPL", 10) == [200] * 10
    text_after = httpx.get(base + "/metrics", timeout=10).text
    assert _metric(text_after, "flask_request_total", endpoint="stock_analysis", status="200") == 70


def _up(base_url: str) -> bool:
    try:
        return httpx.get(base_url + "/api/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_api_makes_and_removes_its_own_multiprocess_dir(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}",
        "REDIS_URL": redis_url,
        "GUNICORN_WORKER_TMP_DIR": str(tmp_path),
    }
    proc = subprocess.Popen(
        [str(BIN / "tradewise-api")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(
            lambda: _up(f"http://127.0.0.1:{port}") or proc.poll() is not None,
            timeout=30,
            what="tradewise-api",
        )
        assert proc.poll() is None
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1
        tmp = Path(tempfile.gettempdir())
        # the worker's metric files are in a fresh dir that tradewise-api made
        dirs = [p.parent for p in tmp.glob(f"tradewise-prometheus-*/*_{children[0]}.db")]
        assert len(set(dirs)) == 1, dirs
        prom = dirs[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert not prom.exists()
