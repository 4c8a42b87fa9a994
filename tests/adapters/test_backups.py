"""``adapters.backups``: the restore's hold and where a compose stack's pg_dump runs.

A restore with a hold: what it stops is started again, also when the restore fails, and a
failed restore leaves the database as it was (one transaction). The database is the session's
PostgreSQL; the hold is a recorder at the project's own seam (``backups.Hold``: what a compose
stack's services implement, tested for real in ``tests/cli/test_db_compose.py``), noting the
rows at each call so the order shows.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.app_data import SYMBOLS, store_analyses
from tests.conftest import PG_BIN
from tests.helpers import require
from tradewise_ops.adapters.backups import (
    BackupStore,
    ComposePgTools,
    HostPgTools,
    PostgresDatabase,
    backup,
    compose_pg_tools,
    restore,
)
from tradewise_ops.adapters.local import ComposeStack
from tradewise_ops.core.config import load_config
from tradewise_ops.errors import BadInputError, GoalMissedError

ROOT = Path(__file__).resolve().parents[2]


def count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("SELECT count(*) FROM stock_analyses").fetchone()[0])


class Recorder:
    """A hold that notes each call and the database's rows at that moment."""

    def __init__(self, dsn: str, fail_start: bool = False, interrupt: bool = False) -> None:
        self.dsn = dsn
        self.fail_start = fail_start
        self.interrupt = interrupt
        self.calls: list[tuple[str, int]] = []
        self.said: list[str] = []

    def stop(self) -> list[str]:
        self.calls.append(("stop", count(self.dsn)))
        if self.interrupt:  # Ctrl-C (or SIGTERM, the CLI's Terminated) as the services stop
            raise KeyboardInterrupt
        return ["api"]

    def say(self, message: str) -> None:
        self.said.append(message)

    def start(self) -> list[str]:
        self.calls.append(("start", count(self.dsn)))
        return ["api not started again: the engine said no"] if self.fail_start else []


def test_restore_holds_around_the_restore_and_gives_back_on_failure(
    postgres_url: str, tmp_path: Path
) -> None:
    store_analyses(postgres_url)
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    db = PostgresDatabase(postgres_url)
    store = BackupStore(tmp_path, db.kind)
    record, _ = backup(db, store, keep=3)
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM stock_analyses WHERE symbol = 'AAPL'")
        # a view the backup does not know: pg_restore --clean cannot drop the table under it
        conn.execute("CREATE VIEW watched AS SELECT symbol FROM stock_analyses")
    n = len(SYMBOLS)

    hold = Recorder(dsn)
    with pytest.raises(GoalMissedError) as caught:
        restore(db, store, record.name, hold=hold)
    assert hold.calls == [("stop", n - 1), ("start", n - 1)]
    message = caught.value.message
    assert message.startswith(f"restore of {record.name} stopped: pg_restore failed")
    assert "the database is as it was" in message
    assert message.endswith("the stopped services run again")
    assert count(dsn) == n - 1

    with psycopg.connect(dsn) as conn:
        conn.execute("DROP VIEW watched")
    hold = Recorder(dsn)
    result = restore(db, store, record.name, hold=hold)
    assert result.ok and hold.calls == [("stop", n - 1), ("start", n)]  # restored in between

    # interrupted: the services are started again, it is said, and the interrupt goes on
    hold = Recorder(dsn, interrupt=True)
    with pytest.raises(KeyboardInterrupt):
        restore(db, store, record.name, hold=hold)
    assert hold.calls == [("stop", n), ("start", n)]
    assert hold.said == [
        f"restore of {record.name} interrupted: the restore runs in one transaction, the "
        "database is as it was; the stopped services run again"
    ]

    # the restore worked but a service did not come back: said, exit 1
    hold = Recorder(dsn, fail_start=True)
    with pytest.raises(GoalMissedError) as late:
        restore(db, store, record.name, hold=hold)
    assert late.value.message == (
        f"{record.name} restored, but api not started again: the engine said no"
    )
    assert count(dsn) == n

    # a backup that fails verification: nothing is stopped
    path = store.path(record.name)
    path.write_bytes(path.read_bytes()[:-200])
    hold = Recorder(dsn)
    with pytest.raises(GoalMissedError, match="failed verification, not restored"):
        restore(db, store, record.name, hold=hold)
    assert hold.calls == []


def test_where_pg_dump_runs_for_a_compose_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auto: this machine's when installed and at least the image's major (postgres:15)."""
    require((PG_BIN / "pg_dump").is_file(), f"PostgreSQL 15 client programs in {PG_BIN}")
    env = load_config(ROOT / "tradewise.yaml").environment("compose")
    stack = ComposeStack(env, file=ROOT / "compose" / "docker-compose.yml")
    assert stack.postgres_major() == 15
    monkeypatch.setenv("TRADEWISE_PG_BIN", str(PG_BIN))
    assert isinstance(compose_pg_tools(stack), HostPgTools)
    assert isinstance(compose_pg_tools(stack, "host"), HostPgTools)
    inside = compose_pg_tools(stack, "compose")
    assert isinstance(inside, ComposePgTools) and inside.where == "the compose service postgres"
    with pytest.raises(BadInputError, match="use one of auto, host, compose"):
        compose_pg_tools(stack, "docker")

    # an older client on this machine (pg_dump refuses a newer server): the service's
    old = tmp_path / "pg13"
    old.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        script = old / tool
        script.write_text(f"#!/bin/sh\necho '{tool} (PostgreSQL) 13.16'\n")
        script.chmod(0o755)
    monkeypatch.setenv("TRADEWISE_PG_BIN", str(old))
    assert isinstance(compose_pg_tools(stack), ComposePgTools)
