"""Database backups on this machine: SQLite (the local stack) and PostgreSQL (``pg_dump -Fc``).

``BackupStore`` is a directory of backup files with a JSON record beside each
(``core.backup.BackupRecord``). ``SqliteDatabase`` copies with SQLite's online backup API (a
consistent copy while the service writes) and fingerprints the copy. ``PostgresDatabase`` opens
a repeatable-read transaction, exports its snapshot, fingerprints the tables in it and runs
``pg_dump -Fc --snapshot=...`` on that same snapshot, so record and dump agree; it verifies by
``pg_restore`` into a scratch database (created, then dropped) and restores with ``pg_restore
--clean --single-transaction``. Connection details go to ``pg_dump``/``pg_restore`` through the
``PG*`` environment variables, never on their command line. Those two run on this machine
(``HostPgTools``) or, for a compose stack, inside its ``postgres`` service (``ComposePgTools``:
``docker-compose exec -T``, the dump on stdout, a restore's input on stdin, the password from
the container's own ``POSTGRES_PASSWORD``).

Before a backup, ``backup`` measures the room in the backups directory's filesystem against
the expected size of the new file (``core.backup.directory_space`` decides).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from tradewise_ops.core.backup import (
    POSTGRES,
    SQLITE,
    BackupRecord,
    Fingerprint,
    SpaceCheck,
    Verification,
    backup_name,
    check_name,
    differences,
    directory_space,
    refuse_directory_space,
    rows_checksum,
    to_prune,
)
from tradewise_ops.core.redact import mask_credentials
from tradewise_ops.errors import (
    BadInputError,
    GoalMissedError,
    NotFoundError,
    TradewiseError,
    UnreachableError,
)

if TYPE_CHECKING:
    from tradewise_ops.adapters.local.compose import ComposeStack


class Database(Protocol):
    """What ``backup``/``verify``/``restore`` need of a database."""

    kind: str
    source: str

    def size(self) -> int | None: ...

    def dump(self, dest: Path) -> Fingerprint: ...

    def check_file(self, path: Path, verification: Verification) -> Fingerprint | None: ...

    def restore(self, src: Path) -> Fingerprint: ...


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Hold(Protocol):
    """What a restore holds while it replaces the database (a compose stack's services)."""

    def stop(self) -> list[str]: ...

    def start(self) -> list[str]: ...

    def say(self, message: str) -> None: ...


class BackupStore:
    """A directory of backups: ``NAME`` (the dump) and ``NAME.json`` (its record).

    ``kind`` (sqlite | postgres) limits it to the backups of that kind: the local and compose
    environments share a state directory by default, and each sees only its own.
    """

    def __init__(self, directory: Path, kind: str | None = None) -> None:
        self.directory = Path(directory)
        self.kind = kind

    def path(self, name: str) -> Path:
        return self.directory / check_name(name)

    def records(self) -> list[BackupRecord]:
        """Every backup with a readable record (of ``kind``), oldest first."""
        out = []
        for record in sorted(self.directory.glob("tradewise-*.json")):
            try:
                out.append(BackupRecord.from_dict(json.loads(record.read_text())))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        if self.kind is not None:
            out = [r for r in out if r.kind == self.kind]
        return sorted(out, key=lambda r: r.name)

    def free_bytes(self) -> int:
        """Free bytes (for this user) on the filesystem that holds (or will hold) the directory."""
        probe = self.directory.resolve()
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        return int(shutil.disk_usage(probe).free)

    def get(self, name: str | None) -> BackupRecord:
        """The record of ``name`` (default: the newest); ``NotFoundError`` when none."""
        records = self.records()
        if name is None:
            if not records:
                raise NotFoundError(f"no backups in {self.directory}: `tradewise db backup`")
            return records[-1]
        check_name(name)
        for record in records:
            if record.name == name:
                return record
        raise NotFoundError(f"no backup {name} in {self.directory} (see `tradewise db backups`)")

    def write(self, record: BackupRecord) -> None:
        partial = self.directory / f"{record.name}.json.partial"
        partial.write_text(json.dumps(record.to_dict(), indent=2) + "\n")
        partial.replace(self.directory / f"{record.name}.json")

    def remove(self, name: str) -> None:
        for path in (self.path(name), self.directory / f"{name}.json"):
            path.unlink(missing_ok=True)


def space_for_backup(db: Database, store: BackupStore) -> SpaceCheck | None:
    """Room for one more backup of ``db`` in ``store``: its filesystem's free bytes against the
    last backup's size (or the database's); None when there is nothing to estimate from."""
    records = store.records()
    last = records[-1] if records else None
    return directory_space(store.free_bytes(), None if last else db.size(), last)


def backup(
    db: Database,
    store: BackupStore,
    keep: int,
    now: datetime.datetime | None = None,
    *,
    force: bool = False,
) -> tuple[BackupRecord, list[str]]:
    """Make a backup, record it, then apply retention (keep the newest ``keep``).

    First the room for it (``space_for_backup``): too little is ``BadInputError`` before
    anything is written, unless ``force``. Returns the record and the names retention removed.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    if not force:
        refuse_directory_space(space_for_backup(db, store), str(store.directory), db.source)
    store.directory.mkdir(parents=True, exist_ok=True)
    name = backup_name(db.kind, now)
    dest = store.directory / name
    partial = dest.with_name(dest.name + ".partial")
    try:
        fingerprint = db.dump(partial)
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    record = BackupRecord(
        name=name,
        kind=db.kind,
        created=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        source=db.source,
        size=dest.stat().st_size,
        sha256=sha256_of(dest),
        fingerprint=fingerprint,
    )
    store.write(record)
    pruned = [r.name for r in to_prune(store.records(), keep)]
    for old in pruned:
        store.remove(old)
    return record, pruned


def verify(db: Database, store: BackupStore, name: str | None = None) -> Verification:
    """Check a backup (default: the newest) against its record: the file's SHA-256, then its
    content (opened or restored into a scratch database): row counts and checksums. Every step
    runs, so a report names everything that is wrong."""
    record = store.get(name)
    path = store.path(record.name)
    result = Verification(record.name)
    if not path.is_file():
        result.add("file", False, f"{path} is missing")
        return result
    size = path.stat().st_size
    result.add("size", size == record.size, f"{size} bytes, recorded {record.size}")
    digest = sha256_of(path)
    result.add(
        "sha256",
        digest == record.sha256,
        "matches the record" if digest == record.sha256 else f"{digest[:16]}… != recorded",
    )
    found = db.check_file(path, result)
    if found is not None:
        diffs = differences(record.fingerprint, found)
        result.add(
            "rows",
            not diffs,
            "; ".join(diffs) or f"{found.rows} rows in {len(found.tables)} tables, checksums match",
        )
    return result


def restore(
    db: Database, store: BackupStore, name: str | None = None, hold: Hold | None = None
) -> Verification:
    """Verify a backup, restore it over the database, then check the database against the
    record (row counts and checksums). A backup that fails verification is not restored.

    ``hold``: stopped after the verification, right before the restore, and started again
    after it, also when it fails (then ``GoalMissedError`` says the database is as it was: the
    restore is one transaction) and what did not come back, and also on Ctrl-C or SIGTERM
    (said through ``hold.say``, then the interrupt goes on).
    """
    checked = verify(db, store, name)
    if not checked.ok:
        failed = "; ".join(f"{w}: {d}" for w, ok, d in checked.steps if not ok)
        raise GoalMissedError(f"backup {checked.name} failed verification, not restored: {failed}")
    record = store.get(checked.name)
    if hold is None:
        after = db.restore(store.path(record.name))
    else:
        try:
            hold.stop()
            after = db.restore(store.path(record.name))
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the CLI's Terminated)
            # the restore process was killed with its transaction: the database is as it was
            problems = hold.start()
            hold.say(
                f"restore of {record.name} interrupted: the restore runs in one transaction, "
                "the database is as it was; "
                + ("; ".join(problems) if problems else "the stopped services run again")
            )
            raise
        except TradewiseError as exc:
            problems = hold.start()
            raise GoalMissedError(
                f"restore of {record.name} stopped: {exc.message}; the restore runs in one "
                "transaction: the database is as it was; "
                + ("; ".join(problems) if problems else "the stopped services run again")
            ) from exc
        problems = hold.start()
        if problems:
            raise GoalMissedError(f"{record.name} restored, but " + "; ".join(problems))
    result = Verification(record.name, list(checked.steps))
    diffs = differences(record.fingerprint, after)
    result.add(
        "restored",
        not diffs,
        "; ".join(diffs) or f"{after.rows} rows in {len(after.tables)} tables match the backup",
    )
    return result


# -- SQLite ------------------------------------------------------------------------------------
def sqlite_fingerprint(conn: sqlite3.Connection) -> Fingerprint:
    """Row counts and row checksums of every table of a SQLite database."""
    names = [
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    tables: dict[str, int] = {}
    checksums: dict[str, str] = {}
    for table in names:
        quoted = '"' + table.replace('"', '""') + '"'
        rows = [repr(tuple(r)) for r in conn.execute(f"SELECT * FROM {quoted}")]  # noqa: S608
        tables[table] = len(rows)
        checksums[table] = rows_checksum(rows)
    return Fingerprint(tables, checksums)


class SqliteDatabase:
    """The local stack's SQLite file."""

    kind = SQLITE

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.source = str(self.path)

    def size(self) -> int | None:
        """The database file's bytes (with its write-ahead log), None when there is none."""
        if not self.path.is_file():
            return None
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.is_file() else 0)

    def _connect_existing(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise NotFoundError(
                f"no database at {self.path}: the local stack has stored nothing yet"
            )
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)

    def dump(self, dest: Path) -> Fingerprint:
        """A consistent copy with SQLite's online backup API; the copy's fingerprint."""
        src = self._connect_existing()
        try:
            out = sqlite3.connect(dest)
            try:
                src.backup(out)
                return sqlite_fingerprint(out)
            finally:
                out.close()
        except sqlite3.Error as exc:  # e.g. "database or disk is full"
            raise GoalMissedError(f"the SQLite backup into {dest.parent} failed: {exc}") from None
        finally:
            src.close()

    def check_file(self, path: Path, verification: Verification) -> Fingerprint | None:
        """``PRAGMA integrity_check`` of the copy, and its fingerprint."""
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                answer = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
                ok = answer == ["ok"]
                verification.add("integrity", ok, "; ".join(answer[:3]))
                return sqlite_fingerprint(conn) if ok else None
            finally:
                conn.close()
        except sqlite3.Error as exc:
            verification.add("integrity", False, f"{type(exc).__name__}: {exc}")
            return None

    def restore(self, src: Path) -> Fingerprint:
        """Copy the backup over the database (the online backup API, into the live file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        try:
            live = sqlite3.connect(self.path, timeout=30)
            try:
                source.backup(live)
                return sqlite_fingerprint(live)
            finally:
                live.close()
        finally:
            source.close()


# -- PostgreSQL --------------------------------------------------------------------------------
def _pg_binary(name: str) -> str:
    """``pg_dump`` / ``pg_restore``: in ``TRADEWISE_PG_BIN``, on PATH, or PostgreSQL's own dir."""
    explicit = os.environ.get("TRADEWISE_PG_BIN")
    candidates = [Path(explicit) / name] if explicit else []
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    candidates += sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)],
        reverse=True,
    )
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise BadInputError(
        f"{name} is not installed: apt-get install postgresql-client (or set TRADEWISE_PG_BIN)"
    )


def _client_major(binary: str) -> int | None:
    """The major version of a PostgreSQL client program (``pg_dump (PostgreSQL) 15.18`` -> 15)."""
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"\)\s+(\d+)", done.stdout)
    return int(m.group(1)) if m else None


def _pg_failure(tool: str, returncode: int, output: str) -> GoalMissedError:
    lines = output.strip().splitlines()[-5:]
    return GoalMissedError(f"{tool} failed (exit {returncode}): " + " | ".join(lines))


class HostPgTools:
    """``pg_dump``/``pg_restore`` on this machine; the connection through ``PG*`` variables."""

    where = "this machine"

    def run(
        self,
        tool: str,
        args: list[str],
        env: dict[str, str],
        *,
        src: Path | None = None,
        dest: Path | None = None,
    ) -> None:
        """Run ``tool ARGS`` (``dest``: ``--file``; ``src``: the archive to read)."""
        argv = [_pg_binary(tool), *args]
        if dest is not None:
            argv.append(f"--file={dest}")
        if src is not None:
            argv.append(str(src))
        base = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        done = subprocess.run(
            argv, env={**base, **env}, capture_output=True, text=True, timeout=3600
        )
        if done.returncode != 0:
            raise _pg_failure(Path(argv[0]).name, done.returncode, done.stderr or done.stdout)


# in the postgres container: its own POSTGRES_PASSWORD as PGPASSWORD (never on a command line)
_WITH_PASSWORD = (
    "; ".join(
        ['if [ -n "${POSTGRES_PASSWORD:-}" ]', 'then export PGPASSWORD="$POSTGRES_PASSWORD"', "fi"]
    )
    + '; exec "$@"'
)


class ComposePgTools:
    """``pg_dump``/``pg_restore`` inside a compose stack's ``postgres`` service (``docker-compose
    exec -T``): the dump comes back on stdout, an archive goes in on stdin, the connection is
    the one the services use (host networking) with the container's own password."""

    def __init__(self, stack: ComposeStack, service: str = "postgres") -> None:
        self.stack = stack
        self.service = service
        self.where = f"the compose service {service}"

    def run(
        self,
        tool: str,
        args: list[str],
        env: dict[str, str],
        *,
        src: Path | None = None,
        dest: Path | None = None,
    ) -> None:
        """Run ``tool ARGS`` in the service's container (``PGPASSWORD`` from its environment)."""
        plain = {k: v for k, v in env.items() if k != "PGPASSWORD"}
        try:
            self.stack.exec_in(
                self.service,
                ["sh", "-c", _WITH_PASSWORD, "sh", tool, *args],
                env=plain,
                stdin=src,
                stdout=dest,
            )
        except GoalMissedError as exc:
            said = [ln for ln in exc.message.splitlines()[1:] if ln.strip()][-5:]
            raise GoalMissedError(
                f"{tool} in {self.where} failed: " + (" | ".join(said) or exc.message)
            ) from None


class PgTools(Protocol):
    """Where ``pg_dump``/``pg_restore`` run."""

    where: str

    def run(
        self,
        tool: str,
        args: list[str],
        env: dict[str, str],
        *,
        src: Path | None = None,
        dest: Path | None = None,
    ) -> None: ...


PG_TOOLS = ("auto", "host", "compose")


def compose_pg_tools(stack: ComposeStack, choice: str = "auto") -> PgTools:
    """The ``pg_dump``/``pg_restore`` for a compose stack: ``host`` (this machine's),
    ``compose`` (inside its postgres service) or ``auto``: this machine's when both are
    installed and at least as new as the service's image (``postgres:15``: 15; pg_dump refuses
    a newer server), else the service's."""
    if choice not in PG_TOOLS:
        raise BadInputError(f"--pg-tools {choice!r}: use one of {', '.join(PG_TOOLS)}")
    if choice == "host":
        return HostPgTools()
    if choice == "compose":
        return ComposePgTools(stack)
    try:
        binaries = [_pg_binary("pg_dump"), _pg_binary("pg_restore")]
    except BadInputError:
        return ComposePgTools(stack)
    server = stack.postgres_major()
    if server is None:
        return HostPgTools()
    majors = [_client_major(b) for b in binaries]
    if all(m is not None and m >= server for m in majors):
        return HostPgTools()
    return ComposePgTools(stack)


_PG_FINGERPRINT = (
    "SELECT count(*), coalesce(md5(string_agg(md5(t::text), ',' ORDER BY md5(t::text))), '') "
    "FROM {table} AS t"
)


class PostgresDatabase:
    """A PostgreSQL database, by URL (``postgresql://`` or ``postgresql+psycopg://``)."""

    kind = POSTGRES

    def __init__(self, url: str, tools: PgTools | None = None, hint: str = "") -> None:
        self.tools: PgTools = tools or HostPgTools()
        self.hint = hint  # said after "cannot reach PostgreSQL ...": how to bring it up
        parts = urlsplit(url)
        scheme = parts.scheme.split("+", 1)[0]
        if scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
            raise BadInputError(
                f"--database-url {mask_credentials(url)!r} is not a postgresql://HOST/DB URL"
            )
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5432
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.dbname = unquote(parts.path.strip("/"))
        self.source = mask_credentials(url)

    def conninfo(self, dbname: str | None = None) -> str:
        from psycopg.conninfo import make_conninfo

        params: dict[str, Any] = {"host": self.host, "port": self.port}
        params["dbname"] = dbname or self.dbname
        if self.user:
            params["user"] = self.user
        if self.password:
            params["password"] = self.password
        return str(make_conninfo(**params, connect_timeout=10))

    def _env(self, dbname: str | None = None) -> dict[str, str]:
        """The ``PG*`` variables of the connection (to ``dbname``, default the database)."""
        env = {"PGHOST": self.host, "PGPORT": str(self.port), "PGDATABASE": dbname or self.dbname}
        if self.user:
            env["PGUSER"] = self.user
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def ping(self, timeout: int = 3) -> str:
        """``ok`` when the database answers ``SELECT 1`` within ``timeout`` seconds, else what
        went wrong (its first line; no password in it)."""
        import psycopg
        from psycopg.conninfo import make_conninfo

        conninfo = make_conninfo(self.conninfo(), connect_timeout=max(1, int(timeout)))
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("SELECT 1").fetchone()
        except psycopg.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return mask_credentials(first)
        return "ok"

    @contextlib.contextmanager
    def _connect(self, dbname: str | None = None, autocommit: bool = False) -> Iterator[Any]:
        import psycopg

        try:
            conn = psycopg.connect(self.conninfo(dbname), autocommit=autocommit)
        except psycopg.OperationalError as exc:
            raise UnreachableError(
                f"cannot reach PostgreSQL at {self.source}: {str(exc).strip().splitlines()[0]}"
                + (f" ({self.hint})" if self.hint else "")
            ) from None
        try:
            yield conn
        finally:
            conn.close()

    @staticmethod
    def fingerprint(conn: Any) -> Fingerprint:
        """Row counts and row checksums of every table in schema ``public``."""
        from psycopg import sql

        names = [
            str(r[0])
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
        ]
        tables: dict[str, int] = {}
        checksums: dict[str, str] = {}
        for table in names:
            query = sql.SQL(_PG_FINGERPRINT).format(table=sql.Identifier("public", table))
            count, digest = conn.execute(query).fetchone()
            tables[table] = int(count)
            checksums[table] = str(digest)
        return Fingerprint(tables, checksums)

    def size(self) -> int | None:
        """``pg_database_size`` of the database: its bytes on the server's disk."""
        with self._connect() as conn:
            return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])

    def dump(self, dest: Path) -> Fingerprint:
        """``pg_dump -Fc`` of a snapshot, and the fingerprint of that same snapshot."""
        import psycopg

        with self._connect() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
            found = self.fingerprint(conn)
            self.tools.run(
                "pg_dump",
                ["--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}"],
                self._env(),
                dest=dest,
            )
            conn.rollback()
        return found

    def check_file(self, path: Path, verification: Verification) -> Fingerprint | None:
        """Restore into a scratch database on the same server, fingerprint it, drop it."""
        scratch = f"{self.dbname}_verify_{secrets.token_hex(4)}"[:63]
        with self._connect(autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{scratch}"')
        try:
            try:
                self.tools.run(
                    "pg_restore",
                    ["--no-owner", "--no-privileges", "--exit-on-error", f"--dbname={scratch}"],
                    self._env(scratch),
                    src=path,
                )
            except TradewiseError as exc:
                verification.add("pg_restore", False, exc.message)
                return None
            verification.add(
                "pg_restore",
                True,
                f"restored into scratch database {scratch} (pg_restore on {self.tools.where})",
            )
            with self._connect(scratch) as conn:
                return self.fingerprint(conn)
        finally:
            with self._connect(autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')

    def restore(self, src: Path) -> Fingerprint:
        """``pg_restore --clean --if-exists --single-transaction`` over the database."""
        self.tools.run(
            "pg_restore",
            [
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={self.dbname}",
            ],
            self._env(),
            src=src,
        )
        with self._connect() as conn:
            return self.fingerprint(conn)
