"""Database backups as data: names, records, retention, and what a verification compares.

A backup is a file (``tradewise-<UTC time>.sqlite3``: a SQLite copy made with SQLite's online
backup API; ``tradewise-<UTC time>.dump``: ``pg_dump -Fc``) and a record beside it
(``<name>.json``): when, from where (credentials masked), the file's size and SHA-256, and the
content's *fingerprint*: the row count of every table and a checksum of its rows, taken from the
same consistent snapshot the file holds. Verifying a backup checks the file's SHA-256, then opens
(SQLite) or restores (PostgreSQL, into a scratch database) it and compares row counts and
checksums with the record; a restore is checked the same way afterwards.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.errors import BadInputError

SQLITE, POSTGRES = "sqlite", "postgres"
SUFFIX = {SQLITE: ".sqlite3", POSTGRES: ".dump"}
NAME_RE = re.compile(r"^tradewise-\d{8}T\d{6}(\d{6})?Z\.(sqlite3|dump)$")


def backup_name(kind: str, now: datetime.datetime) -> str:
    """``tradewise-20250301T093000123456Z.dump``: sortable, unique to the microsecond."""
    return f"tradewise-{now.strftime('%Y%m%dT%H%M%S%fZ')}{SUFFIX[kind]}"


def check_name(name: str) -> str:
    """``name`` when it is a backup's file name (no paths); else ``BadInputError``."""
    if not NAME_RE.match(name):
        raise BadInputError(
            f"{name!r} is not a backup name (tradewise-YYYYMMDDTHHMMSSZ.sqlite3|.dump): "
            "see `tradewise db backups`"
        )
    return name


@dataclass(frozen=True)
class Fingerprint:
    """Row counts per table and a checksum of the rows of each, and of all of them."""

    tables: Mapping[str, int]
    checksums: Mapping[str, str]

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    @property
    def checksum(self) -> str:
        """One SHA-256 over every table's name, count and checksum, in name order."""
        text = "\n".join(
            f"{t}\t{self.tables[t]}\t{self.checksums.get(t, '')}" for t in sorted(self.tables)
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "tables": dict(sorted(self.tables.items())),
            "checksums": dict(sorted(self.checksums.items())),
            "checksum": self.checksum,
            "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Fingerprint:
        return cls(
            {str(k): int(v) for k, v in (doc.get("tables") or {}).items()},
            {str(k): str(v) for k, v in (doc.get("checksums") or {}).items()},
        )


def rows_checksum(rows: Iterable[str]) -> str:
    """SHA-256 of rows given as text, in sorted order (so row order does not matter)."""
    digest = hashlib.sha256()
    for row in sorted(rows):
        digest.update(row.encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()


def differences(expected: Fingerprint, actual: Fingerprint) -> list[str]:
    """What differs between two fingerprints, one sentence each (empty: the same)."""
    out = []
    for table in sorted(set(expected.tables) | set(actual.tables)):
        if table not in actual.tables:
            out.append(f"table {table} is missing")
        elif table not in expected.tables:
            out.append(f"table {table} was not in the backup")
        elif expected.tables[table] != actual.tables[table]:
            out.append(
                f"table {table}: {actual.tables[table]} rows, the backup had "
                f"{expected.tables[table]}"
            )
        elif expected.checksums.get(table) != actual.checksums.get(table):
            out.append(f"table {table}: same row count, different rows (checksum)")
    return out


@dataclass(frozen=True)
class BackupRecord:
    """The record beside a backup file."""

    name: str
    kind: str  # sqlite | postgres
    created: str  # ISO 8601, UTC
    source: str  # where from (credentials masked)
    size: int
    sha256: str
    fingerprint: Fingerprint

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "created": self.created,
            "source": self.source,
            "size": self.size,
            "sha256": self.sha256,
            "fingerprint": self.fingerprint.to_dict(),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> BackupRecord:
        return cls(
            name=str(doc["name"]),
            kind=str(doc["kind"]),
            created=str(doc["created"]),
            source=str(doc.get("source", "")),
            size=int(doc["size"]),
            sha256=str(doc["sha256"]),
            fingerprint=Fingerprint.from_dict(doc.get("fingerprint") or {}),
        )

    def row(self) -> list[Any]:
        fp = self.fingerprint
        return [self.name, self.created, self.kind, self.size, len(fp.tables), fp.rows]


def to_prune(records: Sequence[BackupRecord], keep: int) -> list[BackupRecord]:
    """The backups retention removes: all but the newest ``keep`` (by name: by time)."""
    if keep < 1:
        raise BadInputError(f"keep {keep}: keep at least one backup")
    ordered = sorted(records, key=lambda r: r.name, reverse=True)
    return ordered[keep:]


@dataclass
class Verification:
    """The steps of one verification (or the check after a restore), each passed or not."""

    name: str
    steps: list[tuple[str, bool, str]] = field(default_factory=list)  # (what, ok, detail)

    def add(self, what: str, ok: bool, detail: str = "") -> bool:
        self.steps.append((what, ok, detail))
        return ok

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(ok for _, ok, _ in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "steps": [{"check": w, "ok": ok, "detail": d} for w, ok, d in self.steps],
        }

    def rows(self) -> list[list[str]]:
        return [[w, "ok" if ok else "FAILED", d] for w, ok, d in self.steps]


# -- the in-cluster CronJobs' scripts (templates/k8s/backups.yaml.j2) ---------------------------
# Both run under `sh -c` in the postgres image (Debian: GNU date, sha256sum). The connection
# comes from PGHOST/PGPORT/PGUSER/PGDATABASE/PGPASSWORD; the names match ``backup_name``.
BACKUP_SCRIPT = """set -eu
cd "$BACKUP_DIR"
name="tradewise-$(date -u +%Y%m%dT%H%M%S%N | cut -c1-21)Z.dump"
pg_dump --format=custom --no-owner --no-privileges --file="$name.partial"
mv "$name.partial" "$name"
sha256sum "$name" > "$name.sha256"
echo "backup $name: $(wc -c < "$name") bytes"
ls -1 tradewise-*.dump | sort -r | tail -n +$((KEEP + 1)) | while read -r old; do
  rm -f -- "$old" "$old.sha256"
  echo "removed $old (keeping the newest $KEEP)"
done
"""

VERIFY_SCRIPT = r"""set -eu
latest="$(ls -1 "$BACKUP_DIR"/tradewise-*.dump 2>/dev/null | sort | tail -n 1)"
if [ -z "$latest" ]; then echo "no backup in $BACKUP_DIR" >&2; exit 1; fi
name="$(basename "$latest")"
(cd "$BACKUP_DIR" && sha256sum -c "$name.sha256")
pg_restore --list "$latest" > /dev/null
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
initdb -D "$SCRATCH/data" -U verify -A trust --no-sync > "$SCRATCH/initdb.log"
opts="-k $SCRATCH -c listen_addresses= -c fsync=off"
pg_ctl -D "$SCRATCH/data" -l "$SCRATCH/server.log" -w -o "$opts" start > /dev/null
trap 'pg_ctl -D "$SCRATCH/data" -m fast -w stop > /dev/null' EXIT
createdb -h "$SCRATCH" -U verify restored
pg_restore -h "$SCRATCH" -U verify -d restored --no-owner --no-privileges --exit-on-error "$latest"
psql -h "$SCRATCH" -U verify -d restored -v ON_ERROR_STOP=1 -At <<'SQL'
SELECT format('SELECT %L || count(*) FROM %I.%I', 'rows ' || tablename || ' ', schemaname,
              tablename)
FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename \gexec
SQL
echo "verified $name: restored into a throwaway server"
"""

BACKUP_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "500m", "memory": "512Mi"},
}
