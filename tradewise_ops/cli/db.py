"""``tradewise db backup|backups|verify|restore``: database backups (SQLite locally, the compose
stack's PostgreSQL, PostgreSQL by URL, or the in-cluster backup CronJobs of a Kubernetes
environment)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.cli.terminal import TableData
from tradewise_ops.errors import BadInputError, GoalMissedError

if TYPE_CHECKING:
    from tradewise_ops.adapters.backup_jobs import ClusterBackups, JobRun
    from tradewise_ops.adapters.backups import BackupStore, Database
    from tradewise_ops.adapters.local.compose import ComposeStack
    from tradewise_ops.core.backup import Verification

db_app = typer.Typer(
    help="Database backups: the local stack's SQLite file, the compose stack's PostgreSQL, a "
    "PostgreSQL by URL, or the in-cluster backup CronJobs (backups.enabled) of a Kubernetes "
    "environment.",
    no_args_is_help=True,
)

_URL = typer.Option(
    None,
    "--database-url",
    envvar="TRADEWISE_DATABASE_URL",
    help="A PostgreSQL to back up (postgresql://USER:PASSWORD@HOST:PORT/DB); default for a "
    "local environment: its SQLite file; for a compose one: the DATABASE_URL its services use "
    "(compose/docker-compose.yml); for a Kubernetes one: its backup CronJobs.",
)
_DIR = typer.Option(
    None,
    "--dir",
    help="Where backups live (default: STATE_DIR/backups for a local or compose environment, "
    "else .tradewise/backups/ENV).",
)
_PG_TOOLS = typer.Option(
    "auto",
    "--pg-tools",
    envvar="TRADEWISE_PG_TOOLS",
    help="Compose: where pg_dump/pg_restore run: host (this machine's), compose (inside the "
    "postgres service, docker-compose exec), auto (this machine's when installed and at least "
    "the service image's major version, else the service's).",
)


def _timeout(default: str) -> Any:
    return typer.Option(
        default, "--timeout", help="In a cluster: how long to wait for the Job (it goes on after)."
    )


def _cluster(state: State, url: str | None) -> ClusterBackups | None:
    """The environment's backup CronJobs when it is a Kubernetes one and no URL is given."""
    from tradewise_ops.adapters.backup_jobs import ClusterBackups
    from tradewise_ops.core.backup import require_enabled

    env = state.environment()
    if url or not env.is_kubernetes:
        return None
    require_enabled(env.name, env.backups.enabled)
    return ClusterBackups(state.kube_gateway(env), env)


def _seconds(timeout: str) -> float:
    from tradewise_ops.core.units import parse_duration

    return parse_duration(timeout, what="--timeout")


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group."""
    app.add_typer(db_app, name="db")


def _target(
    state: State, url: str | None, directory: str | None, pg_tools: str | None = None
) -> tuple[Database, BackupStore, ComposeStack | None]:
    """The database, the backups directory and (compose) the stack. ``pg_tools`` None: no
    pg_dump/pg_restore will run (a listing)."""
    from tradewise_ops.adapters.backups import (
        PG_TOOLS,
        BackupStore,
        PostgresDatabase,
        SqliteDatabase,
    )

    env = state.environment()
    compose = None
    if pg_tools is not None and pg_tools not in PG_TOOLS:
        raise BadInputError(f"--pg-tools {pg_tools!r}: use one of {', '.join(PG_TOOLS)}")
    if pg_tools == "compose" and (url or env.kind != "compose"):
        raise BadInputError(
            "--pg-tools compose runs pg_dump in a compose stack's postgres service: use it with "
            "a compose environment and without --database-url"
        )
    if url:
        db: Database = PostgresDatabase(url)
        default_dir = Path(".tradewise") / "backups" / env.name
    elif env.kind == "local":
        from tradewise_ops.adapters.local import LocalStack

        stack = LocalStack(env)
        db = SqliteDatabase(stack.state_dir / "tradewise.db")
        default_dir = stack.state_dir / "backups"
    elif env.kind == "compose":
        from tradewise_ops.adapters.backups import compose_pg_tools
        from tradewise_ops.adapters.local.compose import ComposeStack

        compose = ComposeStack(env)
        db = PostgresDatabase(
            compose.database_url(),
            compose_pg_tools(compose, pg_tools) if pg_tools else None,
            hint=f"is the compose stack up? `tradewise local up --env {env.name}`",
        )
        default_dir = compose.state_dir / "backups"
    else:
        raise BadInputError(
            f"{env.name} is of kind {env.kind}: give --database-url (a PostgreSQL this machine "
            "reaches)"
        )
    return db, BackupStore(Path(directory) if directory else default_dir, db.kind), compose


@db_app.command("backup")
def backup_cmd(
    ctx: typer.Context,
    database_url: str = _URL,
    directory: str = _DIR,
    keep: int = typer.Option(7, "--keep", min=1, help="Backups to keep (older ones go)."),
    timeout: str = _timeout("30m"),
    pg_tools: str = _PG_TOOLS,
    force: bool = typer.Option(
        False,
        "--force",
        help="Back up even when the room check says it will not fit (the backups directory's "
        "free space, or in a cluster the claim's size, against the expected size).",
    ),
) -> None:
    """Back up the database: a consistent copy, its row counts and checksums recorded. In a
    Kubernetes environment: a Job from the CronJob tradewise-db-backup, now (keeps backups.keep).
    First the room for it: too little is exit 2 with nothing written (see --force)."""
    from tradewise_ops.adapters.backups import backup

    state = get_state(ctx)
    cluster = _cluster(state, database_url)
    if cluster is not None:
        seconds = _seconds(timeout)
        state.terminal.step(f"backing up the database of {cluster.env.name} (a Job, now)")
        run = cluster.backup(seconds, on_progress=state.terminal.info, force=force)
        doc = run.result or {}
        for name in doc.get("pruned") or []:
            state.terminal.info(f"removed {name} (keeping the newest {cluster.env.backups.keep})")
        if not doc:
            state.terminal.warn(f"the Job succeeded but its pod printed no result ({run.pod})")
        else:
            state.terminal.success(
                f"{doc.get('name')}: {doc.get('bytes')} bytes, {doc.get('tables')} tables"
            )
        state.terminal.result(run.to_dict(), str(doc.get("name") or run.job))
        return
    db, store, _compose = _target(state, database_url, directory, pg_tools)
    state.terminal.step(f"backing up {db.source} into {store.directory}")
    record, pruned = backup(db, store, keep, force=force)
    for name in pruned:
        state.terminal.info(f"removed {name} (keeping the newest {keep})")
    fp = record.fingerprint
    state.terminal.success(
        f"{record.name}: {record.size} bytes, {fp.rows} rows in {len(fp.tables)} tables"
    )
    state.terminal.result(
        {**record.to_dict(), "path": str(store.path(record.name)), "pruned": pruned},
        str(store.path(record.name)),
    )


@db_app.command("backups")
def backups_cmd(
    ctx: typer.Context,
    database_url: str = _URL,
    directory: str = _DIR,
    timeout: str = _timeout("5m"),
) -> None:
    """The backups, oldest first: name, time, kind, size, tables, rows. In a Kubernetes
    environment: the claim's dumps and their verification marks (read by a short Job)."""
    state = get_state(ctx)
    cluster = _cluster(state, database_url)
    if cluster is not None:
        items = cluster.index(_seconds(timeout), on_progress=state.terminal.debug)
        if not items:
            state.terminal.info("no backups in the claim tradewise-backups")
        rows = [
            [b.get("name"), b.get("bytes"), b.get("verified") or "-", b.get("failed") or "-"]
            for b in items
        ]
        state.terminal.result(
            items,
            TableData(
                ["NAME", "BYTES", "VERIFIED", "FAILED"],
                rows,
                title=f"backups in {cluster.env.name} (claim tradewise-backups)",
            ),
        )
        return
    _db, store, _compose = _target(state, database_url, directory)
    records = store.records()
    if not records:
        state.terminal.info(f"no backups in {store.directory}")
    state.terminal.result(
        [r.to_dict() for r in records],
        TableData(
            ["NAME", "CREATED", "KIND", "BYTES", "TABLES", "ROWS"],
            [r.row() for r in records],
            title=f"backups in {store.directory}",
        ),
    )


@db_app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(None, help="The backup (default: the newest)."),
    database_url: str = _URL,
    directory: str = _DIR,
    timeout: str = _timeout("1h"),
    pg_tools: str = _PG_TOOLS,
) -> None:
    """Check a backup: its SHA-256, then open or restore it (PostgreSQL: into a scratch
    database) and compare row counts and checksums with its record. Exit 1 when it fails.
    In a Kubernetes environment: a Job from the CronJob tradewise-db-verify, now."""
    from tradewise_ops.adapters.backups import verify

    state = get_state(ctx)
    cluster = _cluster(state, database_url)
    if cluster is not None:
        seconds = _seconds(timeout)
        state.terminal.step(f"verifying {name or 'the newest backup'} in {cluster.env.name}")
        run = cluster.verify(name, seconds, on_progress=state.terminal.info)
        _show_run(state, run)
        return
    db, store, _compose = _target(state, database_url, directory, pg_tools)
    result = verify(db, store, name)
    _show(state, result, "verified")


@db_app.command("restore")
def restore_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The backup to restore (see `tradewise db backups`)."),
    database_url: str = _URL,
    directory: str = _DIR,
    timeout: str = _timeout("1h"),
    pg_tools: str = _PG_TOOLS,
) -> None:
    """Replace the database with a backup (verified first), then check it against the record.
    Compose: the api, worker and precompute containers stopped meanwhile, then started again.
    In a Kubernetes environment: maintenance on, the API and workers held at 0, a restore Job
    (one transaction), then both back, then the doctor's summary."""
    from tradewise_ops.adapters.backups import restore
    from tradewise_ops.core.backup import HELD_COMPONENTS
    from tradewise_ops.errors import UnreachableError

    state = get_state(ctx)
    cluster = _cluster(state, database_url)
    if cluster is not None:
        _restore_in_cluster(state, cluster, name, _seconds(timeout))
        return
    db, store, compose = _target(state, database_url, directory, pg_tools)
    record = store.get(name)
    if compose is not None and not compose.running(("postgres",)):
        env = compose.env.name
        raise UnreachableError(
            f"the compose stack of {env} is not up (no running postgres container): "
            f"`tradewise local up --env {env}` first; nothing changed"
        )
    held = f" ({', '.join(HELD_COMPONENTS)} stopped meanwhile)" if compose is not None else ""
    if not state.yes:
        if not sys.stdin.isatty():
            raise BadInputError(
                f"restore replaces {db.source} with {record.name}{held}: add --yes (stdin is not "
                "a terminal)"
            )
        if not typer.confirm(
            f"replace {db.source} with {record.name}{held}?", default=False, err=True
        ):
            raise typer.Exit(1)
    state.terminal.step(f"restoring {record.name} over {db.source}")
    hold = compose.hold(HELD_COMPONENTS, state.terminal.info) if compose is not None else None
    result = restore(db, store, record.name, hold=hold)
    _show(state, result, "restored")


def _show(state: State, result: Verification, done: str) -> None:
    state.terminal.result(
        result.to_dict(),
        TableData(["CHECK", "RESULT", "DETAIL"], result.rows(), title=result.name),
    )
    if not result.ok:
        failed = [w for w, ok, _ in result.steps if not ok]
        raise GoalMissedError(f"{result.name}: {', '.join(failed)} failed")
    state.terminal.success(f"{result.name} {done}: every check passed")


def _show_run(state: State, run: JobRun) -> None:
    doc = run.result or {}
    name = str(doc.get("name") or run.job)
    state.terminal.result(run.to_dict(), f"{name}: {run.state}")
    if not run.ok:
        raise GoalMissedError(f"{name}: verification failed: {run.failure()} (Job {run.job})")
    state.terminal.success(
        f"{name} verified: restored into a throwaway server, {doc.get('tables')} tables, "
        f"{doc.get('rows')} rows"
    )


def _restore_in_cluster(state: State, cluster: ClusterBackups, name: str, seconds: float) -> None:
    from tradewise_ops.adapters import doctor_probe
    from tradewise_ops.core.backup import check_dump_name
    from tradewise_ops.core.doctor import diagnose_cluster
    from tradewise_ops.core.render import render_ingress

    env = cluster.env
    check_dump_name(name)
    action = (
        f"restore {name} over the database of {env.name} (maintenance page on, the API and "
        "workers at 0 meanwhile)"
    )
    if not state.yes:
        if not sys.stdin.isatty():
            raise BadInputError(f"{action}: add --yes (stdin is not a terminal)")
        if not typer.confirm(f"{action}?", default=False, err=True):
            raise typer.Exit(1)
    config = state.config()
    # one writer at a time: a deploy, rollback or scale of this environment must not run beside
    # a restore that holds the API and workers at 0 (the release lock, as they take it)
    state.release_lock(env, cluster.gw)
    state.terminal.step(f"restoring {name} in {env.name}")
    outcome = cluster.restore(
        name,
        seconds,
        lambda on: render_ingress(config, env, maintenance=on),
        on_progress=state.terminal.info,
    )
    doc = (outcome.run.result if outcome.run else None) or {}
    state.terminal.success(
        f"{name} restored: {doc.get('tables')} tables, {doc.get('rows')} rows; the service is back"
    )
    slo = config.slo
    snapshot = doctor_probe.read_cluster(
        cluster.gw,
        env.name,
        env.namespace,
        config.environment(env.name).context,
        backups_enabled=env.backups.enabled,
    )
    report = diagnose_cluster(snapshot, slo.p95_ms, slo.error_rate)
    summary = (
        f"doctor: {len(report.critical)} critical, {len(report.warnings)} warnings, "
        f"{len(report.passed)} checks passed"
    )
    for finding in report.critical:
        state.terminal.warn(f"{finding.check} {finding.subject}: {finding.message}")
    state.terminal.result(
        {**outcome.to_dict(), "doctor": report.to_dict()}, f"{name} restored; {summary}"
    )
