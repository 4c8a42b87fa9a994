"""``tradewise db backup|backups|verify|restore``: database backups (SQLite locally, PostgreSQL)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tradewise_ops.cli.state import State, get_state
from tradewise_ops.cli.terminal import TableData
from tradewise_ops.errors import BadInputError, GoalMissedError

if TYPE_CHECKING:
    from tradewise_ops.adapters.backups import BackupStore, Database
    from tradewise_ops.core.backup import Verification

db_app = typer.Typer(
    help="Database backups: the local stack's SQLite file, or a PostgreSQL by URL.",
    no_args_is_help=True,
)

_URL = typer.Option(
    None,
    "--database-url",
    envvar="TRADEWISE_DATABASE_URL",
    help="A PostgreSQL to back up (postgresql://USER:PASSWORD@HOST:PORT/DB); default for a "
    "local environment: its SQLite file.",
)
_DIR = typer.Option(
    None,
    "--dir",
    help="Where backups live (default: STATE_DIR/backups locally, else .tradewise/backups/ENV).",
)


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group."""
    app.add_typer(db_app, name="db")


def _target(state: State, url: str | None, directory: str | None) -> tuple[Database, BackupStore]:
    from tradewise_ops.adapters.backups import BackupStore, PostgresDatabase, SqliteDatabase

    env = state.environment()
    if url:
        db: Database = PostgresDatabase(url)
        default_dir = Path(".tradewise") / "backups" / env.name
    elif env.kind == "local":
        from tradewise_ops.adapters.local import LocalStack

        stack = LocalStack(env)
        db = SqliteDatabase(stack.state_dir / "tradewise.db")
        default_dir = stack.state_dir / "backups"
    else:
        raise BadInputError(
            f"{env.name} is of kind {env.kind}: give --database-url (a PostgreSQL this machine "
            "reaches); backups inside the cluster are not part of this command yet"
        )
    return db, BackupStore(Path(directory) if directory else default_dir)


@db_app.command("backup")
def backup_cmd(
    ctx: typer.Context,
    database_url: str = _URL,
    directory: str = _DIR,
    keep: int = typer.Option(7, "--keep", min=1, help="Backups to keep (older ones go)."),
) -> None:
    """Back up the database: a consistent copy, its row counts and checksums recorded."""
    from tradewise_ops.adapters.backups import backup

    state = get_state(ctx)
    db, store = _target(state, database_url, directory)
    state.terminal.step(f"backing up {db.source} into {store.directory}")
    record, pruned = backup(db, store, keep)
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
def backups_cmd(ctx: typer.Context, database_url: str = _URL, directory: str = _DIR) -> None:
    """The backups, oldest first: name, time, kind, size, tables, rows."""
    state = get_state(ctx)
    _db, store = _target(state, database_url, directory)
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
) -> None:
    """Check a backup: its SHA-256, then open or restore it (PostgreSQL: into a scratch
    database) and compare row counts and checksums with its record. Exit 1 when it fails."""
    from tradewise_ops.adapters.backups import verify

    state = get_state(ctx)
    db, store = _target(state, database_url, directory)
    result = verify(db, store, name)
    _show(state, result, "verified")


@db_app.command("restore")
def restore_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The backup to restore (see `tradewise db backups`)."),
    database_url: str = _URL,
    directory: str = _DIR,
) -> None:
    """Replace the database with a backup (verified first), then check it against the record."""
    from tradewise_ops.adapters.backups import restore

    state = get_state(ctx)
    db, store = _target(state, database_url, directory)
    record = store.get(name)
    if not state.yes:
        if not sys.stdin.isatty():
            raise BadInputError(
                f"restore replaces {db.source} with {record.name}: add --yes (stdin is not a "
                "terminal)"
            )
        if not typer.confirm(f"replace {db.source} with {record.name}?", default=False, err=True):
            raise typer.Exit(1)
    state.terminal.step(f"restoring {record.name} over {db.source}")
    result = restore(db, store, record.name)
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
