"""Database backups on this machine: SQLite (the local stack) and PostgreSQL (``pg_dump -Fc``).

``BackupStore`` is a directory of backup files with a JSON record beside each
(``core.backup.BackupRecord``). ``SqliteDatabase`` copies with SQLite's online backup API (a
consistent copy while the service writes) and fingerprints the copy. ``PostgresDatabase`` opens
a repeatable-read transaction, exports its snapshot, fingerprints the tables in it and runs
``pg_dump -Fc --snapshot=...`` on that same snapshot, so record and dump agree; it verifies by
``pg_restore`` into a scratch database (created, then dropped) and restores with ``pg_restore
--clean --single-transaction``. Connection details go to ``pg_dump``/``pg_restore`` through the
``PG*`` environment variables, never on their command line.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from tradewise_ops.core.backup import (
    POSTGRES,
    SQLITE,
    BackupRecord,
    Fingerprint,
    Verification,
    backup_name,
    check_name,
    differences,
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


class Database(Protocol):
    """What ``backup``/``verify``/``restore`` need of a database."""

    kind: str
    source: str

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


class BackupStore:
    """A directory of backups: ``NAME`` (the dump) and ``NAME.json`` (its record)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, name: str) -> Path:
        return self.directory / check_name(name)

    def records(self) -> list[BackupRecord]:
        """Every backup with a readable record, oldest first."""
        out = []
        for record in sorted(self.directory.glob("tradewise-*.json")):
            try:
                out.append(BackupRecord.from_dict(json.loads(record.read_text())))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return sorted(out, key=lambda r: r.name)

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


def backup(
    db: Database, store: BackupStore, keep: int, now: datetime.datetime | None = None
) -> tuple[BackupRecord, list[str]]:
    """Make a backup, record it, then apply retention (keep the newest ``keep``).

    Returns the record and the names retention removed.
    """
    now = now or datetime.datetime.now(datetime.UTC)
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


def restore(db: Database, store: BackupStore, name: str | None = None) -> Verification:
    """Verify a backup, restore it over the database, then check the database against the
    record (row counts and checksums). A backup that fails verification is not restored."""
    checked = verify(db, store, name)
    if not checked.ok:
        failed = "; ".join(f"{w}: {d}" for w, ok, d in checked.steps if not ok)
        raise GoalMissedError(f"backup {checked.name} failed verification, not restored: {failed}")
    record = store.get(checked.name)
    after = db.restore(store.path(record.name))
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
    candidates += sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise BadInputError(
        f"{name} is not installed: apt-get install postgresql-client (or set TRADEWISE_PG_BIN)"
    )


_PG_FINGERPRINT = (
    "SELECT count(*), coalesce(md5(string_agg(md5(t::text), ',' ORDER BY md5(t::text))), '') "
    "FROM {table} AS t"
)


class PostgresDatabase:
    """A PostgreSQL database, by URL (``postgresql://`` or ``postgresql+psycopg://``)."""

    kind = POSTGRES

    def __init__(self, url: str) -> None:
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
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            {"PGHOST": self.host, "PGPORT": str(self.port), "PGDATABASE": dbname or self.dbname}
        )
        if self.user:
            env["PGUSER"] = self.user
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    @contextlib.contextmanager
    def _connect(self, dbname: str | None = None, autocommit: bool = False) -> Iterator[Any]:
        import psycopg

        try:
            conn = psycopg.connect(self.conninfo(dbname), autocommit=autocommit)
        except psycopg.OperationalError as exc:
            raise UnreachableError(
                f"cannot reach PostgreSQL at {self.source}: {str(exc).strip().splitlines()[0]}"
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

    def _run(self, argv: list[str], dbname: str | None = None) -> None:
        done = subprocess.run(
            argv, env=self._env(dbname), capture_output=True, text=True, timeout=3600
        )
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise GoalMissedError(
                f"{Path(argv[0]).name} failed (exit {done.returncode}): " + " | ".join(lines)
            )

    def dump(self, dest: Path) -> Fingerprint:
        """``pg_dump -Fc`` of a snapshot, and the fingerprint of that same snapshot."""
        import psycopg

        with self._connect() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
            found = self.fingerprint(conn)
            self._run(
                [
                    _pg_binary("pg_dump"),
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--snapshot={snapshot}",
                    f"--file={dest}",
                ]
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
                self._run(
                    [
                        _pg_binary("pg_restore"),
                        "--no-owner",
                        "--no-privileges",
                        "--exit-on-error",
                        f"--dbname={scratch}",
                        str(path),
                    ],
                    dbname=scratch,
                )
            except TradewiseError as exc:
                verification.add("pg_restore", False, exc.message)
                return None
            verification.add("pg_restore", True, f"restored into scratch database {scratch}")
            with self._connect(scratch) as conn:
                return self.fingerprint(conn)
        finally:
            with self._connect(autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')

    def restore(self, src: Path) -> Fingerprint:
        """``pg_restore --clean --if-exists --single-transaction`` over the database."""
        self._run(
            [
                _pg_binary("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={self.dbname}",
                str(src),
            ]
        )
        with self._connect() as conn:
            return self.fingerprint(conn)
