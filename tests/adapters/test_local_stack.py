"""LocalStack against real processes: redis-server, gunicorn, Celery workers, the scheduler.

The SQLite-broker stack (no redis-server) is at the end: it needs no binary, so it runs
everywhere, also where redis-server is installed (``local.broker: sqlite`` forces it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, port_open, require_binary, wait_until
from tradewise_ops.adapters.local import LocalStack, stack_for
from tradewise_ops.adapters.local.common import children_of, command_line, pid_alive
from tradewise_ops.adapters.local.processes import redis_server_binary
from tradewise_ops.core.config import LocalSettings, load_config
from tradewise_ops.errors import AbortedError, BadInputError, GoalMissedError

ROOT = Path(__file__).resolve().parents[2]


def make_env(
    state_dir: Path,
    api_processes: int = 1,
    workers: int = 1,
    kind: str = "local",
    broker: str = "auto",
):
    """The checkout's ``local`` environment with free ports and a private state dir."""
    env = load_config(ROOT / "tradewise.yaml").environment("local")
    import dataclasses

    local = LocalSettings(
        api_port=free_port(),
        api_processes=api_processes,
        worker_processes=workers,
        redis_port=free_port(),
        state_dir=str(state_dir),
        broker=broker,
    )
    return dataclasses.replace(env, kind=kind, local=local, max_replicas=6)


def all_pids(stack: LocalStack) -> list[int]:
    return [i.pid for i in stack.status() if i.pid]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One stack for the module's flow tests (up once, down at the end)."""
    require_binary("redis-server", "apt-get install redis-server")
    messages: list[str] = []
    s = LocalStack(make_env(tmp_path_factory.mktemp("local"), api_processes=2), messages.append)
    try:
        yield s
    finally:
        s.down(grace=5)


def get_json(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_up_starts_everything_and_the_api_is_ready(stack: LocalStack) -> None:
    result = stack.up(timeout=120)
    assert result.started == ["redis", "api", "worker-1", "precompute"]
    assert result.already_running == []
    status, body = get_json(stack.url + "/api/health/ready")
    assert status == 200 and body["status"] == "ready"
    infos = {i.name: i for i in stack.status()}
    assert set(infos) == {"redis", "api", "worker-1", "precompute"}
    assert all(i.state == "running" and pid_alive(i.pid) for i in infos.values())
    assert infos["api"].port == stack.settings.api_port
    assert infos["redis"].port == stack.settings.redis_port
    assert stack.counts() == {"redis": 1, "api": 2, "worker": 1, "precompute": 1}
    # the API uses the stack's SQLite file, the workers its Redis
    assert (stack.state_dir / "tradewise.db").is_file()
    assert stack.is_up()


def test_up_again_is_idempotent(stack: LocalStack) -> None:
    before = {i.name: i.pid for i in stack.status()}
    result = stack.up(timeout=60)
    assert result.started == []
    assert sorted(result.already_running) == sorted(before)
    assert {i.name: i.pid for i in stack.status()} == before
    assert any("already up" in m for m in _messages(stack))


def _messages(stack: LocalStack) -> list[str]:
    # the progress callback is the list's append: read the list back
    return stack.progress.__self__  # type: ignore[attr-defined,no-any-return]


def test_a_worker_processes_a_task(stack: LocalStack) -> None:
    from celery import Celery

    client = Celery(broker=stack.redis_url, backend=stack.redis_url)
    try:
        result = client.send_task("tradewise.analyse_symbol", args=["MSFT"])
        value = result.get(timeout=60)
    finally:
        client.close()
    assert value["symbol"] == "MSFT"
    assert value["action"] in ("buy", "sell", "hold")


def test_scale_api_and_workers_at_run_time(stack: LocalStack) -> None:
    api_pid = next(i.pid for i in stack.status() if i.name == "api")
    assert stack.scale("api", 3)["api"] == 3
    assert stack.scale("workers", 2)["worker"] == 2
    assert {i.name for i in stack.status()} >= {"worker-1", "worker-2"}
    assert stack.scale("api", 1)["api"] == 1
    assert stack.scale("workers", 1)["worker"] == 1
    # the API master was signalled, not restarted
    assert next(i.pid for i in stack.status() if i.name == "api") == api_pid
    status, _ = get_json(stack.url + "/api/health")
    assert status == 200
    with pytest.raises(BadInputError, match="outside 1..6"):
        stack.scale("api", 0)
    with pytest.raises(BadInputError, match="outside 0..6"):
        stack.scale("workers", 7)
    with pytest.raises(BadInputError, match="cannot scale 'redis'"):
        stack.scale("redis", 2)


def test_a_crashed_process_shows_in_ps_and_up_restarts_it(stack: LocalStack) -> None:
    worker = next(i for i in stack.status() if i.name == "worker-1")
    os.kill(worker.pid, signal.SIGKILL)
    wait_until(
        lambda: next(i for i in stack.status() if i.name == "worker-1").state == "exited",
        timeout=10,
        what="the killed worker to show as exited",
    )
    info = next(i for i in stack.status() if i.name == "worker-1")
    assert info.exit_code == -signal.SIGKILL
    assert not stack.is_up()
    result = stack.up(timeout=60)
    assert result.started == ["worker-1"]
    again = next(i for i in stack.status() if i.name == "worker-1")
    assert again.state == "running" and again.pid != worker.pid


def test_logs_tail_and_filter(stack: LocalStack) -> None:
    api_lines = list(stack.logs("api", lines=50))
    assert any("Booting worker" in line or "Listening at" in line for line in api_lines)
    everything = list(stack.logs(None, lines=5))
    assert any(line.startswith("redis | ") for line in everything)
    assert any(line.startswith("worker-1 | ") for line in everything)
    with pytest.raises(BadInputError, match="no local service 'nginx'"):
        list(stack.logs("nginx"))


def test_follow_yields_new_lines(stack: LocalStack) -> None:
    import threading

    path = stack.log_dir / "api.log"
    stop = threading.Event()

    def append() -> None:  # lines appended after the follower started
        while not stop.wait(0.2):
            with open(path, "a") as fh:
                fh.write("marker line from the test\n")

    writer = threading.Thread(target=append, daemon=True)
    writer.start()
    lines = stack.logs("api", follow=True, lines=0)
    try:
        deadline = time.monotonic() + 10
        seen = ""
        while time.monotonic() < deadline and "marker line" not in seen:
            seen = next(lines)
    finally:
        stop.set()
        writer.join()
        lines.close()
    assert seen == "marker line from the test"


def test_down_stops_everything_it_started(stack: LocalStack) -> None:
    pids = all_pids(stack)
    supervisors = [e["supervisor"] for e in stack._read_state()["processes"].values()]
    assert len(pids) == 4
    stopped = stack.down(grace=10)
    assert sorted(stopped) == ["api", "precompute", "redis", "worker-1"]
    assert not any(pid_alive(p) for p in pids + supervisors)
    assert not port_open("127.0.0.1", stack.settings.api_port)
    assert not port_open("127.0.0.1", stack.settings.redis_port)
    assert stack.status() == []
    assert not list((stack.state_dir / "run").glob("*.pid"))
    assert stack.down() == []


# -- faults ------------------------------------------------------------------------------------
def test_port_in_use_names_the_port_and_the_holder(tmp_path: Path) -> None:
    require_binary("redis-server", "apt-get install redis-server")
    s = LocalStack(make_env(tmp_path))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", s.settings.api_port))
        sock.listen()
        with pytest.raises(BadInputError) as err:
            s.up(timeout=30)
    message = str(err.value)
    assert f"port {s.settings.api_port} (api) is already in use by pid {os.getpid()}" in message
    # redis, started before the API's port was checked, was stopped again
    assert s.status() == []
    assert not port_open("127.0.0.1", s.settings.redis_port)


def test_process_facts_of_real_processes() -> None:
    """Liveness (a zombie is dead), direct children, command lines: read through psutil."""
    import subprocess
    import sys

    script = (
        "import os, subprocess, time\n"
        "sleeper = subprocess.Popen(['sleep', '30'])\n"
        "done = subprocess.Popen(['true'])\n"
        "os.waitid(os.P_PID, done.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie\n"
        "print(sleeper.pid, done.pid, flush=True)\n"
        "time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        sleeper, zombie = (int(p) for p in parent.stdout.readline().split())
        assert children_of(parent.pid) == [sleeper]
        assert pid_alive(sleeper) and not pid_alive(zombie)
        assert command_line(sleeper) == "sleep 30"
        assert command_line(parent.pid, limit=12) == sys.executable[:11] + "…"
        assert children_of(sleeper) == []
        os.kill(sleeper, signal.SIGKILL)  # a zombie of the parent from now on
        wait_until(lambda: not pid_alive(sleeper), timeout=10, what="the killed sleep")
        assert children_of(parent.pid) == []
    finally:
        parent.kill()
        parent.wait()
    assert not pid_alive(parent.pid) and not pid_alive(None)
    assert children_of(parent.pid) == [] and command_line(parent.pid) == "?"


def test_missing_redis_server_when_redis_is_required_is_a_clear_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEWISE_REDIS_SERVER", str(tmp_path / "no-redis-server"))
    s = LocalStack(make_env(tmp_path, broker="redis"))
    with pytest.raises(BadInputError, match="redis-server is not installed, and local.broker is"):
        s.up(timeout=10)
    assert s.status() == []


def test_a_service_that_fails_at_start_up_is_reported_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_binary("redis-server", "apt-get install redis-server")
    monkeypatch.setenv("TRADEWISE_INJECT_LATENCY_MS", "not-a-number")
    s = LocalStack(make_env(tmp_path))
    with pytest.raises(GoalMissedError) as err:
        s.up(timeout=60)
    assert "exited 2 during start-up" in str(err.value)
    assert "TRADEWISE_INJECT_LATENCY_MS" in str(err.value)
    assert s.status() == []
    assert not port_open("127.0.0.1", s.settings.redis_port)


def test_ctrl_c_during_up_stops_what_it_started(tmp_path: Path) -> None:
    require_binary("redis-server", "apt-get install redis-server")
    seen: list[str] = []

    def progress(message: str) -> None:
        seen.append(message)
        if message.startswith("starting worker-1"):
            raise KeyboardInterrupt  # what SIGINT raises in the main thread

    s = LocalStack(make_env(tmp_path), progress)
    with pytest.raises(AbortedError, match=r"stopped what this run had started \(redis, api\)"):
        s.up(timeout=60)
    assert s.status() == []
    assert not port_open("127.0.0.1", s.settings.api_port)
    assert not port_open("127.0.0.1", s.settings.redis_port)


def test_stack_for_maps_kinds(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    assert isinstance(stack_for(env), LocalStack)
    import dataclasses

    with pytest.raises(BadInputError, match="kind kubernetes"):
        stack_for(dataclasses.replace(env, kind="kubernetes"))


# -- without Redis: the SQLite broker ----------------------------------------------------------
def test_the_sqlite_broker_stack_serves_processes_tasks_scales_and_stops(tmp_path: Path) -> None:
    from celery import Celery

    messages: list[str] = []
    s = LocalStack(make_env(tmp_path, broker="sqlite"), messages.append)
    try:
        result = s.up(timeout=60)
        assert result.started == ["api", "worker-1", "precompute"]
        assert (
            "local.broker (or TRADEWISE_LOCAL_BROKER) is sqlite: using the SQLite broker, "
            "analyses uncached" in messages
        )
        assert s.broker == "sqlite"
        assert s.broker_url == f"sqla+sqlite:///{s.state_dir / 'broker.db'}"
        status, body = get_json(s.url + "/api/health/ready")
        assert status == 200 and body["checks"]["redis"] == {"ok": True, "disabled": True}
        with urllib.request.urlopen(s.url + "/api/stock-analysis?symbol=KO", timeout=10) as r:
            assert r.headers["X-Cache"] == "MISS" and r.headers["X-Cache-Status"] == "disabled"
            assert json.loads(r.read())["symbol"] == "KO"
        assert {i.name for i in s.status()} == {"api", "worker-1", "precompute"}
        assert s.counts() == {"redis": 0, "api": 1, "worker": 1, "precompute": 1}
        assert not port_open("127.0.0.1", s.settings.redis_port)

        client = Celery(broker=s.broker_url, backend=s.result_backend)
        try:
            value = client.send_task("tradewise.analyse_symbol", args=["PEP"]).get(timeout=30)
        finally:
            client.close()
        assert value["symbol"] == "PEP" and value["cached"] is False
        assert "Task tradewise.analyse_symbol" in "\n".join(s.logs("worker-1", lines=200))
        _, stats = get_json(s.url + "/api/performance/stats")
        assert stats["broker"] == "sqlite" and stats["task_queue_length"] == 0
        assert stats["cache"]["enabled"] is False
        assert stats["cache"]["hits"] == 0 and stats["cache"]["misses"] == 1
        assert stats["cache"]["hit_rate"] == 0.0

        assert s.scale("workers", 2)["worker"] == 2
        assert s.scale("workers", 1)["worker"] == 1
        again = s.up(timeout=30)
        assert again.started == [] and "worker-1" in again.already_running
        assert any("already up" in m and "SQLite broker" in m for m in messages)
    finally:
        pids = all_pids(s)
        supervisors = [e["supervisor"] for e in s._read_state()["processes"].values()]
        stopped = s.down(grace=10)
    assert sorted(stopped) == ["api", "precompute", "worker-1"]
    assert not any(pid_alive(p) for p in pids + supervisors)
    assert not port_open("127.0.0.1", s.settings.api_port)
    assert s.status() == []
    assert not (s.state_dir / "broker.db").exists()
    assert (s.state_dir / "tradewise.db").is_file()


def test_without_redis_server_auto_falls_back_to_the_sqlite_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEWISE_REDIS_SERVER", str(tmp_path / "no-redis-server"))
    messages: list[str] = []
    s = LocalStack(make_env(tmp_path, workers=0), messages.append)
    try:
        assert s.broker == "sqlite"
        result = s.up(timeout=60)
        assert result.started == ["api", "precompute"]
        assert (
            messages[0] == "redis-server not installed: using the SQLite broker, analyses uncached"
        )
        status, body = get_json(s.url + "/api/health/ready")
        assert status == 200 and body["checks"]["redis"]["disabled"] is True
        assert s.counts()["redis"] == 0
        # redis-server "appears": the running stack keeps its broker until it is brought down
        monkeypatch.setenv("TRADEWISE_REDIS_SERVER", "/bin/true")
        assert redis_server_binary() == "/bin/true"
        assert s.up(timeout=30).started == []
        assert any("uses the sqlite broker" in m and "local down" in m for m in messages)
        assert s.broker == "sqlite"
    finally:
        stopped = s.down(grace=10)
    assert sorted(stopped) == ["api", "precompute"]
    assert s.status() == []
