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

import copy
import datetime
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.core.units import format_bytes
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


# -- room for one more backup (the adapters measure; this decides) -------------------------------
GROWTH_HEADROOM = 0.10  # the database may have grown since the last backup


@dataclass(frozen=True)
class SpaceCheck:
    """Whether one more backup fits: the bytes it needs, the bytes there are, and the basis of
    the estimate (said in the refusal)."""

    needed: int
    available: int
    basis: str

    @property
    def fits(self) -> bool:
        return self.needed <= self.available

    def to_dict(self) -> dict[str, Any]:
        return {
            "needed": self.needed,
            "available": self.available,
            "basis": self.basis,
            "fits": self.fits,
        }


def directory_space(
    available: int, database_bytes: int | None, last: BackupRecord | None
) -> SpaceCheck | None:
    """Room for one more backup in a directory with ``available`` bytes free.

    The new file is estimated by the last backup of the same kind plus ``GROWTH_HEADROOM``;
    without one, by the database's own size (SQLite: the file; PostgreSQL:
    ``pg_database_size``, more than a compressed dump without indexes takes). Retention runs
    after the new file is written, so the old backups make no room for it. None: nothing to
    estimate from.
    """
    if last is not None and last.size > 0:
        needed = int(last.size * (1 + GROWTH_HEADROOM)) + 1
        basis = (
            f"the last backup, {last.name}, was {format_bytes(last.size)}, plus "
            f"{GROWTH_HEADROOM:.0%} for growth"
        )
        return SpaceCheck(needed, available, basis)
    if database_bytes is not None:
        return SpaceCheck(
            database_bytes, available, f"the database takes {format_bytes(database_bytes)}"
        )
    return None


def refuse_directory_space(check: SpaceCheck | None, directory: str, source: str) -> None:
    """``BadInputError`` (one sentence: the directory, both sizes, what to do) unless it fits."""
    if check is None or check.fits:
        return
    raise BadInputError(
        f"no room for a backup of {source} in {directory}: {format_bytes(check.available)} "
        f"free, about {format_bytes(check.needed)} needed ({check.basis}); free space there, "
        "remove old backups or give --dir on a larger filesystem (--force tries anyway); "
        "nothing was written"
    )


def claim_space(capacity: int, keep: int, newest: tuple[str, int] | None) -> SpaceCheck | None:
    """Room in the backups claim for what the backup CronJob holds at its peak.

    The backup script writes the new dump before it prunes, so the claim must hold ``keep``
    dumps plus one, each estimated by the newest dump's size (``newest``: its name and bytes,
    from the last backup Job's result). None: no backup recorded yet, nothing to estimate from.
    """
    if newest is None or newest[1] <= 0:
        return None
    name, size = newest
    basis = (
        f"backups.keep {keep} dumps plus the new one, about {format_bytes(size)} each like the "
        f"newest, {name}"
    )
    return SpaceCheck((keep + 1) * size, capacity, basis)


def refuse_claim_space(check: SpaceCheck | None, environment: str, claim: str) -> None:
    """``BadInputError`` naming the claim, both sizes and the keys to change, unless it fits."""
    if check is None or check.fits:
        return
    raise BadInputError(
        f"the backups volume {claim} of {environment} ({format_bytes(check.available)}) is too "
        f"small for its database: {format_bytes(check.needed)} needed ({check.basis}); raise "
        f"environments.{environment}.backups.storage and deploy, or lower backups.keep "
        "(--force tries anyway); no Job was created"
    )


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
bytes="$(wc -c < "$name")"
tables="$(pg_restore --list "$name" | grep -c ' TABLE DATA ' || true)"
echo "backup $name: $bytes bytes"
pruned=""
for old in $(ls -1 tradewise-*.dump | sort -r | tail -n +$((KEEP + 1))); do
  rm -f -- "$old" "$old.sha256" "$old.verified" "$old.failed"
  echo "removed $old (keeping the newest $KEEP)"
  pruned="$pruned${pruned:+,}\"$old\""
done
printf '{"name": "%s", "bytes": %s, "tables": %s, "pruned": [%s]}\n' \
  "$name" "$bytes" "$tables" "$pruned"
"""

VERIFY_SCRIPT = r"""set -eu
name=""
step="find the backup"
started=""
finish() {
  rc=$?
  if [ -n "$started" ]; then pg_ctl -D "$SCRATCH/data" -m fast -w stop > /dev/null || true; fi
  if [ "$rc" -ne 0 ]; then
    echo "FAILED: $step"
    if [ -n "$name" ] && [ -f "$BACKUP_DIR/$name" ]; then
      (date -u +%Y-%m-%dT%H:%M:%SZ; echo "$step") > "$BACKUP_DIR/$name.failed" 2>/dev/null || true
    fi
    printf '{"name": "%s", "ok": false, "step": "%s"}\n' "$name" "$step"
  fi
  exit "$rc"
}
trap finish EXIT
if [ -n "${BACKUP:-}" ]; then
  case "$BACKUP" in
    tradewise-*.dump) name="$BACKUP" ;;
    *) echo "$BACKUP is not a backup name" >&2; exit 1 ;;
  esac
  if [ ! -f "$BACKUP_DIR/$name" ]; then echo "no backup $name in $BACKUP_DIR" >&2; exit 1; fi
else
  latest="$(ls -1 "$BACKUP_DIR"/tradewise-*.dump 2>/dev/null | sort | tail -n 1)"
  if [ -z "$latest" ]; then echo "no backup in $BACKUP_DIR" >&2; exit 1; fi
  name="$(basename "$latest")"
fi
latest="$BACKUP_DIR/$name"
step="checksum (sha256sum -c $name.sha256)"
(cd "$BACKUP_DIR" && sha256sum -c "$name.sha256")
step="read the archive (pg_restore --list)"
pg_restore --list "$latest" > /dev/null
step="start a throwaway server"
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
initdb -D "$SCRATCH/data" -U verify -A trust --no-sync > "$SCRATCH/initdb.log"
opts="-k $SCRATCH -c listen_addresses= -c fsync=off"
pg_ctl -D "$SCRATCH/data" -l "$SCRATCH/server.log" -w -o "$opts" start > /dev/null
started=1
createdb -h "$SCRATCH" -U verify restored
step="restore (pg_restore)"
pg_restore -h "$SCRATCH" -U verify -d restored --no-owner --no-privileges --exit-on-error "$latest"
step="count the rows"
psql -h "$SCRATCH" -U verify -d restored -v ON_ERROR_STOP=1 -At > "$SCRATCH/rows" <<'SQL'
SELECT format('SELECT %L || count(*) FROM %I.%I', 'rows ' || tablename || ' ', schemaname,
              tablename)
FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename \gexec
SQL
cat "$SCRATCH/rows"
tables="$(grep -c '^rows ' "$SCRATCH/rows" || true)"
rows="$(awk '/^rows / {n += $3} END {print n + 0}' "$SCRATCH/rows")"
echo "verified $name: restored into a throwaway server"
date -u +%Y-%m-%dT%H:%M:%SZ > "$BACKUP_DIR/$name.verified" 2>/dev/null || true
rm -f "$BACKUP_DIR/$name.failed" 2>/dev/null || true
printf '{"name": "%s", "ok": true, "tables": %s, "rows": %s}\n' "$name" "$tables" "$rows"
"""

# Lists the claim's dumps (run in the verify CronJob's pod, its command replaced): one JSON line,
# ``{"backups": [{"name", "bytes", "verified", "failed"}]}`` oldest first; ``verified`` is the
# time of the last passed verification (``NAME.verified``), ``failed`` the failed step, or null.
LIST_SCRIPT = r"""set -eu
cd "$BACKUP_DIR"
out=""
for f in $(ls -1 tradewise-*.dump 2>/dev/null | sort); do
  bytes="$(wc -c < "$f")"
  verified=null
  failed=null
  if [ -f "$f.verified" ]; then verified="\"$(head -n 1 "$f.verified")\""; fi
  if [ -f "$f.failed" ]; then failed="\"$(tail -n 1 "$f.failed" | tr -d '"\\')\""; fi
  item="{\"name\": \"$f\", \"bytes\": $bytes, \"verified\": $verified, \"failed\": $failed}"
  out="$out${out:+, }$item"
done
printf '{"backups": [%s]}\n' "$out"
"""

# Restores BACKUP over the live database (run in the backup CronJob's pod, its command replaced:
# the connection and the claim are that pod's). One transaction: a failure leaves the database as
# it was. Prints the restored tables' row counts, then one JSON line.
RESTORE_SCRIPT = r"""set -eu
name="${BACKUP:-}"
step="find the backup"
finish() {
  rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "FAILED: $step"
    printf '{"name": "%s", "ok": false, "step": "%s"}\n' "$name" "$step"
  fi
  exit "$rc"
}
trap finish EXIT
case "$name" in
  tradewise-*.dump) ;;
  *) echo "$name is not a backup name" >&2; exit 1 ;;
esac
if [ ! -f "$BACKUP_DIR/$name" ]; then echo "no backup $name in $BACKUP_DIR" >&2; exit 1; fi
step="checksum (sha256sum -c $name.sha256)"
(cd "$BACKUP_DIR" && sha256sum -c "$name.sha256")
step="restore (pg_restore --clean --single-transaction)"
pg_restore --clean --if-exists --single-transaction --exit-on-error --no-owner --no-privileges \
  -d "$PGDATABASE" "$BACKUP_DIR/$name"
step="count the rows"
psql -v ON_ERROR_STOP=1 -At > /tmp/restore-rows <<'SQL'
SELECT format('SELECT %L || count(*) FROM %I.%I', 'rows ' || tablename || ' ', schemaname,
              tablename)
FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename \gexec
SQL
cat /tmp/restore-rows
tables="$(grep -c '^rows ' /tmp/restore-rows || true)"
rows="$(awk '/^rows / {n += $3} END {print n + 0}' /tmp/restore-rows)"
echo "restored $name"
printf '{"name": "%s", "ok": true, "tables": %s, "rows": %s}\n' "$name" "$tables" "$rows"
"""

HELD_COMPONENTS = ("api", "worker", "precompute")  # scaled to 0 while a restore runs

BACKUP_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "500m", "memory": "512Mi"},
}


# -- running the CronJobs now (``tradewise db backup|verify|backups --env E``) -------------------
BACKUP_CRONJOB, VERIFY_CRONJOB = "tradewise-db-backup", "tradewise-db-verify"
INSTANTIATE = "cronjob.kubernetes.io/instantiate"
JOB_NAME_LABEL = "job-name"  # what the Job controller puts on its pods (and batch.kubernetes.io/)
DUMP_RE = re.compile(r"^tradewise-\d{8}T\d{6}(\d{6})?Z\.dump$")


def require_enabled(environment: str, enabled: bool) -> None:
    """``BadInputError`` naming ``backups.enabled`` when an environment has no backup CronJobs."""
    if not enabled:
        raise BadInputError(
            f"backups are not enabled in {environment}: set environments.{environment}.backups."
            "enabled: true and deploy (or give --database-url for a PostgreSQL this machine "
            "reaches)"
        )


def manual_job(
    cronjob: Mapping[str, Any],
    now: datetime.datetime,
    *,
    purpose: str = "manual",
    env: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
    backoff_limit: int | None = None,
) -> dict[str, Any]:
    """A Job from ``cronjob``'s jobTemplate, as ``kubectl create job --from=cronjob/NAME`` makes.

    Named ``<cronjob>-<purpose>-<UTC time to the microsecond>`` (at most 63 characters, so the
    pods' ``job-name`` label fits), annotated
    ``cronjob.kubernetes.io/instantiate: manual`` and owned by the CronJob (so the CronJob's
    history limits and a delete of it cover it). ``env`` is set on (or overrides in) the first
    container's environment; ``command`` replaces its command; ``backoff_limit`` the Job's
    retries (a restore is not retried: 0).
    """
    meta = cronjob["metadata"]
    template = copy.deepcopy(cronjob["spec"]["jobTemplate"])
    tmeta = template.get("metadata") or {}
    name = f"{meta['name']}-{purpose}-{now.strftime('%Y%m%d-%H%M%S-%f')}"[:63].rstrip("-")
    spec = template["spec"]
    container = spec["template"]["spec"]["containers"][0]
    if env:
        entries = [e for e in container.get("env") or [] if e["name"] not in env]
        entries += [{"name": k, "value": v} for k, v in env.items()]
        container["env"] = entries
    if command is not None:
        container["command"] = list(command)
    if backoff_limit is not None:
        spec["backoffLimit"] = backoff_limit
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta.get("namespace"),
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": {**(tmeta.get("annotations") or {}), INSTANTIATE: "manual"},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "controller": True,
                }
            ],
        },
        "spec": spec,
    }


def job_state(job: Mapping[str, Any]) -> tuple[str, str]:
    """``(running|succeeded|failed, why)`` of a Job from its status.

    Succeeded: ``status.succeeded`` >= 1 or a true ``Complete`` condition; failed: a true
    ``Failed`` condition (its reason and message: BackoffLimitExceeded, DeadlineExceeded).
    """
    status = job.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    failed = conditions.get("Failed")
    if failed and str(failed.get("status")) == "True":
        why = ": ".join(x for x in (failed.get("reason"), failed.get("message")) if x)
        return "failed", why or "the Job failed"
    complete = conditions.get("Complete")
    if int(status.get("succeeded") or 0) >= 1 or (
        complete and str(complete.get("status")) == "True"
    ):
        return "succeeded", ""
    active = int(status.get("active") or 0)
    return "running", f"{active} pod(s) active" if active else "waiting for its pod"


def result_line(lines: Sequence[str]) -> dict[str, Any] | None:
    """The last line of a Job's log that is a JSON object (what the scripts print last)."""
    for line in reversed(lines):
        text = line.strip()
        if text.startswith("{"):
            try:
                doc = json.loads(text)
            except ValueError:
                continue
            if isinstance(doc, dict):
                return doc
    return None


def check_dump_name(name: str) -> str:
    """``name`` when it names an in-cluster dump (``tradewise-...Z.dump``); else bad input."""
    if not DUMP_RE.match(name):
        raise BadInputError(
            f"{name!r} is not an in-cluster backup name (tradewise-YYYYMMDDTHHMMSS...Z.dump): "
            "see `tradewise db backups --env ENV`"
        )
    return name
