"""``tradewise db ... --env compose`` with a compose stack really running on a private dockerd:
the stand-in stack of ``tests/compose_stack.py`` (the test PostgreSQL on loopback as the
database; this machine's ``pg_dump``/``pg_restore`` mounted into the ``postgres`` stand-in for
``--pg-tools compose``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.app_data import SYMBOLS, store_analyses
from tests.compose_stack import PROJECT, run, stack  # noqa: F401 - fixture
from tests.docker_engine import (  # noqa: F401 - fixtures
    DockerEngine,
    base_image,
    docker_engine,
)

HELD = ("api", "worker", "precompute")

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]


def rows(url: str) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return int(conn.execute("SELECT count(*) FROM stock_analyses").fetchone()[0])


def containers(engine: DockerEngine) -> dict[str, list[dict[str, Any]]]:
    """The project's containers per service: their state (Running, StartedAt)."""
    client = engine.client()
    try:
        out: dict[str, list[dict[str, Any]]] = {}
        for c in client.containers.list(all=True, filters={"label": f"{_P}={PROJECT}"}):
            out.setdefault(c.labels[_S], []).append(c.attrs["State"])
        return out
    finally:
        client.close()


_P, _S = "com.docker.compose.project", "com.docker.compose.service"


def events(engine: DockerEngine, since: float, until: float) -> list[tuple[str, str]]:
    """``(service, action)`` of the project's container events between the two times."""
    client = engine.client()
    try:
        stream = client.events(
            since=int(since), until=int(until) + 1, decode=True, filters={"type": "container"}
        )
        # the API takes whole seconds: the window is cut to the nanosecond here, so the events
        # of a `compose up` just before ``since`` are not counted
        return [
            (e["Actor"]["Attributes"].get(_S, "?"), e["Action"])
            for e in stream
            if e["Actor"]["Attributes"].get(_P) == PROJECT
            and since * 1e9 <= e["timeNano"] <= until * 1e9
        ]
    finally:
        client.close()


def test_restore_stops_the_services_and_starts_them_again(
    stack: dict[str, Any],  # noqa: F811
    docker_engine: DockerEngine,  # noqa: F811
) -> None:
    url = stack["url"]
    made = run(stack, "db", "backup", "--env", "compose", "-o", "json")
    assert made.exit_code == 0, made.stderr
    name = json.loads(made.stdout)["name"]
    store_analyses(url, ("GOOG", "AMZN"))  # written after the backup
    assert rows(url) == len(SYMBOLS) + 2

    # the stack is not up: one sentence, nothing changed
    down = run(stack, "db", "restore", name, "--env", "compose", "--yes")
    assert down.exit_code == 3, down.stderr
    assert "the compose stack of compose is not up" in down.stderr
    assert "tradewise local up --env compose" in down.stderr
    assert rows(url) == len(SYMBOLS) + 2

    stack["compose"]("up", "--detach", "--scale", "worker=2")
    before = containers(docker_engine)
    assert len(before["worker"]) == 2 and all(s["Running"] for v in before.values() for s in v)
    asked = run(stack, "db", "restore", name, "--env", "compose")
    assert asked.exit_code == 2 and "api, worker, precompute stopped meanwhile" in asked.stderr

    began = time.time()
    done = run(stack, "db", "restore", name, "--env", "compose", "--yes", "-o", "json")
    ended = time.time()
    assert done.exit_code == 0, done.stderr
    steps = json.loads(done.stdout)["steps"]
    assert steps[-1]["check"] == "restored" and steps[-1]["ok"]
    assert rows(url) == len(SYMBOLS)  # the backup's rows
    said = done.stderr
    assert said.index("stopped: api, worker, precompute") < said.index(
        "started again: api, worker, precompute"
    )

    after = containers(docker_engine)
    assert all(s["Running"] for v in after.values() for s in v)
    seen = events(docker_engine, began, ended)
    for service in HELD:  # every container of it stopped, then started
        actions = [a for s, a in seen if s == service]
        count = len(before[service])
        assert actions.count("stop") == count and actions.count("start") == count, actions
        assert actions.index("stop") < actions.index("start")
        assert [s["StartedAt"] for s in after[service]] != [s["StartedAt"] for s in before[service]]
    for service in ("postgres", "redis", "nginx"):  # left alone
        assert [a for s, a in seen if s == service] == []
        assert after[service] == before[service]


def test_pg_tools_inside_the_postgres_service(stack: dict[str, Any]) -> None:  # noqa: F811
    url = stack["url"]
    stack["compose"]("up", "--detach", "postgres")
    inside = ("--env", "compose", "--pg-tools", "compose")
    made = run(stack, "db", "backup", *inside, "-o", "json")
    assert made.exit_code == 0, made.stderr
    record = json.loads(made.stdout)
    dump = Path(record["path"])
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format, through exec's stdout
    assert record["fingerprint"]["tables"]["stock_analyses"] == len(SYMBOLS)

    verified = run(stack, "db", "verify", *inside, "-o", "json")
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    steps = {s["check"]: s for s in json.loads(verified.stdout)["steps"]}
    assert "pg_restore on the compose service postgres" in steps["pg_restore"]["detail"]
    assert steps["rows"]["ok"]

    store_analyses(url, ("TSLA",))
    restored = run(stack, "db", "restore", dump.name, *inside, "--yes", "-o", "json")
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert rows(url) == len(SYMBOLS)
    assert "s3cret-pw" not in made.stderr + verified.stderr + restored.stderr

    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) - 200])
    bad = run(stack, "db", "verify", *inside, "-o", "json")
    assert bad.exit_code == 1
    failed = {s["check"]: s for s in json.loads(bad.stdout)["steps"] if not s["ok"]}
    assert {"size", "sha256", "pg_restore"} <= set(failed)
    assert "pg_restore in the compose service postgres failed" in failed["pg_restore"]["detail"]
