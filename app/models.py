"""The database: one table of analyses, upserted by (symbol, as_of).

SQLAlchemy 2 with PostgreSQL (psycopg 3) in production and SQLite as the embedded default. The
upsert is the dialect's ``INSERT ... ON CONFLICT (symbol, as_of) DO UPDATE``, so running the same
analysis twice (a retried or redelivered task) leaves one row.
"""

from __future__ import annotations

import logging
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


def make_engine(url: str) -> Engine:
    """Create the engine: WAL and a busy timeout for SQLite, pre-ping and short timeouts else.

    The connect timeout is libpq's shortest (2 s): what a request waits is bounded by the API's
    database gate (``app.dbgate``), this bounds how long a call keeps trying in the background.
    """
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 15, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=15000")
            cursor.close()

        return engine
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=5,
        connect_args={"connect_timeout": 2},
    )


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
    with engine.begin() as conn:
        conn.execute(stmt)
