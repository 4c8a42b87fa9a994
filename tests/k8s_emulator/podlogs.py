"""Pod logs for the emulator: a log per pod container that tests write, served like the API
server's ``GET /api/v1/namespaces/NS/pods/NAME/log``.

Query parameters served: ``container``, ``follow``, ``sinceSeconds``, ``tailLines``,
``timestamps``. Errors as a real API server words them: 404 for a missing pod, 400 when a
pod with several containers gets no ``container`` (or a wrong one), 400 when the container is
waiting to start. A ``follow=true`` stream sends what exists, then each line as it is written,
and ends when the pod is deleted, the test ends the log (``end``: the container stopped), or
the emulator stops. Where it differs from a real server: docs/known-limits.md.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Iterable
from typing import Any

from tests.k8s_emulator.store import ApiError

# waiting reasons after which the container has run (a log exists from its last run)
_HAS_RUN = frozenset({"CrashLoopBackOff", "RunContainerError"})


def _stamp(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PodLogs:
    """The logs tests write, per (namespace, pod, container), with the time of each line."""

    def __init__(self) -> None:
        self.lines: dict[tuple[str, str, str], list[tuple[float, str]]] = {}
        self.ended: set[tuple[str, str, str]] = set()
        self.changed = threading.Condition()

    def write(
        self, key: tuple[str, str, str], lines: Iterable[str], at: float | None = None
    ) -> None:
        with self.changed:
            log = self.lines.setdefault(key, [])
            for line in lines:
                log.append((time.time() if at is None else at, line))
            self.ended.discard(key)
            self.changed.notify_all()

    def end(self, key: tuple[str, str, str]) -> None:
        with self.changed:
            self.ended.add(key)
            self.changed.notify_all()

    def wake(self) -> None:
        with self.changed:
            self.changed.notify_all()


def containers_of(pod: dict[str, Any]) -> list[str]:
    return [c.get("name", "") for c in ((pod.get("spec") or {}).get("containers") or [])]


def resolve_container(pod: dict[str, Any], container: str | None) -> str:
    """The container a log request means, or the API server's 400."""
    name = pod["metadata"]["name"]
    names = containers_of(pod)
    if not container:
        if len(names) != 1:
            raise ApiError(
                400,
                "BadRequest",
                f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(names)}]",
            )
        return names[0]
    if container not in names:
        raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
    return container


def check_started(pod: dict[str, Any], container: str) -> None:
    """400 ``is waiting to start`` unless the container runs or has run."""
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") != container:
            continue
        state = cs.get("state") or {}
        if "running" in state or "terminated" in state or (cs.get("lastState") or {}):
            return
        reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
        if reason in _HAS_RUN:
            return
        break
    else:
        reason = "ContainerCreating"
    raise ApiError(
        400,
        "BadRequest",
        f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: {reason}',
    )


def select(
    lines: list[tuple[float, str]], query: dict[str, str], now: float | None = None
) -> list[tuple[float, str]]:
    """``sinceSeconds`` first, then ``tailLines``, as the kubelet applies them."""
    out = list(lines)
    since = query.get("sinceSeconds")
    if since:
        try:
            seconds = int(since)
        except ValueError:
            raise ApiError(400, "BadRequest", f"sinceSeconds: invalid value {since!r}") from None
        if seconds < 1:
            raise ApiError(400, "BadRequest", "sinceSeconds: must be greater than 0")
        cutoff = (time.time() if now is None else now) - seconds
        out = [entry for entry in out if entry[0] >= cutoff]
    tail = query.get("tailLines")
    if tail:
        try:
            count = int(tail)
        except ValueError:
            raise ApiError(400, "BadRequest", f"tailLines: invalid value {tail!r}") from None
        if count < 0:
            raise ApiError(400, "BadRequest", "tailLines: must be greater than or equal to 0")
        out = out[-count:] if count else []
    return out


def render(entry: tuple[float, str], timestamps: bool) -> bytes:
    t, line = entry
    return ((f"{_stamp(t)} " if timestamps else "") + line + "\n").encode()
