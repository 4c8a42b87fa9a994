"""Fault knobs for stress tests (``TRADEWISE_FAULTS``), off unless the environment enables them.

``memory``: grow a process's memory toward its limit, ``step_mb`` every ``interval_seconds``
(touched pages, so the resident size grows), at most ``max_mb`` and for at most ``seconds``.
At a cgroup's limit the kernel's OOM killer ends the process; under an address-space limit
(``RLIMIT_AS``, what a machine without cgroups can set) the allocation fails instead, and the
fault then ends its process with SIGKILL, as the OOM killer would. Without a limit it stops at
``max_mb`` or ``seconds`` and gives the memory back.

- ``POST /api/faults/memory`` ``{"target": "api"}``: the gunicorn worker that takes the request
  grows, in a thread (202 with its ``pid``); gunicorn starts a new worker after the kill.
- ``POST /api/faults/memory`` ``{"target": "worker", "tasks": N}``: queues the fault task
  (a Celery worker grows while it runs it; the task expires after ``seconds``, so a redelivery
  after the kill is dropped, not run again) and then ``N`` analysis tasks behind it (202 with
  their ids): the stress checks that none of them is lost when the worker is killed.
- ``GET /api/faults/tasks?ids=A,B``: the state of those tasks (``PENDING``, ``STARTED``,
  ``SUCCESS``, ``FAILURE``, ...), from the result backend.

The routes exist only with ``TRADEWISE_FAULTS=memory``; the task refuses to run without it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import shared_task
from flask import Flask, Response, current_app, jsonify, request

log = logging.getLogger(__name__)
MIB = 1024 * 1024
MAX_MB = 65536
MAX_TASKS = 100


def grow_memory(step_mb: int, interval: float, max_mb: int, seconds: float) -> int:
    """Grow this process by ``step_mb`` every ``interval`` s; the MiB it reached.

    A ``MemoryError`` (an address-space limit) ends the process with SIGKILL, as the kernel's
    OOM killer ends a process at its cgroup limit.
    """
    held: list[bytes] = []
    deadline = time.monotonic() + seconds
    grown = 0
    log.warning("memory fault: growing pid %d by %d MiB every %gs", os.getpid(), step_mb, interval)
    try:
        while grown + step_mb <= max_mb and time.monotonic() < deadline:
            held.append(b"\x01" * (step_mb * MIB))  # written: resident, not only reserved
            grown += step_mb
            time.sleep(interval)
    except MemoryError:
        log.error(
            "memory fault: pid %d hit its memory limit at +%d MiB: killed", os.getpid(), grown
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    log.warning("memory fault: pid %d grew %d MiB and met no limit; released", os.getpid(), grown)
    held.clear()
    return grown


@shared_task(name="tradewise.fault_memory", acks_late=True, reject_on_worker_lost=True)
def fault_memory(step_mb: int, interval: float, max_mb: int, seconds: float) -> dict[str, Any]:
    """The memory fault in a Celery worker (refused unless ``TRADEWISE_FAULTS`` has memory)."""
    settings = current_app.config["TRADEWISE_SETTINGS"]
    if "memory" not in settings.faults:
        raise RuntimeError("the memory fault is not enabled here (TRADEWISE_FAULTS)")
    grown = grow_memory(step_mb, interval, max_mb, seconds)
    return {"pid": os.getpid(), "grown_mb": grown}


def _number(raw: Any, name: str, low: float, high: float, default: float) -> float:
    from app.api import ApiError

    if raw is None:
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ApiError(400, "bad_request", f"{name} must be a number") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_request", f"{name} must be between {low:g} and {high:g}")
    return value


def memory_fault() -> Response:
    """Start the memory fault in this API process or in a Celery worker (202)."""
    from app.api import ApiError

    body = request.get_json(silent=True) or {}
    target = body.get("target", "api")
    step = int(_number(body.get("step_mb"), "step_mb", 1, 1024, 16))
    interval = _number(body.get("interval_seconds"), "interval_seconds", 0.01, 60, 0.25)
    max_mb = int(_number(body.get("max_mb"), "max_mb", 1, MAX_MB, 4096))
    seconds = _number(body.get("seconds"), "seconds", 1, 3600, 120)
    if target == "api":
        threading.Thread(
            target=grow_memory,
            args=(step, interval, max_mb, seconds),
            name="tradewise-memory-fault",
            daemon=True,
        ).start()
        response = jsonify({"fault": "memory", "target": "api", "pid": os.getpid()})
        response.status_code = 202
        return response
    if target != "worker":
        raise ApiError(400, "bad_request", "target must be api or worker")
    tasks = int(_number(body.get("tasks"), "tasks", 0, MAX_TASKS, 0))
    from app.tasks import analyse_symbol

    symbols = [str(s) for s in body.get("symbols") or ["IBM"]]
    expires = datetime.now(tz=UTC) + timedelta(seconds=seconds)
    try:
        fault = fault_memory.apply_async((step, interval, max_mb, seconds), expires=expires)
        queued = [analyse_symbol.apply_async((symbols[i % len(symbols)],)).id for i in range(tasks)]
    except Exception as exc:  # noqa: BLE001 - the broker: named in the answer
        raise ApiError(503, "broker_unavailable", f"cannot queue the fault: {exc}") from None
    response = jsonify(
        {"fault": "memory", "target": "worker", "fault_task": fault.id, "tasks": queued}
    )
    response.status_code = 202
    return response


def task_states() -> Response:
    """The states of the tasks named in ``?ids=`` (from the result backend)."""
    from celery.result import AsyncResult

    from app.api import ApiError

    ids = [i for i in (request.args.get("ids") or "").split(",") if i][:MAX_TASKS]
    if not ids:
        raise ApiError(400, "bad_request", "ids: a comma-separated list of task ids")
    celery = current_app.extensions["celery"]
    states = {}
    for task_id in ids:
        try:
            states[task_id] = AsyncResult(task_id, app=celery).state
        except Exception as exc:  # noqa: BLE001 - the result backend: named in the answer
            raise ApiError(503, "backend_unavailable", f"cannot read task states: {exc}") from None
    return jsonify({"states": states})


ROUTES = (
    ("/api/faults/memory", "fault_memory", memory_fault, ("POST",)),
    ("/api/faults/tasks", "fault_tasks", task_states, ("GET",)),
)


def register_faults(flask_app: Flask, faults: tuple[str, ...]) -> None:
    """Add the fault routes when ``memory`` is among the enabled ``faults``."""
    if "memory" not in faults:
        return
    for rule, endpoint, view, methods in ROUTES:
        flask_app.add_url_rule(rule, endpoint, view, methods=list(methods))


def openapi_paths() -> dict[str, Any]:
    """The fault routes in the OpenAPI document (present only when they are)."""
    accepted = {
        "description": "Started",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    error = {
        "description": "Bad input, or the broker or result backend is down",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return {
        "/api/faults/memory": {
            "post": {
                "operationId": "fault_memory",
                "summary": "Stress-test knob (TRADEWISE_FAULTS=memory): grow a process's memory",
                "responses": {"202": accepted, "400": error, "503": error},
            }
        },
        "/api/faults/tasks": {
            "get": {
                "operationId": "fault_tasks",
                "summary": "Stress-test knob: the states of tasks queued by a fault",
                "responses": {
                    "200": {
                        "description": "Task states",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "400": error,
                    "503": error,
                },
            }
        },
    }
