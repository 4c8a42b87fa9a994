"""Session-wide fixtures: private Redis and PostgreSQL servers on loopback.

Both servers are started from the installed binaries on free 127.0.0.1 ports, in temp dirs, with
no persistence, and removed at the end of the session. A missing binary skips the tests that need
it, except under ``CI=true`` where it fails them (see ``tests.helpers.require``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, port_open, require, wait_until

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PG_BIN = Path(os.environ.get("TRADEWISE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1; ``stop()``/``start()`` keep the same port."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{self.host}:{self.port}/0"

    def url_for(self, db: int) -> str:
        """The URL of logical database ``db``."""
        return f"redis://{self.host}:{self.port}/{db}"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start (or restart) the server on the same port and wait until it accepts connections."""
        if self.running:
            return
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                self.host,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--databases",
                "32",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        log.close()
        wait_until(
            lambda: port_open(self.host, self.port) or not self.running,
            timeout=15,
            what=f"redis-server on port {self.port}",
        )
        if not self.running:
            raise RuntimeError(
                f"redis-server exited early: {(self.workdir / 'redis.log').read_text()[-2000:]}"
            )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait until the port is closed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        wait_until(lambda: not port_open(self.host, self.port), timeout=10, what="redis to stop")


class PostgresServer:
    """A private PostgreSQL cluster on 127.0.0.1 (trust auth, user ``postgres``)."""

    def __init__(self, bindir: Path, port: int, datadir: Path) -> None:
        self.bindir = bindir
        self.host = "127.0.0.1"
        self.port = port
        self.datadir = datadir
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database (psycopg 3 driver)."""
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        """SQLAlchemy URL of database ``dbname`` on this server."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{dbname}"

    def dsn_for(self, dbname: str) -> str:
        """libpq connection string of database ``dbname`` (for psycopg directly)."""
        return f"host={self.host} port={self.port} user=postgres dbname={dbname}"

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")

    def init(self) -> None:
        """Create the cluster directory (owned by ``postgres`` when running as root)."""
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.datadir, "postgres", "postgres")
            shutil.chown(self.datadir.parent, "postgres", "postgres")
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def start(self) -> None:
        """Start the server and wait for it (pg_ctl -w)."""
        opts = (
            f"-p {self.port} -k {self.datadir} -c listen_addresses={self.host} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-o",
            opts,
            "-l",
            str(self.datadir / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting its sessions."""
        import psycopg

        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server: ``.url``, ``.port``, ``.host``, ``stop()``/``start()``."""
    require(os.access(REDIS_SERVER, os.X_OK), "redis-server (apt-get install redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="tw-redis-"))
    server = RedisServer(REDIS_SERVER, free_port(), workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A freshly emptied Redis (FLUSHALL); restarts the session server if a test stopped it."""
    import redis

    if not redis_server.running:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL 15 for the session; ``.url`` (postgresql+psycopg://...), ``.port``."""
    require(
        (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists(),
        f"PostgreSQL server binaries in {PG_BIN} (apt-get install postgresql)",
    )
    base = Path(tempfile.mkdtemp(prefix="tw-pg-"))
    server = PostgresServer(PG_BIN, free_port(), base / "data")
    started = False
    try:
        server.init()
        server.start()
        started = True
        yield server
    finally:
        if started:
            try:
                server.stop()
            except RuntimeError:
                pass
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)
