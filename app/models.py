"""The database: one table of analyses, upserted by (symbol, as_of).

SQLAlchemy 2 with PostgreSQL (psycopg 3) in production and SQLite as the embedded default. The
upsert is the dialect's ``INSERT ... ON CONFLICT (symbol, as_of) DO UPDATE``, so running the same
analysis twice (a retried or redelivered task) leaves one row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    """Declarative base of the service's tables."""


class AnalysisRecord(Base):
    """A stored analysis: the JSON answer of one symbol for one market date."""

    __tablename__ = "stock_analyses"
    __table_args__ = (
        sa.UniqueConstraint("symbol", "as_of", name="uq_stock_analyses_symbol_as_of"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(sa.String(10), nullable=False, index=True)
    as_of: Mapped[date] = mapped_column(sa.Date, nullable=False)
    action: Mapped[str] = mapped_column(sa.String(8), nullable=False)
    confidence: Mapped[float] = mapped_column(sa.Float, nullable=False)
    data_source: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    payload: Mapped[str] = mapped_column(sa.Text, nullable=False)
    computed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    updated_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)


def make_engine(
    url: str,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    pool_timeout: float | None = None,
) -> Engine:
    """Create the engine: WAL and a busy timeout for SQLite, pre-ping and short timeouts else.

    The connect timeout is libpq's shortest (2 s): what a request waits is bounded by the API's
    database gate (``app.dbgate``), this bounds how long a call keeps trying in the background.
    The pool settings (``TRADEWISE_DB_POOL_*``) replace the defaults (PostgreSQL: 5 + 5
    overflow, 5 s; a SQLite file: SQLAlchemy's 5 + 10, 30 s) where given; the pool is
    instrumented for ``/metrics`` (``instrument_pool``).
    """
    pool_args = {
        k: v
        for k, v in (
            ("pool_size", pool_size),
            ("max_overflow", max_overflow),
            ("pool_timeout", pool_timeout),
        )
        if v is not None
    }
    if url.startswith("sqlite"):
        if ":memory:" in url or url.rstrip("/") in ("sqlite:", "sqlite+pysqlite:"):
            pool_args = {}  # one shared in-memory connection: no queue pool to size
        engine = sa.create_engine(
            url, connect_args={"timeout": 15, "check_same_thread": False}, **pool_args
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=15000")
            cursor.close()

        instrument_pool(engine)
        return engine
    engine = sa.create_engine(
        url,
        pool_pre_ping=True,
        **{"pool_size": 5, "max_overflow": 5, "pool_timeout": 5, **pool_args},
        connect_args={"connect_timeout": 2},
    )
    instrument_pool(engine)
    return engine


# -- the pool's metrics: connections in use, calls that waited for one, how long ---------------
def instrument_pool(engine: Engine) -> None:
    """Count the pool's connections in use (``checkout``/``checkin`` events) and publish its
    settings; a pool without a queue (one shared SQLite connection) publishes nothing."""
    from app import metrics

    pool = engine.pool
    if not isinstance(pool, sa.pool.QueuePool):
        return
    overflow = max(0, int(getattr(pool, "_max_overflow", 0)))
    metrics.DB_POOL_CAPACITY.set(pool.size() + overflow)
    metrics.DB_POOL_SETTING.labels("size").set(pool.size())
    metrics.DB_POOL_SETTING.labels("overflow").set(overflow)
    metrics.DB_POOL_SETTING.labels("timeout_seconds").set(float(getattr(pool, "_timeout", 0)))

    @event.listens_for(pool, "checkout")
    def _checkout(*_: Any) -> None:
        metrics.DB_POOL_CHECKOUTS.inc()
        metrics.DB_POOL_CHECKED_OUT.inc()

    @event.listens_for(pool, "checkin")
    def _checkin(*_: Any) -> None:
        metrics.DB_POOL_CHECKED_OUT.dec()


def _pool_full(engine: Engine) -> bool:
    """True when every connection the pool may open is taken: the next call waits."""
    pool = engine.pool
    if not isinstance(pool, sa.pool.QueuePool):
        return False
    overflow = max(0, int(getattr(pool, "_max_overflow", 0)))
    return bool(pool.checkedout() >= pool.size() + overflow)


@contextmanager
def pooled(engine: Engine, begin: bool = False) -> Iterator[sa.Connection]:
    """A connection from the pool (in a transaction with ``begin``), its wait measured.

    A call that found the pool full is counted and its wait observed; one that gave up after
    the pool timeout is counted as a timeout (and raises SQLAlchemy's ``TimeoutError``).
    """
    from app import metrics

    full = _pool_full(engine)
    started = time.perf_counter()
    try:
        conn = engine.connect()
    except sa.exc.TimeoutError:
        metrics.DB_POOL_TIMEOUTS.inc()
        raise
    finally:
        if full:
            metrics.DB_POOL_WAITS.inc()
            metrics.DB_POOL_WAIT.observe(time.perf_counter() - started)
    with conn:
        if begin:
            with conn.begin():
                yield conn
        else:
            yield conn


def create_schema(engine: Engine) -> None:
    """Create the tables if missing; tolerant of another process doing it at the same time."""
    try:
        Base.metadata.create_all(engine)
    except (sa.exc.IntegrityError, sa.exc.ProgrammingError):  # concurrent CREATE TABLE
        log.info("schema created concurrently by another process")
        Base.metadata.create_all(engine)


def upsert_analysis(engine: Engine, document: dict[str, Any], payload: bytes) -> None:
    """Insert or update the analysis of (symbol, as_of); idempotent."""
    table: sa.Table = AnalysisRecord.__table__  # type: ignore[assignment]
    values = {
        "symbol": document["symbol"],
        "as_of": date.fromisoformat(document["as_of"]),
        "action": document["recommendation"]["action"],
        "confidence": float(document["recommendation"]["confidence"]),
        "data_source": document["data_source"],
        "payload": payload.decode("utf-8"),
        "computed_at": datetime.now(tz=UTC),
        "updated_count": 0,
    }
    dialect = engine.dialect.name
    insert: Any
    if dialect == "postgresql":
        insert = postgresql.insert(table)
    elif dialect == "sqlite":
        insert = sqlite.insert(table)
    else:  # pragma: no cover - only PostgreSQL and SQLite are supported
        raise RuntimeError(f"unsupported database dialect {dialect}")
    stmt = insert.values(**values).on_conflict_do_update(
        index_elements=["symbol", "as_of"],
        set_={
            "action": insert.excluded.action,
            "confidence": insert.excluded.confidence,
            "data_source": insert.excluded.data_source,
            "payload": insert.excluded.payload,
            "computed_at": insert.excluded.computed_at,
            "updated_count": table.c.updated_count + 1,
        },
    )
    with pooled(engine, begin=True) as conn:
        conn.execute(stmt)
