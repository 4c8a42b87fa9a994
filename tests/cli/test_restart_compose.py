"""``tradewise restart --env compose``: container by container on a real docker-compose.

The stack is the stand-in of ``tests/cli/test_db_compose.py`` (the checkout's compose file, each
service the test base image idling, on a private dockerd), with one change: the ``api`` stand-in
records each SIGHUP it gets, as the API image's PID 1 (gunicorn's master) would act on it. Its
readiness (``/api/health/ready`` on the API port, host networking) is answered by the real app
serving on that port from this machine, since no API image runs here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.test_db_compose import containers, events
from tests.compose_stack import run, stack  # noqa: F401 - fixture
from tests.docker_engine import DockerEngine, base_image, docker_engine  # noqa: F401
from tests.loadtest_app import ApiServer

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

HUP_LOG = "/tmp/hups"
API_STAND_IN = [
    "sh", "-c",
    f"trap 'echo hup >> {HUP_LOG}' HUP; trap 'exit 0' TERM; while :; do sleep 1 & wait $$!; done",
]  # fmt: skip


@pytest.fixture
def api_server(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path_factory.mktemp("api"), extra_env={"REDIS_URL": redis_url})
    yield server
    server.stop()


@pytest.fixture
def compose_stack(stack: dict[str, Any], api_server: ApiServer) -> dict[str, Any]:  # noqa: F811
    """The stand-in stack with an api that traps HUP, and the config's API port set to the real
    app's (the readiness the reload waits for)."""
    file = Path(stack["file"])
    doc = yaml.safe_load(file.read_text())
    doc["services"]["api"]["command"] = API_STAND_IN
    file.write_text(yaml.safe_dump(doc))
    stack["configure"](api_port=int(api_server.url.rsplit(":", 1)[1]))
    stack["compose"]("up", "--detach", "--scale", "worker=2")
    return stack


def test_restart_reloads_the_api_and_restarts_each_container_in_turn(
    compose_stack: dict[str, Any],
    docker_engine: DockerEngine,  # noqa: F811
) -> None:
    before = containers(docker_engine)
    assert len(before["worker"]) == 2
    plan = run(compose_stack, "restart", "--env", "compose", "--dry-run", "-o", "json")
    assert plan.exit_code == 0, plan.stderr
    steps = json.loads(plan.stdout)["steps"]
    assert [(s["name"], s["action"]) for s in steps] == [
        ("api-1", "reload"), ("worker-1", "stop-start"), ("worker-2", "stop-start"),
        ("precompute-1", "stop-start"),
    ], steps  # fmt: skip
    assert containers(docker_engine) == before  # the dry run changed nothing

    began = time.time()
    done = run(compose_stack, "restart", "--env", "compose", "--timeout", "60s", "-o", "json")
    ended = time.time()
    assert done.exit_code == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert [w["name"] for w in outcome["workloads"]] == [s["name"] for s in steps]

    after = containers(docker_engine)
    client = docker_engine.client()
    try:
        api = client.containers.list(filters={"label": "com.docker.compose.service=api"})[0]
        hups = api.exec_run(["cat", HUP_LOG]).output.decode().split()
    finally:
        client.close()
    assert hups == ["hup"]  # one graceful reload, delivered to the API's main process
    assert after["api"] == before["api"]  # the API container itself was not restarted
    seen = events(docker_engine, began, ended)
    assert [a for s, a in seen if s == "api" and a != "top"] == ["kill"]  # top: the worker pids
    order = [s for s, a in seen if a == "start"]
    assert order == ["worker", "worker", "precompute"], seen
    for service in ("worker", "precompute"):
        assert all(s["Running"] for s in after[service])
        assert [s["StartedAt"] for s in after[service]] != [s["StartedAt"] for s in before[service]]
    # one at a time: each container was back before the next one stopped
    starts_and_stops = [(s, a) for s, a in seen if a in ("die", "start") and s != "api"]
    assert starts_and_stops == [
        ("worker", "die"), ("worker", "start"), ("worker", "die"), ("worker", "start"),
        ("precompute", "die"), ("precompute", "start"),
    ], seen  # fmt: skip
    for service in ("postgres", "redis", "nginx"):
        assert [a for s, a in seen if s == service] == []


def test_restart_of_a_stack_that_is_not_up_changes_nothing(
    stack: dict[str, Any],  # noqa: F811
) -> None:
    result = run(stack, "restart", "worker", "--env", "compose")
    assert result.exit_code == 2, result.stderr
    assert "no worker container runs in the compose stack of compose" in result.stderr
    assert "tradewise local up --env compose" in result.stderr


def test_logs_since_keeps_the_lines_docker_stamped_within_it(
    stack: dict[str, Any],  # noqa: F811
) -> None:
    file = Path(stack["file"])
    doc = yaml.safe_load(file.read_text())
    doc["services"]["worker"]["command"] = [
        "sh", "-c",
        "echo early line; sleep 8; echo late line; trap 'exit 0' TERM; "
        "while :; do sleep 1 & wait $$!; done",
    ]  # fmt: skip
    file.write_text(yaml.safe_dump(doc))
    stack["compose"]("up", "--detach", "worker")
    deadline = time.monotonic() + 30
    while "late line" not in run(stack, "logs", "worker", "--env", "compose").stdout:
        assert time.monotonic() < deadline, "the stand-in worker never printed its late line"
        time.sleep(0.5)
    # early at t0, late at t0 + 8 s, found by now: 6 s back keeps only the late one
    recent = run(stack, "logs", "worker", "--env", "compose", "--since", "6s")
    assert recent.exit_code == 0, recent.stderr
    kept = [ln for ln in recent.stdout.splitlines() if "line" in ln]
    assert len(kept) == 1 and kept[0].endswith("| late line"), recent.stdout  # stamp dropped
    assert "worker" in kept[0]  # prefixed with its container, as without --since
    everything = run(stack, "logs", "worker", "--env", "compose")
    assert "early line" in everything.stdout and "late line" in everything.stdout
    wide = run(stack, "logs", "worker", "--env", "compose", "--since", "10m")
    assert "early line" in wide.stdout and "late line" in wide.stdout


def test_sigterm_mid_restart_says_what_was_done_and_exits_143(
    compose_stack: dict[str, Any],
) -> None:
    import os
    import signal
    import subprocess
    import sys

    tradewise = str(Path(sys.executable).parent / "tradewise")
    proc = subprocess.Popen(
        [tradewise, "--config", str(compose_stack["config"]), "restart", "--env", "compose"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={**os.environ, **compose_stack["env"], "NO_COLOR": "1"},
    )  # fmt: skip
    assert proc.stderr is not None
    said = []
    try:
        for line in proc.stderr:
            said.append(line)
            if "restarting worker-1" in line:
                proc.send_signal(signal.SIGTERM)
                break
        said += proc.stderr.readlines()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(said)
    assert proc.returncode == 143, text
    assert "restart interrupted during worker-1: restarted api-1; not started worker-2, " \
        "precompute-1" in text  # fmt: skip
    assert "terminated (SIGTERM)" in text
