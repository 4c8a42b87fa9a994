"""What a load test will send, as data: validated specs, the mixed workload, in-cluster Jobs.

Pure. ``load_test_spec`` and ``performance_test_spec`` check the user's input (a bad duration,
0 users, an endpoint without a leading slash, a spawn rate of 0: ``BadInputError``, exit 2) and
build the ``LoadSpec`` the load generator runs. ``render_locust_jobs`` renders the Locust master
and workers as Kubernetes objects for ``--in-cluster``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tradewise_ops.core.config import PerformanceTest
from tradewise_ops.core.render import render_objects
from tradewise_ops.core.units import parse_duration
from tradewise_ops.errors import BadInputError

GROUP_PATHS = {
    "health": "/api/health",
    "stats": "/api/performance/stats",
}
MAX_WORKERS = 64


@dataclass(frozen=True)
class TaskSpec:
    """One kind of request: its name in the stats, the paths it picks from, its weight."""

    name: str
    paths: tuple[str, ...]
    weight: int = 1


@dataclass(frozen=True)
class StageSpec:
    """One stage of a staged shape: hold ``users`` (reached at ``spawn_rate``) for a while."""

    name: str
    duration_seconds: float
    users: int
    spawn_rate: float


@dataclass(frozen=True)
class WaitSpec:
    """How long a user waits between requests.

    ``constant`` (``seconds``), ``between`` (``low``..``high`` seconds) or ``throughput``
    (``per_user`` requests per second per user, Locust's ``constant_throughput``).
    """

    kind: str = "constant"
    seconds: float = 0.0
    low: float = 0.0
    high: float = 0.0
    per_user: float = 0.0

    def to_wire(self) -> dict[str, Any]:
        if self.kind == "between":
            return {"kind": "between", "min": self.low, "max": self.high}
        if self.kind == "throughput":
            return {"kind": "throughput", "per_user": self.per_user}
        return {"kind": "constant", "seconds": self.seconds}

    def describe(self) -> str:
        if self.kind == "between":
            return f"{self.low:g}-{self.high:g}s"
        if self.kind == "throughput":
            return f"{self.per_user:g} req/s per user"
        return f"{self.seconds:g}s"


@dataclass(frozen=True)
class LoadSpec:
    """A whole run: target, requests, users or stages, waits, intervals, workers."""

    host: str
    tasks: tuple[TaskSpec, ...]
    duration_seconds: float
    users: int
    spawn_rate: float
    stages: tuple[StageSpec, ...] = ()
    wait: WaitSpec = field(default_factory=WaitSpec)
    interval_seconds: float = 1.0
    workers: int = 0
    timeout_seconds: float = 30.0
    kind: str = "load-test"

    @property
    def probe_path(self) -> str:
        """The path the pre-flight check asks for: ``/api/health``."""
        return "/api/health"

    def to_wire(self) -> dict[str, Any]:
        """The JSON spec the load generator reads."""
        return {
            "host": self.host,
            "tasks": [
                {"name": t.name, "paths": list(t.paths), "weight": t.weight} for t in self.tasks
            ],
            "duration": self.duration_seconds,
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "stages": [
                {
                    "name": s.name,
                    "duration": s.duration_seconds,
                    "users": s.users,
                    "spawn_rate": s.spawn_rate,
                }
                for s in self.stages
            ],
            "wait": self.wait.to_wire(),
            "interval": self.interval_seconds,
            "workers": self.workers,
            "timeout": self.timeout_seconds,
        }

    def settings(self) -> dict[str, Any]:
        """The settings shown in reports."""
        return {
            "tasks": [
                {"name": t.name, "paths": list(t.paths), "weight": t.weight} for t in self.tasks
            ],
            "wait": self.wait.describe(),
            "interval_seconds": self.interval_seconds,
            "stages": [
                {"name": s.name, "seconds": s.duration_seconds, "users": s.users}
                for s in self.stages
            ],
        }


def check_host(host: str | None) -> str:
    """A target base URL: ``http(s)://HOST[:PORT][/prefix]`` without a trailing slash."""
    if not host:
        raise BadInputError(
            "no target: give --host URL, or pick an environment with a url or domain (--env)"
        )
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError(f"target {host!r} is not an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise BadInputError(f"target {host!r} must not carry a query or fragment")
    return host.rstrip("/")


def check_endpoint(endpoint: str) -> str:
    """An endpoint path: it must start with ``/`` and contain no whitespace."""
    if not endpoint.startswith("/"):
        raise BadInputError(
            f"endpoint {endpoint!r} must start with '/': for example /api/health or "
            "/api/stock-analysis?symbol=AAPL"
        )
    if re.search(r"\s", endpoint):
        raise BadInputError(f"endpoint {endpoint!r} must not contain spaces")
    return endpoint


def check_users(users: int) -> int:
    """At least one user."""
    if users < 1:
        raise BadInputError(f"users must be at least 1 (got {users})")
    return users


def check_spawn_rate(rate: float) -> float:
    """A positive spawn rate (users started per second)."""
    if not rate > 0:
        raise BadInputError(f"spawn rate must be above 0 users/s (got {rate:g})")
    return rate


def check_workers(workers: int) -> int:
    """0 (one process) up to ``MAX_WORKERS`` local worker processes."""
    if workers < 0 or workers > MAX_WORKERS:
        raise BadInputError(f"--workers must be between 0 and {MAX_WORKERS} (got {workers})")
    return workers


def parse_wait(text: str | None, *, rate: float | None = None, users: int = 1) -> WaitSpec:
    """The wait between a user's requests.

    ``text``: ``0`` (default: as fast as answers come), ``2s``/``0.5`` (constant seconds),
    ``1-3`` (uniform between 1 and 3 s). ``rate`` (total requests/s to hold) wins over ``text``:
    each user then sends ``rate / users`` requests per second.
    """
    if rate is not None:
        if not rate > 0:
            raise BadInputError(f"--rate must be above 0 requests/s (got {rate:g})")
        return WaitSpec(kind="throughput", per_user=rate / users)
    raw = (text or "0").strip().lower().removesuffix("s")
    try:
        if "-" in raw:
            low_s, high_s = raw.split("-", 1)
            low, high = float(low_s), float(high_s.removesuffix("s"))
            if low < 0 or high < low:
                raise ValueError
            return WaitSpec(kind="between", low=low, high=high)
        seconds = float(raw)
        if seconds < 0:
            raise ValueError
        return WaitSpec(kind="constant", seconds=seconds)
    except ValueError:
        raise BadInputError(
            f"--wait {text!r} is not a wait: use seconds (0, 0.5, 2s) or a range (1-3)"
        ) from None


def load_test_spec(
    *,
    host: str | None,
    duration: str,
    users: int,
    endpoint: str,
    spawn_rate: float,
    wait: WaitSpec | None = None,
    workers: int = 0,
    interval_seconds: float = 1.0,
    timeout_seconds: float = 30.0,
) -> LoadSpec:
    """The spec of ``tradewise load-test``: one endpoint, a fixed number of users."""
    seconds = parse_duration(duration, what="duration")
    check_users(users)
    check_endpoint(endpoint)
    check_spawn_rate(spawn_rate)
    check_workers(workers)
    if workers and users < workers:
        raise BadInputError(f"{users} users cannot be spread over {workers} workers")
    return LoadSpec(
        host=check_host(host),
        tasks=(TaskSpec(name=endpoint, paths=(endpoint,), weight=1),),
        duration_seconds=seconds,
        users=users,
        spawn_rate=spawn_rate,
        wait=wait or WaitSpec(),
        interval_seconds=interval_seconds,
        workers=workers,
        timeout_seconds=timeout_seconds,
    )


def performance_tasks(perf: PerformanceTest) -> tuple[TaskSpec, ...]:
    """The mixed workload's request groups, with the weights of ``tradewise.yaml``.

    ``analysis_hot`` and ``analysis_cold`` pick a symbol from their list on every request.
    """
    tasks = []
    for group, weight in perf.weights.items():
        if weight <= 0:
            continue
        if group == "analysis_hot":
            paths = tuple(f"/api/stock-analysis?symbol={s}" for s in perf.hot_symbols)
        elif group == "analysis_cold":
            paths = tuple(f"/api/stock-analysis?symbol={s}" for s in perf.cold_symbols)
        else:
            paths = (GROUP_PATHS[group],)
        if paths:
            tasks.append(TaskSpec(name=group, paths=paths, weight=weight))
    if not tasks:
        raise BadInputError("performance_test: no request group has a weight above 0")
    return tuple(tasks)


def performance_test_spec(
    *,
    host: str | None,
    perf: PerformanceTest,
    scale: float = 1.0,
    wait: WaitSpec | None = None,
    workers: int = 0,
    interval_seconds: float = 1.0,
    timeout_seconds: float = 30.0,
) -> LoadSpec:
    """The spec of ``tradewise performance-test``: the staged mixed workload.

    ``scale`` multiplies every stage's duration (0.1 runs a 50 s shape in 5 s).
    """
    if not 0 < scale <= 100:
        raise BadInputError(f"--scale-duration must be above 0 and at most 100 (got {scale:g})")
    check_workers(workers)
    stages = tuple(
        StageSpec(
            name=s.name,
            duration_seconds=s.duration_seconds * scale,
            users=s.users,
            spawn_rate=s.spawn_rate,
        )
        for s in perf.stages
    )
    peak = max(s.users for s in stages)
    if peak < 1:
        raise BadInputError("performance_test.stages: every stage has 0 users")
    return LoadSpec(
        host=check_host(host),
        tasks=performance_tasks(perf),
        duration_seconds=sum(s.duration_seconds for s in stages),
        users=peak,
        spawn_rate=max(s.spawn_rate for s in stages),
        stages=stages,
        wait=wait or WaitSpec(kind="between", low=0.5, high=1.5),
        interval_seconds=interval_seconds,
        workers=workers,
        timeout_seconds=timeout_seconds,
        kind="performance-test",
    )


# --------------------------------------------------------------------------------------------
# --in-cluster: the Locust master and workers as Kubernetes objects
# --------------------------------------------------------------------------------------------
LOCUST_LABELS = {
    "app.kubernetes.io/name": "tradewise",
    "app.kubernetes.io/part-of": "tradewise",
    "app.kubernetes.io/managed-by": "tradewise",
    "app.kubernetes.io/component": "loadtest",
}


def render_locust_jobs(
    spec: LoadSpec,
    *,
    namespace: str,
    environment: str,
    image: str,
    run_id: str,
    workers: int = 2,
) -> list[dict[str, Any]]:
    """The in-cluster run: a ConfigMap with the spec, a master Service, master and worker Jobs.

    Rendered from ``templates/k8s/loadtest/locust-jobs.yaml.j2`` by the manifests' own engine
    (``core.render``), so ``core.validate`` checks them like every other object. The pods run
    this package's load generator (``python -m tradewise_ops.adapters._locust_child``) from
    ``image``, which needs tradewise and Locust installed. The master reads the spec from the
    ConfigMap, prints the interval lines on its log and leaves the run's totals in its
    termination message, where ``adapters.loadtest.run_in_cluster`` reads them.
    """
    if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", run_id) or len(run_id) > 40:
        raise BadInputError(f"run id {run_id!r} must be a lower-case DNS label of 40 characters")
    check_workers(workers)
    if workers < 1:
        raise BadInputError("--in-cluster needs at least one worker (--workers N)")
    base = f"tradewise-loadtest-{run_id}"
    wire = spec.to_wire()
    wire["workers"] = workers
    wire["worker_start_timeout"] = 120
    port = 5557
    spec_file = "/etc/tradewise-loadtest/spec.json"
    child = ["python", "-m", "tradewise_ops.adapters._locust_child", "--spec-file", spec_file]
    return render_objects(
        "loadtest/locust-jobs.yaml.j2",
        {
            "base": base,
            "namespace": namespace,
            "run_id": run_id,
            "image": image,
            "labels": {
                **LOCUST_LABELS,
                "tradewise.io/environment": environment,
                "tradewise.io/run": run_id,
            },
            "spec_json": json.dumps(wire, sort_keys=True),
            "port": port,
            "deadline": int(spec.duration_seconds + 300),
            "jobs": [
                {
                    "role": "master",
                    "parallelism": 1,
                    "command": [*child, "--master-port", str(port)],
                },
                {
                    "role": "worker",
                    "parallelism": workers,
                    "command": [*child, "--worker", f"{base}-master", str(port)],
                },
            ],
        },
    )
