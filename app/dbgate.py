"""Database calls of the API with a deadline and a circuit breaker, like the Redis cache's.

The API does not need the database to answer correctly: an analysis is computed from market data
and the database only keeps a record of it. So a database that is down or hung must not hold a
request. libpq's connect timeout cannot go below 2 s, and a server that accepted the connection
but does not answer (hung, stopped, or behind a dropped network) blocks a query with no timeout
at all; so each call runs on its own daemon thread and the request waits for it at most
``timeout`` seconds.

A call that fails, or is still running at its deadline, opens the circuit: for ``retry_seconds``
the gate refuses writes at once (:class:`DatabaseUnavailableError`), so a dead database costs one
request at most ``timeout`` and the others nothing. A late call goes on in the background (a
write that completes late is kept); at most ``max_pending`` run at a time, beyond which the gate
refuses every call until one returns. ``check`` (readiness, ``/metrics``) ignores the open
circuit, like the cache's ``ping``, and closes it when the database answers.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class DatabaseUnavailableError(Exception):
    """The database call was not made or did not finish in time; the message says which."""


class _Call:
    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.abandoned = False  # the request stopped waiting for it


class DatabaseGate:
    """Runs database calls with a deadline; opens a circuit after a failure or a timeout."""

    def __init__(self, timeout: float, retry_seconds: float, max_pending: int = 2) -> None:
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._down_until = 0.0
        self._last_error: str | None = None
        self._pending = 0

    def _forked(self) -> None:
        """A forked child (Celery prefork) has none of the parent's threads: start afresh."""
        if self._pid != os.getpid():
            self._reset()

    @property
    def available(self) -> bool:
        """False while the circuit is open or too many calls are still running."""
        self._forked()
        return time.monotonic() >= self._down_until and self._pending < self.max_pending

    @property
    def last_error(self) -> str | None:
        """Why the circuit opened, while it is open."""
        return self._last_error if time.monotonic() < self._down_until else None

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()`` within the deadline; ``DatabaseUnavailableError`` at once while the circuit
        is open. Exceptions of ``fn`` are raised as they are (and open the circuit)."""
        if not self.available:
            raise DatabaseUnavailableError(self._refusal(what))
        return self._run(fn, what, self.timeout)

    def check(self, fn: Callable[[], T], what: str, timeout: float | None = None) -> T:
        """``fn()`` within the deadline (``timeout`` instead of the gate's) even while the
        circuit is open; success closes it."""
        self._forked()
        if self._pending >= self.max_pending:
            raise DatabaseUnavailableError(self._refusal(what))
        return self._run(fn, what, self.timeout if timeout is None else timeout)

    def _refusal(self, what: str) -> str:
        if self._pending >= self.max_pending:
            return (
                f"{what} skipped: {self._pending} database calls have not returned "
                f"(the database does not answer)"
            )
        return f"{what} skipped: database unavailable ({self._last_error})"

    def _run(self, fn: Callable[[], T], what: str, timeout: float) -> T:
        call = _Call(fn)
        with self._lock:
            self._pending += 1
        thread = threading.Thread(
            target=self._work, args=(call, what), name="tradewise-db", daemon=True
        )
        thread.start()
        if not call.done.wait(timeout):
            call.abandoned = True
            self._open(f"no answer within {timeout:g}s")
            raise DatabaseUnavailableError(
                f"{what}: the database did not answer within {timeout:g}s"
            )
        if call.error is not None:
            raise call.error
        result: T = call.result
        return result

    def _work(self, call: _Call, what: str) -> None:
        try:
            call.result = call.fn()
        except BaseException as exc:  # handed to the waiting request, or logged when late
            call.error = exc
            self._open(_first_line(exc))
        else:
            with self._lock:
                self._down_until = 0.0
                self._last_error = None
        finally:
            with self._lock:
                self._pending = max(0, self._pending - 1)
            call.done.set()
        if call.abandoned:
            outcome = "failed: " + _first_line(call.error) if call.error else "succeeded"
            log.info("%s %s after its request had answered", what, outcome)

    def _open(self, why: str) -> None:
        with self._lock:
            first = time.monotonic() >= self._down_until
            self._down_until = time.monotonic() + self.retry_seconds
            self._last_error = why
        if first:
            log.warning(
                "database unavailable, serving without it for %.1fs: %s", self.retry_seconds, why
            )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
