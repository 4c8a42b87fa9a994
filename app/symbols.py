"""Ticker symbols: the syntax, normalisation and the synthetic provider's universe.

A symbol is 1-10 characters: upper-case letters, digits, ``.`` or ``-``, starting with a letter
(``AAPL``, ``BRK.B``, ``BF-B``). Lower-case input is normalised to upper case.

The universe of symbols the synthetic provider knows is :data:`UNIVERSE` (about a hundred large US
stocks and ETFs) plus any symbols listed in ``TRADEWISE_EXTRA_SYMBOLS``. Anything else is
well-formed but unknown (404).
"""

from __future__ import annotations

import re

SYMBOL_RE = re.compile(r"[A-Z][A-Z0-9.\-]{0,9}")  # use .fullmatch (``$`` would allow "A\n")
SYMBOL_HELP = (
    "a symbol is 1-10 characters: letters, digits, '.' or '-', starting with a letter "
    "(for example AAPL or BRK.B)"
)

UNIVERSE: frozenset[str] = frozenset(
    """
    AAPL MSFT GOOGL GOOG AMZN NVDA META TSLA BRK.B JPM V JNJ WMT PG MA UNH HD DIS BAC XOM CVX KO
    PEP CSCO ORCL INTC AMD NFLX ADBE CRM ABT TMO COST AVGO QCOM TXN NKE MCD LLY MRK PFE ABBV T VZ
    CMCSA IBM GS MS WFC C AXP BA CAT GE HON MMM UPS LMT RTX DE SBUX LOW TGT BKNG PYPL UBER ABNB
    SHOP PLTR SNOW F GM NEE DUK SO AMGN GILD BMY CVS MDT ISRG SPGI BLK SCHW MO PM CL KMB GIS MDLZ
    ADP INTU NOW AMAT MU LRCX SPY QQQ DIA IWM
    """.split()
)


class InvalidSymbolError(ValueError):
    """The text is not a well-formed ticker symbol."""


def normalize_symbol(raw: str | None) -> str:
    """Return the upper-cased, stripped symbol, or raise ``InvalidSymbolError`` saying why."""
    if raw is None or not raw.strip():
        raise InvalidSymbolError(f"missing symbol: {SYMBOL_HELP}")
    symbol = raw.strip().upper()
    if not SYMBOL_RE.fullmatch(symbol):
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise InvalidSymbolError(f"malformed symbol {shown!r}: {SYMBOL_HELP}")
    return symbol


def parse_symbol_list(text: str) -> tuple[str, ...]:
    """Parse a comma/space separated list of symbols (normalised, de-duplicated, in order)."""
    out: list[str] = []
    for part in re.split(r"[,\s]+", text.strip()):
        if not part:
            continue
        try:
            symbol = normalize_symbol(part)
        except InvalidSymbolError as exc:
            raise ValueError(str(exc)) from None
        if symbol not in out:
            out.append(symbol)
    return tuple(out)
