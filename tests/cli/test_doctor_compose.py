"""``tradewise doctor --env compose`` on a compose stack really running on a private dockerd.

The stack is ``tests/compose_stack.py``'s stand-in (the checkout's compose file, each service
the test base image idling, host networking): docker-compose and docker report its containers'
states, exit codes and logs for real. What answers on the stack's ports runs on the host, as
the real images would on the host network: the real app (``tradewise-api`` under gunicorn, on
the session's PostgreSQL and Redis) on the environment's URL and API port, the session's Redis
on its Redis port, the session's PostgreSQL behind the compose file's ``DATABASE_URL``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compose_stack import run, stack  # noqa: F401 - fixture
from tests.docker_engine import (  # noqa: F401 - fixtures
    DockerEngine,
    base_image,
    docker_engine,
)
from tests.helpers import free_port
from tests.loadtest_app import ApiServer

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def app_server(tmp_path: Path, redis_url: str, stack: dict[str, Any]) -> Iterator[ApiServer]:  # noqa: F811
    """The real API on the stack's PostgreSQL and the session's Redis."""
    server = ApiServer(
        tmp_path / "app",
        {"DATABASE_URL": stack["url"], "REDIS_URL": redis_url, "WEB_CONCURRENCY": "1"},
    )
    try:
        yield server
    finally:
        server.stop()


def doctor(stack: dict[str, Any], **env: str) -> tuple[int, dict[str, Any], str]:  # noqa: F811
    result = run(
        {**stack, "env": {**stack["env"], **env}}, "doctor", "--env", "compose", "-o", "json"
    )
    return result.exit_code, json.loads(result.stdout), result.stderr


def findings(doc: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [f for f in doc["findings"] if f["check"] == check]


def test_the_stack_not_up_is_one_critical_finding(stack: dict[str, Any]) -> None:  # noqa: F811
    code, doc, _ = doctor(stack)
    assert code == 1
    assert doc["kind"] == "compose" and doc["healthy"] is False
    (finding,) = doc["findings"]
    assert finding["check"] == "compose.containers" and finding["severity"] == "critical"
    assert "not up" in finding["message"]
    assert finding["fix"] == "`tradewise local up --env compose`"


def test_healthy_then_a_container_killed_redis_and_postgres_gone(
    stack: dict[str, Any],  # noqa: F811
    app_server: ApiServer,
    redis_server: Any,
) -> None:
    stack["configure"](url=app_server.url, api_port=app_server.port, redis_port=redis_server.port)
    stack["compose"]("up", "--detach")

    code, doc, stderr = doctor(stack)
    assert code == 0, doc
    assert doc["findings"] == []
    assert {"compose.containers", "compose.ports", "compose.redis", "compose.database"} <= set(
        doc["passed"]
    )
    assert {"app.reachable", "app.readiness"} <= set(doc["passed"])

    # the worker writes a line to its log, then is killed: exit code 137, that line shown
    stack["compose"](
        "exec", "-T", "worker", "sh", "-c", "echo 'worker: about to be killed' > /proc/1/fd/1"
    )
    stack["compose"]("kill", "-s", "KILL", "worker")
    code, doc, _ = doctor(stack)
    assert code == 1
    (dead,) = findings(doc, "compose.containers")
    assert dead["severity"] == "critical" and dead["subject"] == "container worker-1"
    assert "exited with code 137" in dead["message"]
    assert "container worker-1 (worker): exited with code 137" in dead["evidence"]
    assert "  | worker: about to be killed" in dead["evidence"]
    assert "up -d worker" in dead["fix"] and "--project-name tradewise" in dead["fix"]
    assert [f["check"] for f in doc["findings"]] == ["compose.containers"]

    # Redis not answering on the environment's Redis port
    stack["configure"](url=app_server.url, api_port=app_server.port, redis_port=free_port())
    code, doc, _ = doctor(stack)
    assert code == 1
    (port,) = findings(doc, "compose.ports")
    assert "(redis)" in port["message"] and port["severity"] == "critical"
    (ping,) = findings(doc, "compose.redis")
    assert ping["evidence"][0].startswith("PING: no answer")
    assert "up -d redis" in ping["fix"]

    # PostgreSQL not answering where DATABASE_URL points
    stack["configure"](url=app_server.url, api_port=app_server.port, redis_port=redis_server.port)
    gone = str(free_port())
    code, doc, stderr = doctor(stack, TW_POSTGRES_PORT=gone)
    assert code == 1
    (database,) = findings(doc, "compose.database")
    assert database["severity"] == "critical"
    assert database["subject"].endswith(f"@127.0.0.1:{gone}/{stack['env']['TW_POSTGRES_DB']}")
    assert database["evidence"][0].startswith("SELECT 1 on ")
    (port,) = findings(doc, "compose.ports")
    assert f"127.0.0.1:{gone} (postgres)" in port["message"]
    assert findings(doc, "compose.redis") == []
    assert "s3cret-pw" not in json.dumps(doc) + stderr
