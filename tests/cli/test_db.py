"""``tradewise db backup|backups|verify|restore``: the local SQLite file, and a real
``pg_dump``/``pg_restore`` round trip on the test session's PostgreSQL."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.app_data import SYMBOLS, store_analyses
from tests.helpers import free_port, require, require_binary
from tradewise_ops.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--config", str(config), *args])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text())
    raw["environments"]["local"]["local"] = {
        "api_port": free_port(),
        "redis_port": free_port(),
        "state_dir": str(tmp_path / "state"),
    }
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def sqlite_rows(path: Path) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM stock_analyses ORDER BY symbol").fetchall()
    finally:
        conn.close()


def test_local_sqlite_backup_verify_restore(config: Path, tmp_path: Path) -> None:
    db = tmp_path / "state" / "tradewise.db"
    db.parent.mkdir(parents=True)
    store_analyses(f"sqlite:///{db}")
    before = sqlite_rows(db)
    assert len(before) == len(SYMBOLS)

    made = run(config, "db", "backup", "--env", "local", "-o", "json")
    assert made.exit_code == 0, made.stderr
    record = json.loads(made.stdout)
    assert record["kind"] == "sqlite" and record["fingerprint"]["tables"]["stock_analyses"] == 5
    backup = Path(record["path"])
    assert backup.parent == tmp_path / "state" / "backups" and backup.is_file()
    assert (backup.parent / f"{backup.name}.json").is_file()

    listed = run(config, "db", "backups", "--env", "local")
    assert listed.exit_code == 0 and backup.name in listed.stdout

    ok = run(config, "db", "verify", "--env", "local", "-o", "json")
    assert ok.exit_code == 0, ok.stdout
    assert {s["check"] for s in json.loads(ok.stdout)["steps"]} == {
        "size",
        "sha256",
        "integrity",
        "rows",
    }

    # the database loses rows and gets a wrong one; the restore brings back the backup's
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM stock_analyses WHERE symbol IN ('AAPL', 'MSFT')")
    conn.execute("UPDATE stock_analyses SET symbol = 'XXX' WHERE symbol = 'IBM'")
    conn.commit()
    conn.close()
    refused = run(config, "db", "restore", backup.name, "--env", "local")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    restored = run(config, "db", "restore", backup.name, "--env", "local", "--yes", "-o", "json")
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    steps = json.loads(restored.stdout)["steps"]
    assert steps[-1]["check"] == "restored" and steps[-1]["ok"]
    assert sqlite_rows(db) == before

    # a truncated copy fails verification (and is not restored)
    data = backup.read_bytes()
    backup.write_bytes(data[: len(data) // 2])
    bad = run(config, "db", "verify", backup.name, "--env", "local", "-o", "json")
    assert bad.exit_code == 1
    failed = {s["check"] for s in json.loads(bad.stdout)["steps"] if not s["ok"]}
    assert {"size", "sha256", "integrity"} <= failed
    again = run(config, "db", "restore", backup.name, "--env", "local", "--yes")
    assert again.exit_code == 1 and "not restored" in again.stderr
    assert sqlite_rows(db) == before


def test_retention_keeps_the_newest(config: Path, tmp_path: Path) -> None:
    db = tmp_path / "state" / "tradewise.db"
    db.parent.mkdir(parents=True)
    store_analyses(f"sqlite:///{db}", ("AAPL",))
    names = []
    for _ in range(4):
        made = run(config, "db", "backup", "--env", "local", "--keep", "2", "-o", "json")
        assert made.exit_code == 0, made.stderr
        names.append(json.loads(made.stdout)["name"])
    left = json.loads(run(config, "db", "backups", "--env", "local", "-o", "json").stdout)
    assert [r["name"] for r in left] == names[-2:]
    assert sorted(p.name for p in (tmp_path / "state" / "backups").iterdir()) == sorted(
        [*names[-2:], *(f"{n}.json" for n in names[-2:])]
    )


def test_nothing_to_back_up_and_bad_names(config: Path) -> None:
    empty = run(config, "db", "backup", "--env", "local")
    assert empty.exit_code == 1 and "stored nothing yet" in empty.stderr
    assert run(config, "db", "verify", "--env", "local").exit_code == 1
    sneaky = run(config, "db", "restore", "../../etc/passwd", "--env", "local", "--yes")
    assert sneaky.exit_code == 2 and "is not a backup name" in sneaky.stderr
    cluster = run(config, "db", "backup", "--env", "staging")  # no backup CronJobs there
    assert cluster.exit_code == 2 and "--database-url" in cluster.stderr
    assert "environments.staging.backups.enabled" in cluster.stderr


# -- PostgreSQL: pg_dump -Fc, pg_restore, on the session's server --------------------------------
def pg_state(url: str) -> tuple[int, str]:
    """Row count and an independent checksum of the service's table."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        count = conn.execute("SELECT count(*) FROM stock_analyses").fetchone()[0]
        digest = conn.execute(
            "SELECT md5(string_agg(symbol || payload::text, '|' ORDER BY symbol)) "
            "FROM stock_analyses"
        ).fetchone()[0]
    return int(count), str(digest)


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    store_analyses(postgres_url)
    yield postgres_url


def test_postgres_round_trip_with_counts_and_checksums(
    config: Path, tmp_path: Path, pg_url: str
) -> None:
    import psycopg

    before = pg_state(pg_url)
    assert before[0] == len(SYMBOLS)
    backups = tmp_path / "pg-backups"
    args = ("--database-url", pg_url, "--dir", str(backups), "--env", "staging")
    made = run(config, "db", "backup", *args, "-o", "json")
    assert made.exit_code == 0, made.stderr
    record = json.loads(made.stdout)
    assert record["kind"] == "postgres" and record["name"].endswith(".dump")
    assert record["fingerprint"]["tables"]["stock_analyses"] == len(SYMBOLS)
    dump = Path(record["path"])
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format

    verified = run(config, "db", "verify", *args, "-o", "json")
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    steps = {s["check"]: s for s in json.loads(verified.stdout)["steps"]}
    assert steps["pg_restore"]["ok"] and "scratch database" in steps["pg_restore"]["detail"]
    assert steps["rows"]["ok"] and "checksums match" in steps["rows"]["detail"]
    with psycopg.connect(pg_url.replace("+psycopg", "").rsplit("/", 1)[0] + "/postgres") as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]
    assert not [n for n in names if "_verify_" in n]  # the scratch database is gone

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM stock_analyses WHERE symbol = 'AAPL'")
        conn.execute("UPDATE stock_analyses SET symbol = 'XXX' WHERE symbol = 'IBM'")
    assert pg_state(pg_url) != before
    restored = run(config, "db", "restore", dump.name, *args, "--yes", "-o", "json")
    assert restored.exit_code == 0, restored.stdout + restored.stderr
    assert pg_state(pg_url) == before  # row count and checksum as at the backup

    # a truncated dump: pg_restore itself fails on it, as do its size and SHA-256
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) - 200])
    bad = run(config, "db", "verify", dump.name, *args, "-o", "json")
    assert bad.exit_code == 1
    failed = {s["check"]: s for s in json.loads(bad.stdout)["steps"] if not s["ok"]}
    assert {"size", "sha256", "pg_restore"} <= set(failed)
    assert "pg_restore failed" in failed["pg_restore"]["detail"]


def test_postgres_unreachable_exits_3(config: Path, tmp_path: Path) -> None:
    url = f"postgresql://tw:secret@127.0.0.1:{free_port()}/tw"
    result = run(
        config, "db", "backup", "--database-url", url, "--dir", str(tmp_path), "--env", "staging"
    )
    assert result.exit_code == 3
    assert "cannot reach PostgreSQL" in result.stderr and "secret" not in result.stderr


# -- compose: the stack's own PostgreSQL, found from compose/docker-compose.yml ------------------
def run_env(config: Path, env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, ["--config", str(config), *args], env=env)


@pytest.fixture
def compose_config(tmp_path: Path) -> Path:
    """The default config, its local and compose environments sharing one state dir (as they
    do by default)."""
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text())
    state_dir = str(tmp_path / "state")
    raw["environments"]["local"]["local"] = {"state_dir": state_dir}
    raw["environments"]["compose"]["local"] = {"state_dir": state_dir}
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def compose_pg(postgres_server: Any, pg_url: str) -> dict[str, str]:
    """The variables the compose file reads, pointing the stack's PostgreSQL at the session's
    server (trust auth: the password is not checked, but must never be shown)."""
    return {
        "TW_POSTGRES_PORT": str(postgres_server.port),
        "TW_POSTGRES_USER": "postgres",
        "TW_POSTGRES_DB": pg_url.rsplit("/", 1)[1],
        "TW_POSTGRES_PASSWORD": "s3cret-pw",
    }


def test_compose_backs_up_the_database_its_services_use(
    compose_config: Path, compose_pg: dict[str, str], pg_url: str, tmp_path: Path
) -> None:
    import psycopg

    # a local SQLite backup in the shared state dir: not the compose environment's
    sqlite_db = tmp_path / "state" / "tradewise.db"
    sqlite_db.parent.mkdir(parents=True)
    store_analyses(f"sqlite:///{sqlite_db}", ("AAPL",))
    local = run(compose_config, "db", "backup", "--env", "local", "-o", "json")
    assert local.exit_code == 0, local.stderr

    before = pg_state(pg_url)
    made = run_env(compose_config, compose_pg, "db", "backup", "--env", "compose", "-o", "json")
    assert made.exit_code == 0, made.stderr
    record = json.loads(made.stdout)
    assert record["kind"] == "postgres" and record["name"].endswith(".dump")
    assert Path(record["path"]).parent == tmp_path / "state" / "backups"
    port, db = compose_pg["TW_POSTGRES_PORT"], compose_pg["TW_POSTGRES_DB"]
    assert record["source"] == f"postgresql+psycopg://postgres:***@127.0.0.1:{port}/{db}"
    assert record["fingerprint"]["tables"]["stock_analyses"] == len(SYMBOLS)
    assert "s3cret-pw" not in made.stdout + made.stderr

    listed = run_env(compose_config, compose_pg, "db", "backups", "--env", "compose", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    assert [r["name"] for r in json.loads(listed.stdout)] == [record["name"]]  # no .sqlite3
    mine = json.loads(run(compose_config, "db", "backups", "--env", "local", "-o", "json").stdout)
    assert [r["kind"] for r in mine] == ["sqlite"]

    verified = run_env(compose_config, compose_pg, "db", "verify", "--env", "compose", "-o", "json")
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    steps = {s["check"]: s for s in json.loads(verified.stdout)["steps"]}
    assert "pg_restore on this machine" in steps["pg_restore"]["detail"]
    assert steps["rows"]["ok"]

    # restore needs the stack's containers (to stop api/worker/precompute): no Docker engine
    # here, so exit 3 naming it, and the database is left as it is
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM stock_analyses WHERE symbol = 'AAPL'")
    changed = pg_state(pg_url)
    assert changed != before
    no_engine = {**compose_pg, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    refused = run_env(
        compose_config, no_engine, "db", "restore", record["name"], "--env", "compose", "--yes"
    )
    assert refused.exit_code == 3, refused.stderr
    assert "DOCKER_HOST" in refused.stderr
    assert pg_state(pg_url) == changed


def test_compose_bad_input_and_a_stack_that_is_down(
    compose_config: Path, compose_pg: dict[str, str]
) -> None:
    url = run_env(
        compose_config,
        compose_pg,
        "db",
        "backup",
        "--env",
        "compose",
        "--database-url",
        "postgresql://u@127.0.0.1/x",
        "--pg-tools",
        "compose",
    )
    assert url.exit_code == 2 and "--pg-tools compose" in url.stderr
    bogus = run_env(
        compose_config, compose_pg, "db", "verify", "--env", "compose", "--pg-tools", "docker"
    )
    assert bogus.exit_code == 2 and "use one of auto, host, compose" in bogus.stderr
    down = {**compose_pg, "TW_POSTGRES_PORT": str(free_port())}
    result = run_env(compose_config, down, "db", "backup", "--env", "compose")
    assert result.exit_code == 3
    assert "cannot reach PostgreSQL" in result.stderr
    assert "tradewise local up --env compose" in result.stderr
    assert "s3cret-pw" not in result.stderr


# -- a backups directory too small for the database: refused before anything is written ---------
SMALL = 256 * 1024  # bytes of the tmpfs


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem of 256 KiB (a tmpfs, mounted for the test: needs root)."""
    require(os.geteuid() == 0, "root, to mount a small tmpfs")
    mount = require_binary("mount")
    point = tmp_path / "small"
    point.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={SMALL},mode=0755", "tmpfs", str(point)],
        capture_output=True,
        text=True,
    )
    require(done.returncode == 0, f"a tmpfs mount ({done.stderr.strip()})")
    try:
        yield point
    finally:
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_sqlite_backup_refused_when_the_directory_has_no_room(
    config: Path, tmp_path: Path, small_fs: Path
) -> None:
    db = tmp_path / "state" / "tradewise.db"
    db.parent.mkdir(parents=True)
    store_analyses(f"sqlite:///{db}")
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE padding (b BLOB)")
    conn.execute("INSERT INTO padding VALUES (randomblob(150000))")  # the file: about 160 KiB
    conn.commit()
    conn.close()
    size = db.stat().st_size
    assert SMALL / 2 < size < SMALL  # one copy fits, a second does not
    args = ("db", "backup", "--env", "local", "--dir", str(small_fs))

    first = run(config, *args, "-o", "json")  # no backup yet: the file's size is the estimate
    assert first.exit_code == 0, first.stderr
    kept = sorted(p.name for p in small_fs.iterdir())
    assert len(kept) == 2  # the copy and its record

    second = run(config, *args)
    assert second.exit_code == 2, second.stderr
    message = " ".join(second.stderr.split())
    assert f"no room for a backup of {db} in {small_fs}:" in message
    assert "KiB free, about" in message and "KiB needed (the last backup," in message
    assert "plus 10% for growth" in message and "--force" in message
    assert sorted(p.name for p in small_fs.iterdir()) == kept  # nothing written

    # --force tries anyway: the filesystem fills, the backup fails cleanly (no partial file)
    forced = run(config, *args, "--force")
    assert forced.exit_code == 1, forced.stderr
    assert "the SQLite backup" in forced.stderr and "full" in forced.stderr
    assert sorted(p.name for p in small_fs.iterdir()) == kept


def test_postgres_backup_refused_by_the_database_size(
    config: Path, pg_url: str, small_fs: Path
) -> None:
    target = small_fs / "backups"  # does not exist yet, and must not afterwards
    result = run(
        config, "db", "backup", "--database-url", pg_url, "--dir", str(target), "--env", "staging"
    )
    assert result.exit_code == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert f"in {target}: 256.0 KiB free" in message
    assert "MiB needed (the database takes" in message  # pg_database_size, about 7 MiB
    assert not target.exists()
