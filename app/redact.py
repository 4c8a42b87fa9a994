"""Credentials out of every message and log line of the service.

``mask_credentials`` hides the password of every URL in a text (``scheme://user:***@host/...``)
and the value of ``password=`` pairs (libpq key/value strings, query strings). The CLI has its own
(``tradewise_ops.core.redact``): the service does not import the CLI's package.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
# up to the last "@" of the URL, as URL parsers split it (a password may hold an unencoded "@")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*):[^\s'\"]*@")
_PASSWORD_PAIR = re.compile(r"(?i)\b(?P<key>password|passwd|pwd)=(?!\*\*\*)[^&\s'\"]+")


def mask_credentials(text: str) -> str:
    """``text`` with the password of each URL and each ``password=`` value replaced by ***."""
    if "@" not in text and "=" not in text:  # the common case: nothing to look at
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _PASSWORD_PAIR.sub(lambda m: f"{m['key']}={MASK}", text)


class MaskingFormatter(logging.Formatter):
    """Formats like ``inner`` (or the default), then masks credentials, tracebacks included."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return mask_credentials(self.inner.format(record))


def mask_handlers(logger: logging.Logger) -> None:
    """Wrap the formatter of each handler of ``logger`` in a :class:`MaskingFormatter`."""
    for handler in logger.handlers:
        if not isinstance(handler.formatter, MaskingFormatter):
            handler.setFormatter(MaskingFormatter(handler.formatter))
