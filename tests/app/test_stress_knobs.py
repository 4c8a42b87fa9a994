"""The service's side of ``tradewise stress``: pool settings and metrics, the fault knobs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from app.metrics import Probe, exposition
from app.settings import ConfigError, Settings
from tradewise_ops.core.stress import parse_pool


def _scrape() -> str:
    """This process's metrics (the scrape-time probe left out: it would use the pool too)."""
    return exposition(lambda: Probe(True, True, None)).decode()


def _app(tmp_path: Path, redis_url: str, **env: str) -> Flask:
    return create_app(
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "REDIS_URL": redis_url, **env}
    )


def test_settings_read_the_pool_threads_and_faults() -> None:
    s = Settings.from_env({})
    assert (s.db_pool_size, s.db_pool_overflow, s.db_pool_timeout) == (None, None, None)
    assert s.web_threads == 1 and s.faults == ()
    s = Settings.from_env(
        {
            "TRADEWISE_DB_POOL_SIZE": "2",
            "TRADEWISE_DB_POOL_OVERFLOW": "0",
            "TRADEWISE_DB_POOL_TIMEOUT_SECONDS": "1.5",
            "WEB_THREADS": "8",
            "TRADEWISE_FAULTS": "uncached, memory,uncached",
        }
    )
    assert (s.db_pool_size, s.db_pool_overflow, s.db_pool_timeout) == (2, 0, 1.5)
    assert s.web_threads == 8 and s.faults == ("uncached", "memory")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TRADEWISE_DB_POOL_SIZE", "0"),
        ("TRADEWISE_DB_POOL_OVERFLOW", "-1"),
        ("TRADEWISE_DB_POOL_TIMEOUT_SECONDS", "0"),
        ("WEB_THREADS", "65"),
        ("TRADEWISE_FAULTS", "memory,disk"),
    ],
)
def test_bad_knobs_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: value})
    assert info.value.variable == variable


def test_the_pool_is_sized_and_published(tmp_path: Path, postgres_url: str) -> None:
    flask_app = create_app(
        {
            "DATABASE_URL": postgres_url,
            "REDIS_URL": "none",
            "TRADEWISE_DB_POOL_SIZE": "2",
            "TRADEWISE_DB_POOL_OVERFLOW": "1",
            "TRADEWISE_DB_POOL_TIMEOUT_SECONDS": "0.3",
            "WEB_THREADS": "6",
        }
    )
    service = flask_app.extensions["tradewise"]
    try:
        pool = service.engine.pool
        assert (pool.size(), pool._max_overflow, pool._timeout) == (2, 1, 0.3)
        assert service.db_gate.max_pending == 6  # as many calls as threads may be waiting
        before = parse_pool(_scrape(), 0)
        assert (before.size, before.overflow, before.timeout_seconds) == (2, 1, 0.3)
        # take all three connections: the next call waits 0.3 s and gives up
        from app.models import pooled

        held = [service.engine.connect() for _ in range(3)]
        during = parse_pool(_scrape(), 1)
        assert during.checked_out - before.checked_out == 3
        import sqlalchemy as sa

        with pytest.raises(sa.exc.TimeoutError), pooled(service.engine):
            pass
        # one is given back while another call waits: it gets it
        waiter_done = threading.Event()

        def wait_for_one() -> None:
            with pooled(service.engine) as conn:
                conn.execute(sa.text("SELECT 1"))
            waiter_done.set()

        thread = threading.Thread(target=wait_for_one)
        thread.start()
        threading.Event().wait(0.1)
        held.pop().close()
        thread.join(5)
        assert waiter_done.is_set()
        for conn in held:
            conn.close()
        after = parse_pool(_scrape(), 2)
        assert after.timeouts - before.timeouts == 1
        assert after.waits - before.waits == 2  # the one that gave up, the one that waited
        assert after.wait_sum - before.wait_sum >= 0.3 + 0.1 - 0.02
        assert after.checked_out == before.checked_out
    finally:
        service.close()


def test_uncached_knob_only_when_enabled(tmp_path: Path, redis_url: str) -> None:
    plain = _app(tmp_path, redis_url).test_client()
    url = "/api/stock-analysis?symbol=IBM&cache=bypass"
    assert plain.get(url).headers["X-Cache"] == "MISS"
    assert plain.get(url).headers["X-Cache"] == "HIT"  # the knob is off: cached as usual
    knob = _app(tmp_path, redis_url, TRADEWISE_FAULTS="uncached").test_client()
    assert knob.get("/api/stock-analysis?symbol=IBM").headers["X-Cache"] == "HIT"
    assert knob.get(url).headers["X-Cache"] == "MISS"
    assert knob.get(url).headers["X-Cache"] == "MISS"


def test_memory_fault_routes_only_with_the_knob(tmp_path: Path, redis_url: str) -> None:
    plain = _app(tmp_path, redis_url)
    assert plain.test_client().post("/api/faults/memory", json={}).status_code == 404
    assert (
        "/api/faults/memory" not in plain.test_client().get("/api/openapi.json").get_json()["paths"]
    )
    from app.faults import fault_memory

    with plain.app_context(), pytest.raises(RuntimeError, match="not enabled"):
        fault_memory.run(16, 0.01, 16, 1)
    plain.extensions["tradewise"].close()

    knob = _app(tmp_path, redis_url, TRADEWISE_FAULTS="memory")
    client = knob.test_client()
    doc = client.get("/api/openapi.json").get_json()
    rules = {r.rule for r in knob.url_map.iter_rules()}
    assert {"/api/faults/memory", "/api/faults/tasks"} <= rules
    assert {"/api/faults/memory", "/api/faults/tasks"} <= set(doc["paths"])
    assert set(doc["paths"]["/api/faults/memory"]) == {"post"}
    # in this process: a thread grows 2 x 8 MiB (no limit here) and gives it back
    answer = client.post(
        "/api/faults/memory",
        json={"target": "api", "step_mb": 8, "max_mb": 16, "interval_seconds": 0.01},
    )
    import os

    assert answer.status_code == 202 and answer.get_json()["pid"] == os.getpid()
    # the worker's fault and the tasks behind it are queued in Redis (no worker runs here)
    answer = client.post("/api/faults/memory", json={"target": "worker", "tasks": 3})
    body = answer.get_json()
    assert answer.status_code == 202 and len(body["tasks"]) == 3 and body["fault_task"]
    states = client.get("/api/faults/tasks?ids=" + ",".join(body["tasks"])).get_json()["states"]
    assert states == dict.fromkeys(body["tasks"], "PENDING")
    for bad in ({"target": "db"}, {"step_mb": 0}, {"max_mb": "x"}):
        reply = client.post("/api/faults/memory", json=bad)
        assert reply.status_code == 400 and reply.get_json()["error"]["code"] == "bad_request"
    assert client.get("/api/faults/tasks").status_code == 400
    knob.extensions["tradewise"].close()


def test_the_fault_kills_its_process_at_an_address_space_limit() -> None:
    """Under RLIMIT_AS the allocation fails; the fault ends the process as the OOM killer would."""
    import subprocess
    import sys

    code = (
        "import resource, psutil\n"
        "vms = psutil.Process().memory_info().vms\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vms + 64 * 2**20,) * 2)\n"
        "from app.faults import grow_memory\n"
        "grow_memory(8, 0.0, 4096, 30)\n"
        "print('not killed')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    assert "not killed" not in proc.stdout
    assert "hit its memory limit" in proc.stderr
