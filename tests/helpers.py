"""Helpers shared by the test suite: free ports, waiting, skip-or-fail on missing tools."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable

import pytest


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where a missing tool fails instead of skipping."""
    return os.environ.get("CI") == "true"


def require(condition: bool, what: str) -> None:
    """Skip the test when ``condition`` is false, or fail it under ``CI=true``.

    ``what`` names the missing thing, e.g. ``"redis-server (apt-get install redis-server)"``.
    """
    if condition:
        return
    message = f"needs {what}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: missing prerequisites fail instead of skipping)")
    pytest.skip(message)


def require_binary(name: str, hint: str = "") -> str:
    """Return the path of executable ``name`` (a bare name or an absolute path), or skip/fail."""
    path = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
    require(path is not None, f"{name}{' (' + hint + ')' if hint else ''}")
    assert path is not None
    return path


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> None:
    """Poll ``predicate`` until it is true; raise ``TimeoutError`` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    if predicate():
        return
    raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what or predicate!r}")
