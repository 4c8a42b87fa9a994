"""The one request path to the Kubernetes API: every request is counted, retried and mapped here.

``Transport.send`` serialises a request with the ``kubernetes`` client's ``ApiClient`` (its
authentication and TLS settings), sends it through that client's urllib3 pool, logs it in
``RequestLog`` (watches count one each), retries 5xx / 429 / dropped connections with bounded
backoff, and turns a failed answer into the project's error (``kube.errors``).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.adapters.kube.errors import (
    Retryable,
    error_for_status,
    is_connection_error,
    short,
)
from tradewise_ops.errors import TradewiseError, UnreachableError


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
    """Sends requests for one gateway: its API client, its retry policy, its request log."""

    def __init__(
        self,
        api_client: Any,
        *,
        where: str,
        user: str | None,
        namespace: str,
        retries: int,
        backoff: float,
        max_backoff: float,
        request_timeout: float,
    ) -> None:
        self.api = api_client
        self.where = where
        self.user = user
        self.namespace = namespace
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.request_timeout = request_timeout
        self.log = RequestLog()

    def close(self) -> None:
        """Release the HTTP connections."""
        with contextlib.suppress(Exception):
            self.api.close()

    def pause(self, attempt: int) -> None:
        """Sleep before retry number ``attempt`` (1, 2, ...): doubling, at most ``max_backoff``."""
        time.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))

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

        ``what`` is ``(verb, resource, name)`` for error messages. Raises the mapped error
        (``kube.errors.error_for_status``); ``UnreachableError`` when the server never answered.
        """
        attempt = 0
        while True:
            try:
                return self._send_once(
                    method, path, query, body, content_type, stream, timeout, what
                )
            except Retryable as exc:
                attempt += 1
                if attempt > self.retries:
                    cause = exc.cause
                    if cause is not None and is_connection_error(cause):
                        raise UnreachableError(
                            f"cannot reach {self.where}: {short(cause)}",
                            hint="is the cluster up, and is this the right context?",
                        ) from None
                    raise TradewiseError(
                        f"{self.where} kept failing on {method} {path}: {exc} "
                        f"(tried {attempt} times)"
                    ) from None
                self.pause(attempt)

    def _send_once(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        body: Any,
        content_type: str | None,
        stream: bool,
        timeout: float | tuple[float, float] | None,
        what: tuple[str, str, str | None] | None,
    ) -> Any:
        import urllib3

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        _method, url, headers, _body, _post = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=params,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        data: Any = None
        if body is not None:
            data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        self.log.add(method, path)
        try:
            response = self.api.rest_client.pool_manager.request(
                method,
                url,
                body=data,
                headers=headers,
                timeout=_timeout(timeout if timeout is not None else self.request_timeout),
                preload_content=False,
                retries=False,
            )
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


def _timeout(value: float | tuple[float, float]) -> Any:
    import urllib3

    if isinstance(value, tuple):
        return urllib3.Timeout(connect=value[0], read=value[1])
    return urllib3.Timeout(connect=min(value, 5.0), read=value)
