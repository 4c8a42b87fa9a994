"""Parsing of the units users type: durations (``60s``, ``5m``), Kubernetes quantities."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from tradewise_ops.errors import BadInputError

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?$")
_PLAIN_SECONDS = re.compile(r"^\d+$")


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds in ``text``: ``90``, ``60s``, ``5m``, ``1h30m``, ``2m30s``. Positive only.

    Anything else (``60x``, ``-5s``, ``0s``) raises ``BadInputError`` naming ``what``.
    """
    raw = str(text).strip().lower()
    seconds: float | None = None
    if _PLAIN_SECONDS.match(raw):
        seconds = float(raw)
    else:
        m = _DURATION.match(raw)
        if m and raw and any(m.groups()):
            h, mi, s = (int(g) if g else 0 for g in m.groups())
            seconds = float(h * 3600 + mi * 60 + s)
    if seconds is None or seconds <= 0:
        raise BadInputError(
            f"{what} {text!r} is not a positive duration: use seconds (90), or a number with "
            "s, m or h (60s, 5m, 1h30m)"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """``125`` -> ``2m05s``; under a minute, ``4.2s``."""
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds % 1 else f"{int(seconds)}s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s"


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_MEMORY_FACTORS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def cpu_millicores(quantity: str | int | float) -> int | None:
    """Millicores of a CPU quantity (``500m`` -> 500, ``1`` -> 1000), or None when malformed."""
    m = _CPU.match(str(quantity).strip())
    if not m:
        return None
    try:
        value = Decimal(m.group(1))
    except InvalidOperation:
        return None
    return int(value if m.group(2) else value * 1000)


def memory_bytes(quantity: str | int | float) -> int | None:
    """Bytes of a memory/storage quantity (``512Mi``, ``2Gi``, ``1G``), or None when malformed."""
    m = _MEMORY.match(str(quantity).strip())
    if not m:
        return None
    return int(Decimal(m.group(1)) * _MEMORY_FACTORS[m.group(2)])
