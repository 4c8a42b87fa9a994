"""``tradewise capacity``: what one API replica serves within the SLO, replicas per profile."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.cli.terminal import TableData
from tradewise_ops.errors import AbortedError, BadInputError, GoalMissedError

if TYPE_CHECKING:
    from tradewise_ops.core.config import Environment

API_SELECTOR = "app.kubernetes.io/name=tradewise,app.kubernetes.io/component=api"


def register(app: typer.Typer) -> None:
    """Add ``capacity`` to the root app."""
    app.command("capacity")(capacity)


def capacity(
    ctx: typer.Context,
    host: str = typer.Option(None, "--host", help="Measure this URL (default: see below)."),
    max_seconds: float = typer.Option(
        None, "--max-seconds", help="Bound of the measurement (default capacity.max_seconds)."
    ),
    step_seconds: float = typer.Option(
        None, "--step-seconds", help="Seconds per load step (default capacity.step_seconds)."
    ),
    endpoint: str = typer.Option(
        None, "--endpoint", help="Load this path only (default: the performance_test mix)."
    ),
    replicas: int = typer.Option(
        None, "--replicas", help="API replicas behind --host (default 1)."
    ),
    per_replica: float = typer.Option(
        None, "--per-replica-rps", help="Skip the measurement: one replica serves this req/s."
    ),
    headroom: float = typer.Option(
        None, "--headroom", help="Headroom over a band's top, in % (default from the config)."
    ),
    generator: str = typer.Option(
        "auto",
        "--generator",
        help="The load: wrk (one run per step; pushes one process to its limit), locust, or "
        "auto (wrk when installed, else Locust).",
    ),
) -> None:
    """Step the load up against one API replica until the SLO breaks; replicas per profile.

    The target: --host; else for a local environment one API process (one gunicorn worker)
    started here on a free loopback port; else the environment's URL, divided by its ready API
    pods. Exit 1 when a traffic profile is under-provisioned.
    """
    from tradewise_ops.core.capacity import (
        CAPACITY_COLUMNS,
        allocatable_check,
        capacity_rows,
        profile_needs,
    )

    state = get_state(ctx)
    cfg = state.config()
    env = state.environment()
    room = cfg.capacity.headroom_percent if headroom is None else headroom
    if room < 0:
        raise BadInputError(f"--headroom must be 0 or more (got {room:g})")
    if replicas is not None and replicas < 1:
        raise BadInputError(f"--replicas must be at least 1 (got {replicas})")
    tool = _generator(generator) if per_replica is None else None
    gateway = None
    nodes = None
    skipped = None
    if env.is_kubernetes:  # the cluster first: unreachable exits 3 before any load is sent
        from tradewise_ops.adapters.kube import KubeGateway
        from tradewise_ops.errors import ForbiddenError

        gateway = KubeGateway.from_environment(env)
        try:
            nodes = gateway.list("Node", api_version="v1")
        except ForbiddenError as exc:  # listing Nodes needs a ClusterRole many users lack
            skipped = f"the nodes cannot be read, so requests are not checked against them: {exc}"
            state.terminal.warn(skipped)
    try:
        measured: dict[str, Any] | None = None
        if per_replica is None:
            assert tool is not None
            measured = _measure(state, env, gateway, host, endpoint, replicas, max_seconds,
                                step_seconds, tool)  # fmt: skip
            per_replica = float(measured["per_replica_rps"])
        elif not per_replica > 0:
            raise BadInputError(f"--per-replica-rps must be above 0 (got {per_replica:g})")
    finally:
        if gateway is not None:
            gateway.close()
    needs = profile_needs(cfg.profiles.values(), env, per_replica, room)
    if nodes is not None:
        needs = [
            dataclasses.replace(
                n,
                allocatable=allocatable_check(
                    dataclasses.replace(
                        cfg.profile(n.name), api=max(n.replicas, min(n.replicas_needed, n.hpa_max))
                    ),
                    env,
                    nodes,
                ),
            )
            for n in needs
        ]
    doc = {
        "environment": env.name,
        "per_replica_rps": round(per_replica, 1),
        "headroom_percent": room,
        "measurement": measured,
        "profiles": [n.to_dict() for n in needs],
    }
    if skipped is not None:
        doc["allocatable_skipped"] = skipped
    term = state.terminal
    title = f"capacity of {env.name}: one API replica serves {per_replica:.0f} req/s within the SLO"
    term.result(doc, TableData(CAPACITY_COLUMNS, capacity_rows(needs), title=title))
    short = [n for n in needs if not n.ok]
    if short:
        raise GoalMissedError(
            "under-provisioned: " + "; ".join(f"{n.name}: {n.note()}" for n in short)
        )
    term.success(f"every profile is provisioned for its band with {room:g}% headroom")


def _measure(
    state: State,
    env: Environment,
    gateway: Any,
    host: str | None,
    endpoint: str | None,
    replicas: int | None,
    max_seconds: float | None,
    step_seconds: float | None,
    tool: str,
) -> dict[str, Any]:
    """Step the load up against the target; the steps and the per-replica req/s as data."""
    from tradewise_ops.adapters.loadtest import LoadRunner, probe
    from tradewise_ops.core.capacity import (
        measure_step,
        per_replica_rps,
        step_spec,
        stop_reason,
    )
    from tradewise_ops.core.loadplan import TaskSpec, check_endpoint, check_host, performance_tasks

    cfg = state.config()
    term = state.terminal
    if endpoint is not None:
        tasks: tuple[TaskSpec, ...] = (TaskSpec(endpoint, (check_endpoint(endpoint),)),)
    else:
        tasks = performance_tasks(cfg.performance_test)
    bound = cfg.capacity.max_seconds if max_seconds is None else max_seconds
    step = cfg.capacity.step_seconds if step_seconds is None else step_seconds
    slo = cfg.slo
    steps: list[Any] = []
    with _target(state, env, gateway, host, replicas) as (url, count, where):
        spec = step_spec(check_host(url), tasks, bound, step)
        probe(spec.host + spec.probe_path)
        term.step(
            f"capacity: stepping {', '.join(str(s.users) for s in spec.stages)} users "
            f"({step:g}s each, at most {spec.duration_seconds:g}s, {tool}) against {where}"
        )

        def on_step(judged: Any) -> bool:
            steps.append(judged)
            s = steps[-1]
            p95 = "-" if s.p95_ms is None else f"{s.p95_ms:.0f}"
            users = f"{s.users} user{'s' if s.users > 1 else ''}"
            term.info(
                f"{s.name}: {users}, {s.rps:.0f} req/s, p95 {p95} ms, errors "
                f"{s.error_rate * 100:.2f}%" + ("" if s.within_slo else "  (SLO missed)")
            )
            return stop_reason(steps) is None

        result: Any
        if tool == "wrk":
            from tradewise_ops.adapters.wrk import WrkStepper

            result = WrkStepper().run_steps(spec, slo, on_step)
        else:
            result = LoadRunner().run_steps(
                spec, lambda name, intervals: on_step(measure_step(name, intervals, slo))
            )
    reason = stop_reason(steps) or ("interrupted" if result.aborted else "time bound")
    best = per_replica_rps(steps, count)
    measurement = {
        "target": where,
        "replicas_measured": count,
        "workload": endpoint or "performance_test mix",
        "slo": {"p95_ms": slo.p95_ms, "error_rate": slo.error_rate},
        "stopped_by": reason,
        "steps": [s.to_dict() for s in steps],
        "generator": {"tool": tool, **result.generator()},
        "per_replica_rps": None if best is None else round(best, 1),
    }
    if result.aborted:
        raise AbortedError(f"interrupted after {len(steps)} step(s): no capacity figure")
    if best is None:
        raise GoalMissedError(
            f"not even the first step ({steps[0].users if steps else 1} user) met the SLO "
            f"(p95 < {slo.p95_ms:g} ms, errors < {slo.error_rate:.2%}) against {where}"
        )
    return measurement


def _generator(choice: str) -> str:
    """``wrk`` or ``locust`` for ``--generator``."""
    from tradewise_ops.adapters import wrk

    if choice not in ("auto", "wrk", "locust"):
        raise BadInputError(f"--generator {choice!r}: use auto, wrk or locust")
    if choice == "auto":
        return "wrk" if wrk.available() else "locust"
    if choice == "wrk" and not wrk.available():
        raise BadInputError("--generator wrk: wrk is not installed (apt-get install wrk)")
    return choice


@contextlib.contextmanager
def _target(
    state: State, env: Environment, gateway: Any, host: str | None, replicas: int | None
) -> Iterator[tuple[str | None, int, str]]:
    """(URL, API replicas behind it, description) for as long as the measurement runs."""
    if host:
        yield host, replicas or 1, host + (f" ({replicas} replicas)" if replicas else "")
        return
    if env.kind == "local":
        if replicas is not None:
            raise BadInputError("--replicas goes with --host (locally one process is measured)")
        from tradewise_ops.adapters.local.single import SingleApi

        state.terminal.step("starting one API process (one gunicorn worker) on loopback")
        with SingleApi() as api:
            cache = "with" if api.cached else "without (no redis-server)"
            yield api.url, 1, f"one local API process at {api.url}, {cache} the analysis cache"
        return
    url = env.target_url
    if replicas is None and gateway is not None:
        deployments = gateway.list("Deployment", API_SELECTOR)
        replicas = sum(int((d.get("status") or {}).get("readyReplicas") or 0) for d in deployments)
        if replicas < 1:
            raise GoalMissedError(f"{env.name} has no ready API pod to measure")
    if replicas is None:
        raise BadInputError(
            f"{env.name} is a {env.kind} environment: give --host URL of one API process, or "
            "--replicas N for the processes behind its url"
        )
    yield url, replicas, f"{url} ({replicas} ready API replicas, divided evenly)"
