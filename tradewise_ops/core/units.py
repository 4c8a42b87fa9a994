"""Parsing of the units users type: durations (``60s``, ``5m``), Kubernetes quantities."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

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


# Kubernetes' quantity grammar (k8s.io/apimachinery resource.Quantity): a signed decimal number
# (``1``, ``1.5``, ``.5``, ``1.``), then one suffix: a decimal SI prefix (``n u m k M G T P E``),
# a binary SI prefix (``Ki Mi Gi Ti Pi Ei``) or a decimal exponent (``e3``, ``E-2``).
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)
_SI: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
# the forms tradewise takes for container resources (as it always has): CPU in cores or
# millicores, memory in bytes with a decimal (k and up) or binary prefix; no exponents, and no
# fractions of a byte (``512m`` of memory is 0.512 bytes: a typo for ``512Mi``)
_CPU_SUFFIXES = frozenset({"", "m"})
_MEMORY_SUFFIXES = frozenset({"", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"})


class Quantity(NamedTuple):
    """A parsed Kubernetes quantity: its exact value and the suffix it was written with."""

    amount: Decimal
    suffix: str


def parse_quantity(value: Any) -> Quantity | None:
    """The Kubernetes quantity in ``value`` (``500m``, ``2Gi``, ``1.5``, ``1e3``), or None.

    The one quantity parser of tradewise: CPU and memory amounts, HPA metric values and
    targets all go through it. A number (not a bool) is taken as written without a suffix.
    """
    if value is None or isinstance(value, bool):
        return None
    m = _QUANTITY.match(str(value).strip())
    if not m:
        return None
    suffix = m.group("suffix") or ""
    number = m.group("number")
    try:
        if suffix[:1] in ("e", "E"):
            return Quantity(Decimal(number + suffix), suffix)
        return Quantity(Decimal(number) * _SI[suffix], suffix)
    except InvalidOperation:
        return None


def quantity_value(value: Any) -> float | None:
    """A Kubernetes quantity as a number: ``"750m"`` -> 0.75, ``"2k"`` -> 2000, 70 -> 70.0.

    None when missing or malformed.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    parsed = parse_quantity(value)
    return None if parsed is None else float(parsed.amount)


def cpu_millicores(quantity: str | int | float) -> int | None:
    """Millicores of a CPU quantity (``500m`` -> 500, ``1`` -> 1000), or None when malformed.

    Malformed: not a quantity, negative, or written with a suffix other than ``m``.
    """
    parsed = parse_quantity(quantity)
    if parsed is None or parsed.suffix not in _CPU_SUFFIXES or parsed.amount < 0:
        return None
    return int(parsed.amount * 1000)


def memory_bytes(quantity: str | int | float) -> int | None:
    """Bytes of a memory/storage quantity (``512Mi``, ``2Gi``, ``1G``), or None when malformed.

    Malformed: not a quantity, negative, or written in fractions of a byte (``m``) or with an
    exponent.
    """
    parsed = parse_quantity(quantity)
    if parsed is None or parsed.suffix not in _MEMORY_SUFFIXES or parsed.amount < 0:
        return None
    return int(parsed.amount)


_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(count: int | float) -> str:
    """``1536`` -> ``1.5 KiB``, ``10737418240`` -> ``10.0 GiB``; under 1 KiB, ``812 B``."""
    value = float(count)
    for unit in _BINARY_UNITS:
        if abs(value) < 1024 or unit == _BINARY_UNITS[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
