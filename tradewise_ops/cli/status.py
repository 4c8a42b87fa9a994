"""``tradewise status [ENV]``: the release, its tag, every workload's readiness, HPAs, warnings."""

from __future__ import annotations

from typing import Any

import typer

from tradewise_ops.cli.state import get_state
from tradewise_ops.cli.terminal import TableData

_PART_OF = "app.kubernetes.io/part-of=tradewise"


def register(app: typer.Typer) -> None:
    """Add ``status`` to the root app."""
    app.command("status")(status)


def status(
    ctx: typer.Context,
    env_name: str = typer.Argument(None, metavar="ENV", help="Environment (default: --env)."),
    warnings: int = typer.Option(10, "--warnings", min=0, help="How many recent warnings."),
) -> None:
    """What runs in ENV, at which tag, how healthy: release, workloads, HPAs, recent warnings."""
    from tradewise_ops.adapters.live import maintenance_is_on
    from tradewise_ops.adapters.release_store import ReleaseStore
    from tradewise_ops.core import release as rel
    from tradewise_ops.core.lock import mark_interrupted
    from tradewise_ops.core.rollout import evaluate

    state = get_state(ctx)
    env = state.environment(env_name)
    if not env.is_kubernetes:
        _local_status(state, env)
        return
    gw = state.kube_gateway(env)
    releases = ReleaseStore(gw, env.name, env.namespace).list()
    lock = state.lock_holder(env, gw)  # a running deploy, rollback or scale holds it
    releases = mark_interrupted(releases, lock)  # pending, its deploy gone: interrupted
    running = rel.current(releases)
    newest = rel.latest(releases)
    workloads = gw.list("Deployment", _PART_OF) + gw.list("StatefulSet", _PART_OF)
    pods = gw.list("Pod", "app.kubernetes.io/name=tradewise")
    events = [e for e in gw.events(warnings_only=True)][-warnings:] if warnings else []
    rollout = evaluate(workloads, pods, events)
    hpas = gw.list("HorizontalPodAutoscaler", _PART_OF)
    images = {
        w["metadata"]["name"]: ", ".join(
            c.get("image", "")
            for c in ((w.get("spec") or {}).get("template") or {})
            .get("spec", {})
            .get("containers", [])
        )
        for w in workloads
    }
    data: dict[str, Any] = {
        "environment": env.name,
        "namespace": env.namespace,
        "context": gw.context,
        "release": running.summary() if running else None,
        "latest_release": newest.summary() if newest else None,
        "maintenance": maintenance_is_on(gw),
        "lock": lock.to_dict(_now()) if lock else None,
        "healthy": rollout.done and bool(workloads),
        "workloads": [{**w.to_dict(), "image": images.get(w.name, "")} for w in rollout.workloads],
        "hpas": [_hpa(h) for h in hpas],
        "warnings": [_warning(e) for e in events],
    }
    term = state.terminal
    if term.machine_output:
        term.result(data)
        return
    if running:
        term.info(
            f"{env.name}: revision {running.revision} ({running.tag or 'latest'}) deployed "
            f"{running.time} by {running.user}"
        )
    else:
        term.info(f"{env.name}: no deployed release recorded")
    if newest and running and newest.revision != running.revision:
        term.warn(f"latest revision {newest.revision} is {newest.status}: {newest.note}")
    if data["maintenance"]:
        term.warn("maintenance is on")
    if lock:
        term.warn(f"{env.name} is locked: {lock.sentence(_now())}")
    term.result(
        data,
        TableData(
            ["WORKLOAD", "READY", "UP-TO-DATE", "AVAILABLE", "STATUS", "IMAGE"],
            [
                [
                    f"{w.kind}/{w.name}",
                    f"{w.ready}/{w.desired}",
                    w.updated,
                    w.available,
                    w.state,
                    images.get(w.name, ""),
                ]
                for w in rollout.workloads
            ],
            title=f"workloads in {env.namespace}",
        ),
    )
    if hpas:
        term.result(
            data,
            TableData(
                ["HPA", "TARGET", "MIN", "MAX", "CURRENT", "DESIRED"],
                [list(_hpa(h).values()) for h in hpas],
                title="autoscalers",
            ),
        )
    for e in data["warnings"]:
        term.warn(f"{e['object']}: {e['reason']}: {e['message']}")


def _local_status(state: Any, env: Any) -> None:
    """``status`` of a ``local``/``compose`` environment: its processes (containers)."""
    import dataclasses

    from tradewise_ops.adapters.local import stack_for

    infos = stack_for(env).status()
    data = {
        "environment": env.name,
        "kind": env.kind,
        "url": env.target_url,
        "healthy": bool(infos) and all(i.state == "running" for i in infos),
        "processes": [dataclasses.asdict(i) for i in infos],
    }
    if not infos:
        state.terminal.result(data, f"{env.name}: nothing is running (tradewise local up)")
        return
    state.terminal.result(
        data,
        TableData(
            ["NAME", "COMPONENT", "PID", "STATE", "PORT", "DETAIL"],
            [[i.name, i.component, i.pid, i.state, i.port, i.detail] for i in infos],
            title=f"{env.name} ({env.kind}) at {env.target_url}",
        ),
    )


def _now() -> Any:
    import datetime

    return datetime.datetime.now(datetime.UTC)


def _hpa(h: dict[str, Any]) -> dict[str, Any]:
    spec = h.get("spec") or {}
    status = h.get("status") or {}
    return {
        "name": h["metadata"]["name"],
        "target": (spec.get("scaleTargetRef") or {}).get("name"),
        "min": spec.get("minReplicas"),
        "max": spec.get("maxReplicas"),
        "current": status.get("currentReplicas"),
        "desired": status.get("desiredReplicas"),
    }


def _warning(e: dict[str, Any]) -> dict[str, Any]:
    involved = e.get("involvedObject") or {}
    return {
        "time": e.get("lastTimestamp") or e.get("eventTime"),
        "object": f"{involved.get('kind')}/{involved.get('name')}",
        "reason": e.get("reason"),
        "message": e.get("message"),
    }
