"""Credentials out of everything the CLI shows: messages, errors and results.

``mask_credentials`` hides the password of every URL in a text (``scheme://user:***@host/...``)
and the value of ``password=`` pairs; ``mask_data`` does it to every string of a result document.
The terminal applies them to all it prints, so a ``--host`` or an environment ``url`` with a
password (Locust sends it as basic auth) is never echoed. The service has its own copy
(``app.redact``): ``app`` does not import ``tradewise_ops``.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# up to the last "@" of the URL, as URL parsers split it (a password may hold an unencoded "@")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*):[^\s'\"]*@")
_PASSWORD_PAIR = re.compile(r"(?i)\b(?P<key>password|passwd|pwd)=(?!\*\*\*)[^&\s'\"]+")
# user info (with or without a scheme: "ops:pw@registry"), or a password=/token=... pair
_CREDENTIAL = re.compile(
    r"://[^/\s]*@|[^\s/:@]+:[^\s/@]+@"
    r"|(?i:\b(?:password|passwd|pwd|token|secret|api_?key)\s*[=:])"
)


def mask_credentials(text: str) -> str:
    """``text`` with the password of each URL and each ``password=`` value replaced by ***."""
    if "@" not in text and "=" not in text:  # the common case: nothing to look at
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _PASSWORD_PAIR.sub(lambda m: f"{m['key']}={MASK}", text)


def mask_data(value: Any) -> Any:
    """``value`` (a result document) with ``mask_credentials`` applied to every string in it."""
    if isinstance(value, str):
        return mask_credentials(value)
    if isinstance(value, dict):
        return {k: mask_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_data(v) for v in value]
    return value


def looks_like_credential(text: str) -> bool:
    """True when ``text`` seems to hold a secret: user info (``user:pw@``) or ``password=...``.

    Such a value is not echoed in an error message at all.
    """
    return bool(_CREDENTIAL.search(text))
