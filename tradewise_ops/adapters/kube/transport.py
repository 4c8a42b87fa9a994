"""The one request path to the Kubernetes API: every request is counted, bounded, retried, mapped.

``Transport.send`` sends a request through the pool of the connection's ``Access`` (``kube.pool``),
with its ``Authorization`` header, logs it in ``RequestLog`` (watches count one each), and retries
5xx / 429 / dropped connections with bounded backoff, all within bounded time: each attempt waits
at most ``connect_timeout`` for a connection and ``request_timeout`` for an answer (a watch
brings its own read timeout), and one call with its retries at most ``total_timeout``. A failed
answer becomes the project's error (``kube.errors``); a server that never answered becomes
``UnreachableError`` naming the server, the context and how long it was given; a TLS handshake
refused on the certificates is ``UnreachableError`` at once, without retries.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from tradewise_ops import __version__
from tradewise_ops.adapters.kube.errors import (
    Retryable,
    error_for_status,
    is_connection_error,
    short,
    tls_problem,
)
from tradewise_ops.adapters.kube.kubeconfig import Access
from tradewise_ops.errors import TradewiseError, UnreachableError

USER_AGENT = f"tradewise/{__version__}"
_RAISE = (
    "to wait longer, raise `kubernetes.{0}` in tradewise.yaml or TRADEWISE_KUBE_{1} "
    "(and `total_timeout` / TRADEWISE_KUBE_TOTAL_TIMEOUT, the bound with retries)"
)


@dataclass
class RequestLog:
    """What the gateway sent: ``count`` and ``(method, path)`` of every request (watches too)."""

    count: int = 0
    entries: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str) -> None:
        with self.lock:
            self.count += 1
            self.entries.append((method, path))


class Transport:
    """Sends requests for one gateway: its server and credentials, retry policy, timeouts, log."""

    def __init__(
        self,
        access: Access,
        *,
        where: str,
        user: str | None,
        namespace: str,
        retries: int,
        backoff: float,
        max_backoff: float,
        connect_timeout: float,
        request_timeout: float,
        total_timeout: float,
    ) -> None:
        from tradewise_ops.adapters.kube.pool import pool_for

        self.access = access
        self.pool = pool_for(access)
        self.where = where
        self.user = user
        self.namespace = namespace
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.total_timeout = total_timeout
        self.log = RequestLog()

    def close(self) -> None:
        """Release the HTTP connections."""
        with contextlib.suppress(Exception):
            self.pool.clear()

    def pause_for(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1, 2, ...): doubling, capped."""
        return float(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))

    def pause(self, attempt: int) -> None:
        """Sleep before retry number ``attempt`` (1, 2, ...): doubling, at most ``max_backoff``."""
        time.sleep(self.pause_for(attempt))

    def send(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
        what: tuple[str, str, str | None] | None = None,
    ) -> Any:
        """Send one request with retries; the decoded JSON answer (or the raw stream).

        ``timeout`` is the read timeout (or ``(connect, read)``) of each attempt, default
        ``request_timeout``; no attempt starts after ``total_timeout`` s and a plain request's
        waits are cut to what is left of it (a stream keeps its read timeout: a watch waits
        for events). ``what`` is ``(verb, resource, name)`` for error messages. Raises the
        mapped error (``kube.errors.error_for_status``); ``UnreachableError`` when the server
        never answered, or refused our TLS set-up.
        """
        if isinstance(timeout, tuple):
            connect, read = timeout
        else:
            connect, read = self.connect_timeout, timeout or self.request_timeout
        start = time.monotonic()
        deadline = start + self.total_timeout
        attempt = 0
        while True:
            attempt += 1
            left = max(deadline - time.monotonic(), 0.05)
            bounds = (min(connect, left), read if stream else min(read, left))
            try:
                return self._send_once(
                    method, path, query, body, content_type, stream, bounds, what
                )
            except Retryable as exc:
                wait = self.pause_for(attempt)
                if attempt > self.retries or time.monotonic() + wait + 0.1 >= deadline:
                    raise self._gave_up(
                        exc, method, path, attempt, start, (connect, read)
                    ) from None
                time.sleep(wait)

    def _gave_up(
        self,
        exc: Retryable,
        method: str,
        path: str,
        attempts: int,
        start: float,
        bounds: tuple[float, float],
    ) -> TradewiseError:
        import urllib3

        plural = "s" if attempts > 1 else ""
        tried = f"{attempts} attempt{plural} in {time.monotonic() - start:.1f} s"
        cause = exc.cause
        if cause is None or not is_connection_error(cause):
            return TradewiseError(
                f"{self.where} kept failing on {method} {path}: {exc} (tried {attempts} times)"
            )
        if isinstance(cause, urllib3.exceptions.NewConnectionError):
            why, hint = short(cause), "is the cluster up, and is this the right context?"
        elif isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
            why = f"no connection within {bounds[0]:g} s"
            hint = "is the cluster up, and is this the right context? " + _RAISE.format(
                "connect_timeout", "CONNECT_TIMEOUT"
            )
        elif isinstance(cause, urllib3.exceptions.ReadTimeoutError):
            why = f"no answer within {bounds[1]:g} s"
            hint = "the server accepts connections but does not answer; " + _RAISE.format(
                "request_timeout", "REQUEST_TIMEOUT"
            )
        else:
            why, hint = short(cause), "is the cluster up, and is this the right context?"
        return UnreachableError(f"cannot reach {self.where}: {why} ({tried})", hint=hint)

    def _send_once(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        body: Any,
        content_type: str | None,
        stream: bool,
        bounds: tuple[float, float],
        what: tuple[str, str, str | None] | None,
    ) -> Any:
        import urllib3

        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if content_type:
            headers["Content-Type"] = content_type
        authorization = self.access.authorization() if self.access.authorization else None
        if authorization:
            headers["Authorization"] = authorization
        params = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        url = self.access.server + path
        if params:
            url += "?" + urlencode(params, quote_via=quote)
        data: Any = None
        if body is not None:
            data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        self.log.add(method, path)
        try:
            response = self.pool.request(
                method,
                url,
                body=data,
                headers=headers,
                timeout=urllib3.Timeout(connect=bounds[0], read=bounds[1]),
                preload_content=False,
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.SSLError as exc:
            problem = tls_problem(exc)
            if problem is None:
                raise Retryable(short(exc), exc) from None
            raise UnreachableError(
                f"{self.where} is unreachable as configured: {problem}",
                hint="check the cluster's certificate-authority(-data), tls-server-name and the "
                "user's client certificate in the kubeconfig",
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise Retryable(short(exc), exc) from None
        if stream and response.status < 300:
            return response
        try:
            raw = response.data
        except urllib3.exceptions.HTTPError as exc:
            raise Retryable(short(exc), exc) from None
        finally:
            response.release_conn()
        status = response.status
        if status < 300:
            return json.loads(raw) if raw else {}
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = {"message": raw.decode("utf-8", "replace")[:200]}
        if not isinstance(doc, dict):
            doc = {"message": str(doc)[:200]}
        message = doc.get("message") or response.reason or str(status)
        raise error_for_status(
            status,
            message,
            method,
            path,
            what,
            where=self.where,
            user=self.user,
            namespace=self.namespace,
        )


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
