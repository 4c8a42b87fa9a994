"""How the Kubernetes API's failures become the project's errors.

An answer's HTTP status maps to one error: 429 and 5xx are worth retrying (``Retryable``); 401 and
403 -> ``ForbiddenError`` (403 naming the verb and the resource, as RBAC refused them); 404 ->
``NotFoundError``; 409 -> ``ConflictError``; 410 -> ``Gone`` (a watch re-lists); 400 and 422 ->
``BadInputError``; anything else -> ``TradewiseError``. A request that never got an answer (refused,
timed out, dropped) is ``Retryable`` too, and becomes ``UnreachableError`` once the retries are
spent (``is_connection_error``). A TLS handshake that fails on the certificates (not verified, the
wrong host name, our client certificate refused) is not retried: the server is unreachable as
configured (``tls_problem``).
"""

from __future__ import annotations

from tradewise_ops.errors import (
    BadInputError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    TradewiseError,
)

# the verb of each method, as RBAC names it, for messages
VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
RETRYABLE_STATUSES = (429, 500, 502, 503, 504)


class Gone(Exception):
    """A watch's resourceVersion is too old (410): re-list."""


class Retryable(Exception):
    """A failure worth retrying (5xx, 429, a dropped connection)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


def error_for_status(
    status: int,
    message: str,
    method: str,
    path: str,
    what: tuple[str, str, str | None] | None,
    *,
    where: str,
    user: str | None,
    namespace: str,
) -> Exception:
    """The exception for an answer of ``status`` (300 or above) to ``method path``.

    ``what`` is ``(verb, resource, name)`` for messages (default: the method's verb and the
    path); ``where`` names the API server and context, ``user`` and ``namespace`` the caller.
    """
    if status in RETRYABLE_STATUSES:
        return Retryable(f"{status} {message}")
    verb, resource, name = what or (VERBS.get(method, method.lower()), path, None)
    subject = f"{resource}{' ' + repr(name) if name else ''}"
    if status == 401:
        return ForbiddenError(f"{where} rejected the credentials of user {user or '?'}: {message}")
    if status == 403:
        return ForbiddenError(
            f"RBAC refused to {verb} {subject} (user {user or '?'}, namespace "
            f"{namespace}): {message}",
            hint="ask an admin for a Role that grants this verb, or use another context",
        )
    if status == 404:
        return NotFoundError(f"{subject} not found: {message}")
    if status == 409:
        return ConflictError(f"conflict on {subject}: {message}")
    if status == 410:
        return Gone(message)
    if status in (400, 422):
        return BadInputError(f"the cluster refused {subject}: {message}")
    return TradewiseError(f"{where} answered {status} to {method} {path}: {message}")


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the server was never reached (or the connection dropped)."""
    import urllib3

    return isinstance(
        exc,
        (
            urllib3.exceptions.NewConnectionError,
            urllib3.exceptions.ConnectTimeoutError,
            urllib3.exceptions.MaxRetryError,
            urllib3.exceptions.ProtocolError,
            urllib3.exceptions.ReadTimeoutError,
            urllib3.exceptions.SSLError,
            ConnectionError,
        ),
    )


def short(exc: BaseException) -> str:
    """One short line for a transport failure: ``connection refused``, ``timed out``, ..."""
    reason = getattr(exc, "reason", None)
    text = str(reason or exc)
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0][:200] if text else type(exc).__name__


# TLS failures no retry can mend: the certificates, or a server that does not speak TLS
_TLS_CONFIG_REASONS = {
    "CERTIFICATE_VERIFY_FAILED": "certificate verify failed",
    "WRONG_VERSION_NUMBER": "the server does not speak TLS (is the server URL http://?)",
    "UNKNOWN_CA": "the server does not trust our client certificate (unknown ca)",
    "BAD_CERTIFICATE": "the server refused our client certificate (bad certificate)",
    "CERTIFICATE_REQUIRED": "the server requires a client certificate and got none",
    "CERTIFICATE_UNKNOWN": "the server refused our client certificate (certificate unknown)",
    "CERTIFICATE_EXPIRED": "a certificate has expired",
    "HANDSHAKE_FAILURE": "the TLS handshake failed (no common protocol or cipher)",
}


def tls_problem(exc: BaseException) -> str | None:
    """What is wrong with the TLS set-up when ``exc`` is a handshake refused on the
    certificates (``certificate verify failed: self-signed certificate``); None for anything
    worth retrying (a connection dropped mid-handshake)."""
    import ssl

    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError):
            detail = cur.verify_message or cur.reason or "not trusted"
            return f"certificate verify failed: {detail}"
        if isinstance(cur, ssl.SSLError):
            reason = str(cur.reason or "")
            for key, text in _TLS_CONFIG_REASONS.items():
                if key in reason:
                    return text
        linked = [cur.__cause__, cur.__context__, getattr(cur, "reason", None), *cur.args]
        todo.extend(e for e in linked if isinstance(e, BaseException))
    return None
