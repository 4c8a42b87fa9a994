"""Passwords in connection URLs never reach a message or a log line of the service."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.redact import MaskingFormatter, mask_credentials
from tests.helpers import free_port, wait_until

BIN = Path(sys.executable).parent
SECRET = "s3cr3t-Pw"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql+psycopg://app:s3cr3t@db:5432/tw", "postgresql+psycopg://app:***@db:5432/tw"),
        ("redis://:s3cr3t@cache:6379/0", "redis://:***@cache:6379/0"),
        ("amqp://guest:s3cr3t@mq//", "amqp://guest:***@mq//"),
        ("postgresql://app:s3@cr3t@db/tw", "postgresql://app:***@db/tw"),  # an unencoded "@"
        ("invalid X='redis://u:s3cr3t@h/a': expected", "invalid X='redis://u:***@h/a': expected"),
        ("host=db password=s3cr3t user=app", "host=db password=*** user=app"),
        ("https://h/p?a=1&password=s3cr3t&b=2", "https://h/p?a=1&password=***&b=2"),
        ("http://127.0.0.1:8000/api/health", "http://127.0.0.1:8000/api/health"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("sqlite:////var/lib/tw@home/tw.db", "sqlite:////var/lib/tw@home/tw.db"),
        ("registry.example.com:5000/tw@sha256:abc", "registry.example.com:5000/tw@sha256:abc"),
    ],
)
def test_mask_credentials(text: str, masked: str) -> None:
    assert mask_credentials(text) == masked


def test_log_lines_and_tracebacks_are_masked() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(MaskingFormatter(logging.Formatter("%(levelname)s %(message)s")))
    logger = logging.getLogger("tests.secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("cannot reach %s", f"redis://:{SECRET}@cache/0")
        try:
            raise RuntimeError(f"boom at postgresql://app:{SECRET}@db/tw")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "WARNING cannot reach redis://:***@cache/0" in text
    assert "RuntimeError: boom at postgresql://app:***@db/tw" in text
    assert SECRET not in text


def test_gunicorn_error_log_is_masked(capfd: pytest.CaptureFixture[str]) -> None:
    from gunicorn.config import Config

    from app.gunicorn_conf import MaskingLogger

    cfg = Config()
    cfg.set("errorlog", "-")
    log = MaskingLogger(cfg)
    try:
        raise ValueError(f"bad DATABASE_URL postgresql://app:{SECRET}@db/tw")
    except ValueError:
        log.exception("Exception in worker process")
    err = capfd.readouterr().err
    assert "ValueError: bad DATABASE_URL postgresql://app:***@db/tw" in err
    assert SECRET not in err


def _run(script: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADEWISE_", "BIND"))}
    full_env.update(env)
    return subprocess.run(
        [str(BIN / script)], env=full_env, capture_output=True, text=True, timeout=timeout
    )


BAD_URLS = [
    ("DATABASE_URL", f"mysql://app:{SECRET}@db/tw"),
    ("DATABASE_URL", f"postgresql://app:{SECRET}@db:notaport/tw"),
    ("DATABASE_URL", f"postgresql://app:{SECRET}@[::1/tw"),
    ("REDIS_URL", f"redis://:{SECRET}@cache:6379/cache"),
    ("REDIS_URL", f"redis://:{SECRET}@cache:99999/0"),
    ("CELERY_BROKER_URL", f"amqp://app:{SECRET}@mq//"),
    ("CELERY_BROKER_URL", f"redis://:{SECRET}@cache/x"),
]


@pytest.mark.parametrize("script", ["tradewise-api", "tradewise-worker", "tradewise-precompute"])
@pytest.mark.parametrize(("variable", "value"), BAD_URLS)
def test_a_bad_url_is_refused_at_start_up_without_its_password(
    script: str, variable: str, value: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "REDIS_URL": "none", variable: value}
    result = _run(script, env)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"invalid {variable}=" in result.stderr
    assert ":***@" in result.stderr
    assert SECRET not in output
    assert "Traceback" not in output


def test_a_running_api_with_passwords_in_its_urls_never_prints_them(tmp_path: Path) -> None:
    """Unreachable PostgreSQL and Redis with passwords: start, serve, fail checks, stop."""
    port = free_port()
    log = tmp_path / "api.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TRADEWISE_", "BIND"))},
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "DATABASE_URL": f"postgresql://app:{SECRET}@127.0.0.1:{free_port()}/tw",
        "REDIS_URL": f"redis://:{SECRET}@127.0.0.1:{free_port()}/0",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "GUNICORN_WORKER_TMP_DIR": str(tmp_path),
        "LOG_LEVEL": "debug",
    }
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "tradewise-api")], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:

        def up() -> bool:
            try:
                return httpx.get(url + "/api/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(lambda: up() or proc.poll() is not None, timeout=30, what="tradewise-api")
        assert proc.poll() is None, log.read_text()
        bodies = []
        for path in (
            "/api/stock-analysis?symbol=AAPL",
            "/api/health/ready",
            "/metrics",
            "/api/performance/stats",
        ):
            response = httpx.get(url + path, timeout=10)
            bodies.append(response.text)
        assert "database" in bodies[1] and "redis" in bodies[1]  # the checks did fail
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=25)
    text = log.read_text()
    assert "redis unavailable" in text  # the service did log its failures
    assert SECRET not in text
    assert not any(SECRET in body for body in bodies)
