"""The shared server fixtures really start servers that answer and can be restarted."""

from __future__ import annotations

import psycopg
import redis
import sqlalchemy as sa

from tests.helpers import free_port, port_open


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    assert not port_open("127.0.0.1", port)


def test_redis_server_answers_and_restarts(redis_server, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("k", "v")
    assert client.get("k") == b"v"
    redis_server.stop()
    assert not port_open("127.0.0.1", redis_server.port)
    redis_server.start()
    assert redis.Redis.from_url(redis_url).ping() is True
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"


def test_postgres_fresh_database(postgres_server, postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x int)"))
        conn.execute(sa.text("INSERT INTO t VALUES (42)"))
        assert conn.execute(sa.text("SELECT x FROM t")).scalar_one() == 42
        version = conn.execute(sa.text("SHOW server_version")).scalar_one()
    engine.dispose()
    assert version.startswith("15")
    with psycopg.connect(postgres_server.dsn_for("postgres")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
