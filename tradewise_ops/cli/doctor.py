"""``tradewise doctor``: the guide's troubleshooting checklist, run; findings worst first."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.errors import GoalMissedError, UnreachableError

if TYPE_CHECKING:
    from tradewise_ops.core.doctor import DoctorReport


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to the root app."""
    app.command("doctor")(doctor)


def doctor(ctx: typer.Context) -> None:
    """Run the troubleshooting checklist: each finding with its evidence and the fix.

    Kubernetes: cluster and context, the release, pods (crash loops, image pulls, Pending,
    OOM kills, restarts), Service endpoints, HPAs, the metrics API and memory near limits, and
    the app's own readiness, cache, queue, p95 and errors (through the API server's service
    proxy). Local: processes, ports, Redis, the database file, the same app checks. Compose:
    the containers (exit codes, log tails), the ports of nginx, the API, Redis and PostgreSQL,
    Redis PING, PostgreSQL SELECT 1, the same app checks.
    Exit 1 when a finding is critical, 3 when the cluster (or the Docker engine) cannot be
    reached.
    """
    from tradewise_ops.adapters import doctor_probe
    from tradewise_ops.core.doctor import diagnose_cluster, diagnose_local

    state = get_state(ctx)
    env = state.environment()
    slo = state.config().slo
    if env.kind == "local":
        from tradewise_ops.adapters.local import LocalStack

        snapshot = doctor_probe.read_local(LocalStack(env))
        result = diagnose_local(snapshot, slo.p95_ms, slo.error_rate)
    elif env.kind == "compose":
        from tradewise_ops.adapters.local.compose import ComposeStack

        result = diagnose_local(
            doctor_probe.read_compose(ComposeStack(env)), slo.p95_ms, slo.error_rate
        )
    else:  # kubernetes
        configured = state.config().environment(env.name).context  # before --context
        gw = state.kube_gateway(env)
        state.terminal.info(f"checking {env.name} ({gw.where}, namespace {env.namespace})")
        cluster = doctor_probe.read_cluster(
            gw, env.name, env.namespace, configured, backups_enabled=env.backups.enabled
        )
        result = diagnose_cluster(cluster, slo.p95_ms, slo.error_rate)
    _show(state, result)
    if any(f.check == "cluster.reachable" for f in result.critical):
        raise UnreachableError(result.critical[0].message + f": {result.critical[0].evidence[0]}")
    if result.critical:
        raise GoalMissedError(
            f"{len(result.critical)} critical findings in {env.name} (and "
            f"{len(result.warnings)} warnings)"
        )


_MARK = {"critical": "CRITICAL", "warning": "WARNING ", "info": "INFO    "}


def _show(state: State, result: DoctorReport) -> None:
    term = state.terminal
    if term.machine_output:
        term.result(result.to_dict())
        return
    lines = []
    for f in result.findings:
        lines.append(f"{_MARK.get(f.severity, f.severity)} {f.check}  {f.subject}: {f.message}")
        lines.extend(f"    {e}" for e in f.evidence)
        if f.fix:
            lines.append(f"    fix: {f.fix}")
    summary = (
        f"{result.environment}: {len(result.critical)} critical, {len(result.warnings)} "
        f"warnings; passed: {', '.join(result.passed) or 'none'}"
    )
    term.result(result.to_dict(), "\n".join([*lines, summary]))
    if not result.findings:
        term.success(f"{result.environment}: every check passed")
