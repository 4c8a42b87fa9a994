"""Data the real service stores, for tests that need a filled database (the backup tests)."""

from __future__ import annotations

from app import create_app

SYMBOLS = ("AAPL", "MSFT", "NVDA", "IBM", "ORCL")


def store_analyses(database_url: str, symbols: tuple[str, ...] = SYMBOLS) -> None:
    """Let the real service store analyses in the database (one row per symbol)."""
    flask_app = create_app(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": "none",
            "CELERY_BROKER_URL": "memory://",
            "CELERY_RESULT_BACKEND": "none",
        }
    )
    try:
        client = flask_app.test_client()
        for symbol in symbols:
            assert client.get(f"/api/stock-analysis?symbol={symbol}").status_code == 200
    finally:
        flask_app.extensions["tradewise"].close()  # its pools: the database may be dropped
