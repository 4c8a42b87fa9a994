"""The analysis service: cache, market data, indicators and storage tied together.

Used by the API (``cached`` then ``compute_and_store`` on a miss) and by the Celery tasks
(``compute_and_store``, which must not lose work: a database failure there is raised so the task
retries, while the API serves the answer anyway). The API's database calls go through a
:class:`~app.dbgate.DatabaseGate`: a database that is down or hung costs a request at most
``TRADEWISE_DATABASE_TIMEOUT_SECONDS``, and no time at all for ``TRADEWISE_DATABASE_RETRY_SECONDS``
after that (the answer is served, not stored).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app import metrics
from app.analysis import analyse
from app.cache import AnalysisCache, DisabledCache
from app.dbgate import DatabaseGate, DatabaseUnavailableError
from app.models import create_schema, pooled, upsert_analysis
from app.providers import HttpProvider, MarketDataProvider, SyntheticProvider
from app.settings import Settings

log = logging.getLogger(__name__)
HISTORY_DAYS = 200


@dataclass
class Computed:
    """An analysis document and its serialized bytes (what is cached and returned)."""

    document: dict[str, Any]
    payload: bytes
    stored: bool
    cached: bool


def make_provider(settings: Settings) -> MarketDataProvider:
    """The configured market-data provider."""
    if settings.market_data_provider == "http":
        assert settings.market_data_url is not None
        return HttpProvider(
            settings.market_data_url, settings.market_data_api_key, settings.market_data_timeout
        )
    return SyntheticProvider(extra_symbols=settings.extra_symbols)


class AnalysisService:
    """Everything behind ``/api/stock-analysis`` and the analysis tasks."""

    def __init__(
        self, settings: Settings, engine: Engine, cache: AnalysisCache | DisabledCache
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.cache = cache
        self.provider = make_provider(settings)
        self._schema_ready = False
        # with gunicorn threads, as many healthy calls as threads may run at once
        self.db_gate = DatabaseGate(
            settings.database_timeout_seconds,
            settings.database_retry_seconds,
            max_pending=max(2, settings.web_threads),
        )
        self.broker: redis.Redis | None = None
        if settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
            self.broker = redis.Redis.from_url(
                settings.broker_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )
        self.broker_file: str | None = None
        self._broker_db: Engine | None = None
        if settings.broker_url.startswith("sqla+sqlite:///"):
            self.broker_file = settings.broker_url[len("sqla+sqlite:///") :]

    def ensure_schema(self) -> bool:
        """Create the tables once; False (and logged) when the database is unreachable."""
        if self._schema_ready:
            return True
        try:
            create_schema(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("database not ready, schema not created yet: %s", exc)
            return False
        self._schema_ready = True
        return True

    def prepare_schema(self, wait_seconds: float = 5.0) -> None:
        """``ensure_schema`` at start-up, waiting for it at most ``wait_seconds``.

        A hung database must not hold the process's start: the creation goes on in the
        background, and the first write tries again if it has not succeeded.
        """
        try:
            self.db_gate.check(self.ensure_schema, "creating the schema", timeout=wait_seconds)
        except DatabaseUnavailableError as exc:
            log.warning("%s", exc)

    def cached(self, symbol: str) -> bytes | None:
        """The cached JSON of ``symbol`` (counted as a hit or a miss)."""
        payload = self.cache.get(symbol)
        metrics.count_cache(payload is not None)
        return payload

    def compute(self, symbol: str) -> tuple[dict[str, Any], bytes]:
        """Fetch prices and analyse; raises provider errors (unknown symbol, unavailable)."""
        started = time.perf_counter()
        series = self.provider.daily_closes(symbol, HISTORY_DAYS)
        document: dict[str, Any] = {
            "symbol": symbol,
            "as_of": series.as_of.isoformat(),
            "data_source": series.source,
            "currency": "USD",
            "history_days": len(series.closes),
        }
        document.update(analyse(series.closes))
        document["generated_at"] = datetime.now(tz=UTC).isoformat(timespec="seconds")
        payload = json.dumps(document, separators=(",", ":")).encode("utf-8")
        metrics.ANALYSIS_COMPUTE.observe(time.perf_counter() - started)
        return document, payload

    def store(self, document: dict[str, Any], payload: bytes) -> None:
        """Upsert into the database (raises SQLAlchemy errors)."""
        if not self.ensure_schema():
            raise sa.exc.OperationalError("create schema", {}, Exception("database unreachable"))
        upsert_analysis(self.engine, document, payload)

    def compute_and_store(self, symbol: str, *, strict: bool) -> Computed:
        """Analyse ``symbol``, store it in the database and the cache.

        With ``strict`` (tasks) a database error propagates so the task is retried; without it
        (the API) the write goes through the database gate, and an error, a timeout or an open
        circuit is counted (and logged, except a skip while the circuit is open) and the analysis
        is still returned.
        """
        document, payload = self.compute(symbol)
        stored = True
        try:
            if strict:
                self.store(document, payload)
            else:
                self.db_gate.call(
                    lambda: self.store(document, payload), f"storing the analysis of {symbol}"
                )
        except sa.exc.SQLAlchemyError as exc:
            metrics.DEPENDENCY_ERRORS.labels("database").inc()
            if strict:
                raise
            log.warning("could not store the analysis of %s: %s", symbol, exc)
            stored = False
        except DatabaseUnavailableError as exc:
            metrics.DEPENDENCY_ERRORS.labels("database").inc()
            log.debug("%s", exc)
            stored = False
        cached = self.cache.set(symbol, payload)
        if not cached and self.cache.enabled:
            metrics.DEPENDENCY_ERRORS.labels("redis").inc()
        return Computed(document, payload, stored, cached)

    def check_database(self) -> tuple[bool, str | None]:
        """``SELECT 1`` against the database, within the gate's deadline: (ok, error message)."""
        try:
            self.db_gate.check(self._select_one, "the database check")
        except DatabaseUnavailableError as exc:
            return False, str(exc)
        except sa.exc.SQLAlchemyError as exc:
            return False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        return True, None

    def _select_one(self) -> None:
        with pooled(self.engine) as conn:
            conn.execute(sa.text("SELECT 1"))

    def queue_length(self, queue: str = "celery") -> int | None:
        """Messages waiting in the Celery queue (None when unknown or the broker is down).

        On a Redis broker: the list lengths (with the priority sub-queues). On the SQLite broker
        (kombu's SQLAlchemy transport): its visible messages, read from the broker's file
        without creating it (None until a worker or the scheduler has created it).
        """
        if self.broker is not None:
            names = [queue] + [f"{queue}\x06\x16{p}" for p in (3, 6, 9)]
            try:
                pipe = self.broker.pipeline(transaction=False)
                for name in names:
                    pipe.llen(name)
                return int(sum(pipe.execute()))
            except redis.RedisError:
                return None
        if self.broker_file is not None:
            return self._sqlite_queue_length(self.broker_file, queue)
        return None

    def _sqlite_queue_length(self, path: str, queue: str) -> int | None:
        if not os.path.isfile(path):
            return None
        if self._broker_db is None:
            self._broker_db = sa.create_engine(
                f"sqlite:///file:{quote(path)}?mode=ro&uri=true",
                connect_args={"timeout": 0.5},
                poolclass=sa.pool.NullPool,
            )
        query = sa.text(
            "SELECT COUNT(*) FROM kombu_message AS m JOIN kombu_queue AS q "
            "ON m.queue_id = q.id WHERE q.name = :queue AND m.visible"
        )
        try:
            with self._broker_db.connect() as conn:
                tables = sa.inspect(conn).get_table_names()
                if not {"kombu_message", "kombu_queue"} <= set(tables):
                    return 0  # the broker file exists, no queue was declared yet
                return int(conn.execute(query, {"queue": queue}).scalar_one())
        except sa.exc.SQLAlchemyError as exc:
            log.warning("cannot read the queue length from %s: %s", path, exc)
            return None

    def probe(self) -> metrics.Probe:
        """Dependency state for the scrape-time gauges."""
        redis_ok, _ = self.cache.ping() if self.cache.enabled else (False, None)
        db_ok, _ = self.check_database()
        return metrics.Probe(redis_ok, db_ok, self.queue_length(), self.cache.enabled)

    def close(self) -> None:
        """Release pools and clients."""
        self.provider.close()
        self.cache.close()
        if self.broker is not None:
            self.broker.close()
        if self._broker_db is not None:
            self._broker_db.dispose()
        self.engine.dispose()
