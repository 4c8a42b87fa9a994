"""Celery tasks: analyse a symbol and store it; fan out the popular symbols (pre-computation).

Tasks are acknowledged late and rejected (re-queued) when their worker dies, so a worker killed
mid-task loses nothing: another worker runs the message again (on Redis; kombu's SQLAlchemy broker,
``sqla+sqlite://``, has no visibility timeout: a task of a SIGKILLed worker stays taken, while a
TERMed worker puts its unacknowledged tasks back). Running twice is harmless: the
database row is upserted by (symbol, market date) and the cache key is overwritten. Transient
errors (market data API down, database or Redis unreachable, the SQLite broker locked) are retried
with exponential backoff.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
import sqlalchemy as sa
from celery import shared_task
from flask import current_app

from app.providers import ProviderUnavailableError
from app.symbols import normalize_symbol

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (
    ProviderUnavailableError,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
)


@shared_task(
    name="tradewise.analyse_symbol",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=6,
)
def analyse_symbol(self: Any, symbol: str) -> dict[str, Any]:
    """Analyse ``symbol``, upsert it in the database and refresh its cache entry."""
    from app.service import AnalysisService

    service: AnalysisService = current_app.extensions["tradewise"]
    symbol = normalize_symbol(symbol)
    delay = service.settings.task_delay_ms
    if delay:
        time.sleep(delay / 1000.0)
    result = service.compute_and_store(symbol, strict=True)
    log.info(
        "analysed %s as of %s: %s",
        symbol,
        result.document["as_of"],
        result.document["recommendation"]["action"],
    )
    return {
        "symbol": symbol,
        "as_of": result.document["as_of"],
        "action": result.document["recommendation"]["action"],
        "confidence": result.document["recommendation"]["confidence"],
        "cached": result.cached,
        "attempt": self.request.retries + 1,
    }


@shared_task(
    name="tradewise.precompute_popular",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(redis.ConnectionError, redis.TimeoutError, sa.exc.OperationalError),
    retry_backoff=True,
    max_retries=5,
)
def precompute_popular() -> list[str]:
    """Queue one ``analyse_symbol`` per popular symbol (the cache-warming run)."""
    from app.service import AnalysisService

    service: AnalysisService = current_app.extensions["tradewise"]
    symbols = list(service.settings.popular_symbols)
    for symbol in symbols:
        analyse_symbol.apply_async((symbol,), expires=30 * 60)
    log.info("queued the analysis of %d popular symbols", len(symbols))
    return symbols
