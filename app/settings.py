"""Service settings, read once from the environment and validated at start-up.

Every variable has a safe default; a bad value raises :class:`ConfigError` naming the variable, the
value (its credentials masked) and what is allowed, so the process stops at start-up instead of
failing on the first request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlparse

from app.redact import mask_credentials
from app.symbols import parse_symbol_list

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DISABLED = ("none", "disabled")
BROKER_SCHEMES = ("redis", "rediss", "memory", "sqla+sqlite")
DEFAULT_POPULAR = (
    "AAPL,MSFT,GOOGL,AMZN,NVDA,META,TSLA,JPM,V,JNJ,WMT,PG,MA,UNH,HD,XOM,KO,PEP,NFLX,AMD,SPY,QQQ"
)
PROVIDERS = ("synthetic", "http")
# fault knobs a stress test may use (``TRADEWISE_FAULTS``); none unless the environment enables them
FAULTS = ("memory", "uncached")


class ConfigError(ValueError):
    """A setting has a value the service cannot start with; the message names the variable."""

    def __init__(self, variable: str, value: object, expected: str) -> None:
        self.variable = variable
        super().__init__(mask_credentials(f"invalid {variable}={value!r}: expected {expected}"))


@dataclass(frozen=True)
class Settings:
    """The service's configuration (see docs/service.md)."""

    database_url: str
    redis_url: str | None = DEFAULT_REDIS_URL  # None: REDIS_URL=none, no cache configured
    broker_url: str = DEFAULT_REDIS_URL
    result_backend: str | None = DEFAULT_REDIS_URL
    market_data_provider: str = "synthetic"
    market_data_url: str | None = None
    market_data_api_key: str | None = None
    market_data_timeout: float = 5.0
    cache_ttl_seconds: int = 300
    cache_local_seconds: float = 1.0
    inject_latency_ms: int = 0
    task_delay_ms: int = 0
    popular_symbols: tuple[str, ...] = field(default_factory=tuple)
    extra_symbols: tuple[str, ...] = field(default_factory=tuple)
    refresh_minutes: int = 15
    visibility_timeout: int = 3600
    heartbeat_file: str = "/tmp/tradewise-heartbeat"
    redis_retry_seconds: float = 2.0
    database_timeout_seconds: float = 0.5
    database_retry_seconds: float = 2.0
    # the database connection pool of each process (None: the dialect's defaults, see models)
    db_pool_size: int | None = None
    db_pool_overflow: int | None = None
    db_pool_timeout: float | None = None
    web_threads: int = 1  # gunicorn threads per worker process (1: the sync worker)
    faults: tuple[str, ...] = ()  # enabled fault knobs (``TRADEWISE_FAULTS``), for stress tests

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, instance_path: str | os.PathLike[str] = "."
    ) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``); raise ``ConfigError``."""
        env = os.environ if environ is None else environ
        default_db = f"sqlite:///{Path(instance_path) / 'tradewise.db'}"
        database_url = _url(env, "DATABASE_URL", default_db, ("sqlite", "postgresql", "postgres"))
        if database_url.startswith("postgres://"):
            database_url = "postgresql+psycopg://" + database_url[len("postgres://") :]
        elif database_url.startswith("postgresql://"):
            database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
        redis_url: str | None = None
        if env.get("REDIS_URL", "").strip().lower() not in DISABLED:
            redis_url = _url(env, "REDIS_URL", DEFAULT_REDIS_URL, ("redis", "rediss", "unix"))
        broker_default = redis_url or f"sqla+sqlite:///{Path(instance_path) / 'celery-broker.db'}"
        broker_url = _url(env, "CELERY_BROKER_URL", broker_default, BROKER_SCHEMES)
        backend_raw = env.get("CELERY_RESULT_BACKEND", "").strip()
        result_backend: str | None
        if backend_raw.lower() in DISABLED:
            result_backend = None
        else:
            result_backend = _url(
                env,
                "CELERY_RESULT_BACKEND",
                _default_backend(redis_url, broker_url),
                ("redis", "rediss", "db+sqlite", "cache"),
            )
        provider = env.get("MARKET_DATA_PROVIDER", "synthetic").strip().lower() or "synthetic"
        if provider not in PROVIDERS:
            raise ConfigError("MARKET_DATA_PROVIDER", provider, "one of " + ", ".join(PROVIDERS))
        market_url = env.get("MARKET_DATA_URL", "").strip() or None
        if market_url is not None:
            market_url = _url(env, "MARKET_DATA_URL", market_url, ("http", "https"))
        if provider == "http" and market_url is None:
            raise ConfigError(
                "MARKET_DATA_URL", "", "an http(s) URL when MARKET_DATA_PROVIDER=http"
            )
        try:
            popular = parse_symbol_list(env.get("TRADEWISE_POPULAR_SYMBOLS", DEFAULT_POPULAR))
        except ValueError as exc:
            raise ConfigError(
                "TRADEWISE_POPULAR_SYMBOLS", env.get("TRADEWISE_POPULAR_SYMBOLS"), str(exc)
            ) from None
        try:
            extra = parse_symbol_list(env.get("TRADEWISE_EXTRA_SYMBOLS", ""))
        except ValueError as exc:
            raise ConfigError(
                "TRADEWISE_EXTRA_SYMBOLS", env.get("TRADEWISE_EXTRA_SYMBOLS"), str(exc)
            ) from None
        return cls(
            database_url=database_url,
            redis_url=redis_url,
            broker_url=broker_url,
            result_backend=result_backend,
            market_data_provider=provider,
            market_data_url=market_url,
            market_data_api_key=env.get("MARKET_DATA_API_KEY", "").strip() or None,
            market_data_timeout=_number(env, "MARKET_DATA_TIMEOUT", 5.0, 0.1, 120.0),
            cache_ttl_seconds=int(_number(env, "CACHE_TTL_SECONDS", 300, 1, 7 * 86400, True)),
            cache_local_seconds=_number(env, "CACHE_LOCAL_SECONDS", 1.0, 0.0, 60.0),
            inject_latency_ms=int(_number(env, "TRADEWISE_INJECT_LATENCY_MS", 0, 0, 60_000, True)),
            task_delay_ms=int(_number(env, "TRADEWISE_TASK_DELAY_MS", 0, 0, 600_000, True)),
            popular_symbols=popular,
            extra_symbols=extra,
            refresh_minutes=int(_number(env, "TRADEWISE_REFRESH_MINUTES", 15, 1, 59, True)),
            visibility_timeout=int(
                _number(env, "CELERY_VISIBILITY_TIMEOUT", 3600, 1, 7 * 86400, True)
            ),
            heartbeat_file=env.get("TRADEWISE_HEARTBEAT_FILE", "").strip()
            or "/tmp/tradewise-heartbeat",
            redis_retry_seconds=_number(env, "TRADEWISE_REDIS_RETRY_SECONDS", 2.0, 0.0, 300.0),
            database_timeout_seconds=_number(
                env, "TRADEWISE_DATABASE_TIMEOUT_SECONDS", 0.5, 0.05, 60.0
            ),
            database_retry_seconds=_number(
                env, "TRADEWISE_DATABASE_RETRY_SECONDS", 2.0, 0.0, 300.0
            ),
            **_pool_and_faults(env),
        )


class _PoolAndFaults(TypedDict):
    db_pool_size: int | None
    db_pool_overflow: int | None
    db_pool_timeout: float | None
    web_threads: int
    faults: tuple[str, ...]


def _pool_and_faults(env: Mapping[str, str]) -> _PoolAndFaults:
    """The pool settings, ``WEB_THREADS`` and ``TRADEWISE_FAULTS`` (stress tests' knobs)."""

    def optional(name: str, low: float, high: float, integer: bool) -> float | None:
        return _number(env, name, 0, low, high, integer) if env.get(name, "").strip() else None

    size = optional("TRADEWISE_DB_POOL_SIZE", 1, 1000, True)
    overflow = optional("TRADEWISE_DB_POOL_OVERFLOW", 0, 1000, True)
    faults = tuple(
        f.strip().lower() for f in env.get("TRADEWISE_FAULTS", "").split(",") if f.strip()
    )
    for fault in faults:
        if fault not in FAULTS:
            raise ConfigError("TRADEWISE_FAULTS", env.get("TRADEWISE_FAULTS"),
                              "a comma-separated list of " + ", ".join(FAULTS))  # fmt: skip
    return {
        "db_pool_size": None if size is None else int(size),
        "db_pool_overflow": None if overflow is None else int(overflow),
        "db_pool_timeout": optional("TRADEWISE_DB_POOL_TIMEOUT_SECONDS", 0.1, 300, False),
        "web_threads": int(_number(env, "WEB_THREADS", 1, 1, 64, True)),
        "faults": tuple(dict.fromkeys(faults)),
    }


def _default_backend(redis_url: str | None, broker_url: str) -> str:
    """Results go to Redis when there is one, else to SQLite beside the SQLite broker."""
    if redis_url is not None:
        return redis_url
    if broker_url.startswith("sqla+sqlite:///"):
        broker_file = Path(broker_url[len("sqla+sqlite:///") :])
        return f"db+sqlite:///{broker_file.with_name(broker_file.stem + '-results.db')}"
    return "cache+memory://"


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip() or default
    try:
        parsed = urlparse(raw)
        parsed.port  # noqa: B018 - raises on a port that is not a number in 0-65535
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        raise ConfigError(name, raw, f"a well-formed URL ({exc})") from None
    scheme = parsed.scheme.lower()
    base = scheme.split("+", 1)[0] if not scheme.startswith("db+") else scheme
    if not scheme or (base not in schemes and scheme not in schemes):
        raise ConfigError(name, raw, "a URL with scheme " + " or ".join(f"{s}://" for s in schemes))
    if scheme.startswith(("redis", "rediss")):
        path = urlparse(raw).path.strip("/")
        if path and not path.isdigit():
            raise ConfigError(name, raw, "a Redis URL whose path is a database number, e.g. /0")
    if scheme in ("sqla+sqlite", "db+sqlite") and not raw.startswith(f"{scheme}:///"):
        raise ConfigError(name, raw, f"{scheme}:///PATH (a SQLite file shared by the processes)")
    if scheme in ("sqla+sqlite", "db+sqlite") and not raw[len(scheme) + 4 :].strip():
        raise ConfigError(name, raw, f"{scheme}:///PATH (a SQLite file shared by the processes)")
    if name == "DATABASE_URL":
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(raw)
        except (ArgumentError, ValueError) as exc:
            raise ConfigError(name, raw, f"a well-formed URL ({exc})") from None
    return raw


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    low: float,
    high: float,
    integer: bool = False,
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    kind = "an integer" if integer else "a number"
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError:
        raise ConfigError(name, raw, f"{kind} between {low:g} and {high:g}") from None
    if not low <= value <= high:
        raise ConfigError(name, raw, f"{kind} between {low:g} and {high:g}")
    return value
