"""Symbols, settings from the environment, and bad configuration failing at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from app.settings import ConfigError, Settings
from app.symbols import SYMBOL_HELP, UNIVERSE, InvalidSymbolError, normalize_symbol

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("AAPL", "AAPL"), ("aapl", "AAPL"), (" msft ", "MSFT"), ("BRK.B", "BRK.B"),
     ("BF-B", "BF-B"), ("A", "A"), ("ABCDEFGHIJ", "ABCDEFGHIJ"), ("x1", "X1"),
     ("AAPL\n", "AAPL")],
)  # fmt: skip
def test_valid_symbols_are_normalised(raw: str, expected: str) -> None:
    assert normalize_symbol(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "1ABC", ".A", "ABCDEFGHIJK", "AA PL", "AAPL;", "A$", "ÄPPL", "-X", "A\nB", None],
)
def test_malformed_symbols_say_what_a_symbol_looks_like(raw: str | None) -> None:
    with pytest.raises(InvalidSymbolError) as info:
        normalize_symbol(raw)
    assert SYMBOL_HELP in str(info.value)


def test_universe_is_about_a_hundred_real_tickers() -> None:
    assert 90 <= len(UNIVERSE) <= 120
    assert {"AAPL", "MSFT", "BRK.B", "SPY"} <= UNIVERSE
    assert all(normalize_symbol(s) == s for s in UNIVERSE)


def test_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env({}, instance_path=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'tradewise.db'}"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.broker_url == settings.redis_url
    assert settings.market_data_provider == "synthetic"
    assert settings.cache_ttl_seconds == 300
    assert settings.cache_local_seconds == 1.0
    assert settings.inject_latency_ms == 0
    assert (settings.database_timeout_seconds, settings.database_retry_seconds) == (0.5, 2.0)
    assert "AAPL" in settings.popular_symbols


def test_postgres_urls_get_the_psycopg_driver() -> None:
    s = Settings.from_env({"DATABASE_URL": "postgresql://u:p@db:5432/tw"})
    assert s.database_url == "postgresql+psycopg://u:p@db:5432/tw"
    s = Settings.from_env({"DATABASE_URL": "postgres://u@db/tw"})
    assert s.database_url == "postgresql+psycopg://u@db/tw"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("DATABASE_URL", "mysql://x/y", "sqlite://"),
        ("DATABASE_URL", "not a url", "scheme"),
        ("REDIS_URL", "http://127.0.0.1:6379", "redis://"),
        ("REDIS_URL", "redis://127.0.0.1:6379/abc", "database number"),
        ("CELERY_BROKER_URL", "amqp://guest@x//", "redis://"),
        ("MARKET_DATA_PROVIDER", "yahoo", "synthetic, http"),
        ("CACHE_TTL_SECONDS", "ten", "integer"),
        ("CACHE_TTL_SECONDS", "0", "between 1"),
        ("CACHE_LOCAL_SECONDS", "-1", "between 0"),
        ("CACHE_LOCAL_SECONDS", "soon", "number"),
        ("TRADEWISE_INJECT_LATENCY_MS", "-5", "between 0"),
        ("MARKET_DATA_TIMEOUT", "fast", "number"),
        ("TRADEWISE_POPULAR_SYMBOLS", "AAPL,1BAD", "symbol"),
        ("MARKET_DATA_URL", "ftp://example", "http://"),
        ("TRADEWISE_DATABASE_TIMEOUT_SECONDS", "0", "between 0.05"),
        ("TRADEWISE_DATABASE_RETRY_SECONDS", "forever", "number"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({variable: value})
    assert info.value.variable == variable
    assert variable in str(info.value)
    assert fragment in str(info.value)


def test_http_provider_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="MARKET_DATA_URL"):
        Settings.from_env({"MARKET_DATA_PROVIDER": "http"})


def test_create_app_fails_on_a_bad_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CACHE_TTL_SECONDS"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/t.db", "CACHE_TTL_SECONDS": "soon"})


def _run(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADEWISE_", "BIND"))}
    full_env.update(env)
    return subprocess.run(
        [str(BIN / script), *args], env=full_env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("script", "variable", "value"),
    [
        ("tradewise-api", "DATABASE_URL", "oracle://nope"),
        ("tradewise-api", "WEB_CONCURRENCY", "many"),
        ("tradewise-api", "BIND", "localhost"),
        ("tradewise-worker", "REDIS_URL", "memcached://x"),
        ("tradewise-precompute", "TRADEWISE_REFRESH_MINUTES", "90"),
    ],
)
def test_console_scripts_fail_at_start_up_naming_the_variable(
    script: str, variable: str, value: str, tmp_path: Path
) -> None:
    result = _run(script, {variable: value, "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
                  if variable != "DATABASE_URL" else {variable: value})  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"invalid {variable}=" in result.stderr
    assert "Traceback" not in result.stderr


def test_healthcheck_usage_and_stale_heartbeat(tmp_path: Path) -> None:
    assert _run("tradewise-healthcheck", {}).returncode == 2
    beat = tmp_path / "hb"
    env = {"TRADEWISE_HEARTBEAT_FILE": str(beat), "TRADEWISE_HEARTBEAT_MAX_AGE": "30"}
    missing = _run("tradewise-healthcheck", env, "worker")
    assert missing.returncode == 1 and "no heartbeat" in missing.stderr
    beat.touch()
    assert _run("tradewise-healthcheck", env, "worker").returncode == 0
    os.utime(beat, (0, 0))
    stale = _run("tradewise-healthcheck", env, "precompute")
    assert stale.returncode == 1 and "old" in stale.stderr
    bad = _run("tradewise-healthcheck", {**env, "TRADEWISE_HEARTBEAT_MAX_AGE": "soon"}, "worker")
    assert bad.returncode == 2 and "TRADEWISE_HEARTBEAT_MAX_AGE" in bad.stderr
    closed = _run("tradewise-healthcheck", {"BIND": "127.0.0.1:1"}, "api")
    assert closed.returncode == 1
