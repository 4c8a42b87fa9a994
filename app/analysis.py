"""Technical analysis of a daily close series: pure functions, no I/O.

Conventions (the usual textbook ones, stated because implementations differ):

- SMA(n): arithmetic mean of the last n closes.
- EMA(n): smoothing 2/(n+1), seeded with the SMA of the first n values.
- RSI(14): Wilder's smoothing; the first average gain/loss is the simple mean of the first 14
  changes, then ``avg = (avg * 13 + current) / 14``. RSI is 100 when there were no losses.
- MACD(12, 26, 9): EMA12 - EMA26 of the closes; the signal line is the EMA9 of the MACD line;
  histogram = MACD - signal.
- Bollinger(20, 2): middle = SMA20, bands = middle +/- 2 population standard deviations.
- Volatility: sample standard deviation of the last 20 daily log returns, annualised by sqrt(252).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TRADING_DAYS = 252
MIN_HISTORY = 60  # SMA50 plus room for MACD's signal line to settle


class InsufficientDataError(ValueError):
    """The series is too short for the indicator asked for."""


def sma(values: Sequence[float], n: int) -> float:
    """Simple moving average of the last ``n`` values."""
    if n <= 0 or len(values) < n:
        raise InsufficientDataError(f"SMA({n}) needs {n} values, got {len(values)}")
    return math.fsum(values[-n:]) / n


def ema_series(values: Sequence[float], n: int) -> list[float]:
    """EMA(n) of ``values`` from index ``n-1`` on (seeded with the SMA of the first ``n``)."""
    if n <= 0 or len(values) < n:
        raise InsufficientDataError(f"EMA({n}) needs {n} values, got {len(values)}")
    alpha = 2.0 / (n + 1)
    current = math.fsum(values[:n]) / n
    out = [current]
    for value in values[n:]:
        current = alpha * value + (1 - alpha) * current
        out.append(current)
    return out


def rsi(values: Sequence[float], n: int = 14) -> float:
    """Wilder's relative strength index over the whole series (needs ``n + 1`` values)."""
    if len(values) < n + 1:
        raise InsufficientDataError(f"RSI({n}) needs {n + 1} values, got {len(values)}")
    changes = [b - a for a, b in zip(values, values[1:], strict=False)]
    gains = [max(c, 0.0) for c in changes]
    losses = [max(-c, 0.0) for c in changes]
    avg_gain = math.fsum(gains[:n]) / n
    avg_loss = math.fsum(losses[:n]) / n
    for gain, loss in zip(gains[n:], losses[n:], strict=True):
        avg_gain = (avg_gain * (n - 1) + gain) / n
        avg_loss = (avg_loss * (n - 1) + loss) / n
    if avg_loss == 0.0:
        return 50.0 if avg_gain == 0.0 else 100.0
    rs = avg_gain / avg_loss
    return 100.0 - 100.0 / (1.0 + rs)


@dataclass(frozen=True)
class Macd:
    """The last MACD line, signal line and histogram values."""

    macd: float
    signal: float
    histogram: float


def macd(values: Sequence[float], fast: int = 12, slow: int = 26, signal: int = 9) -> Macd:
    """MACD(fast, slow, signal) at the last value (needs ``slow + signal - 1`` values)."""
    if len(values) < slow + signal - 1:
        raise InsufficientDataError(
            f"MACD({fast},{slow},{signal}) needs {slow + signal - 1} values, got {len(values)}"
        )
    fast_ema = ema_series(values, fast)[slow - fast :]
    slow_ema = ema_series(values, slow)
    line = [f - s for f, s in zip(fast_ema, slow_ema, strict=True)]
    signal_line = ema_series(line, signal)
    return Macd(line[-1], signal_line[-1], line[-1] - signal_line[-1])


@dataclass(frozen=True)
class Bollinger:
    """Bollinger bands at the last value, with %B and bandwidth."""

    upper: float
    middle: float
    lower: float
    percent_b: float
    bandwidth: float


def bollinger(values: Sequence[float], n: int = 20, k: float = 2.0) -> Bollinger:
    """Bollinger bands (SMA ``n`` +/- ``k`` population standard deviations)."""
    middle = sma(values, n)
    window = values[-n:]
    std = math.sqrt(math.fsum((v - middle) ** 2 for v in window) / n)
    upper, lower = middle + k * std, middle - k * std
    width = upper - lower
    percent_b = (values[-1] - lower) / width if width else 0.5
    return Bollinger(upper, middle, lower, percent_b, width / middle if middle else 0.0)


def annualized_volatility(values: Sequence[float], window: int = 20) -> float:
    """Sample stdev of the last ``window`` daily log returns, times sqrt(252)."""
    if window < 2 or len(values) < window + 1:
        raise InsufficientDataError(
            f"volatility({window}) needs {window + 1} values, got {len(values)}"
        )
    tail = values[-(window + 1) :]
    returns = [math.log(b / a) for a, b in zip(tail, tail[1:], strict=False)]
    mean = math.fsum(returns) / len(returns)
    var = math.fsum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return math.sqrt(var) * math.sqrt(TRADING_DAYS)


@dataclass(frozen=True)
class Signal:
    """One reason behind a recommendation: +1 bullish, -1 bearish, 0 neutral."""

    indicator: str
    direction: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        label = {1: "bullish", -1: "bearish", 0: "neutral"}[self.direction]
        return {"indicator": self.indicator, "signal": label, "reason": self.reason}


@dataclass(frozen=True)
class Recommendation:
    """buy / hold / sell with a confidence in [0, 1] and the signals that led to it."""

    action: str
    confidence: float
    score: int
    signals: tuple[Signal, ...]


def recommend(
    close: float,
    sma20: float,
    sma50: float,
    rsi14: float,
    m: Macd,
    bands: Bollinger,
    volatility: float,
) -> Recommendation:
    """Score five signals (+1/-1/0 each) into buy (score >= 2), sell (<= -2) or hold.

    Confidence grows with agreement: 0.5 + 0.1 * |score| for buy/sell (0.55-1.0 before the
    volatility discount), 0.5 + 0.1 * (2 - |score|) for hold; it is then reduced by up to 30 %
    when annualised volatility exceeds 40 %, since noisy series make every signal less reliable.
    """
    signals: list[Signal] = []
    if close > sma50:
        signals.append(Signal("sma_50", 1, f"price {close:.2f} above the 50-day SMA {sma50:.2f}"))
    else:
        signals.append(
            Signal("sma_50", -1, f"price {close:.2f} at or below the 50-day SMA {sma50:.2f}")
        )
    if sma20 > sma50:
        signals.append(Signal("sma_cross", 1, "20-day SMA above the 50-day SMA (uptrend)"))
    elif sma20 < sma50:
        signals.append(Signal("sma_cross", -1, "20-day SMA below the 50-day SMA (downtrend)"))
    else:
        signals.append(Signal("sma_cross", 0, "20-day and 50-day SMAs equal"))
    if rsi14 < 30:
        signals.append(Signal("rsi_14", 1, f"RSI {rsi14:.1f} below 30 (oversold)"))
    elif rsi14 > 70:
        signals.append(Signal("rsi_14", -1, f"RSI {rsi14:.1f} above 70 (overbought)"))
    else:
        signals.append(Signal("rsi_14", 0, f"RSI {rsi14:.1f} between 30 and 70"))
    if m.histogram > 0:
        signals.append(Signal("macd", 1, "MACD above its signal line (bullish momentum)"))
    elif m.histogram < 0:
        signals.append(Signal("macd", -1, "MACD below its signal line (bearish momentum)"))
    else:
        signals.append(Signal("macd", 0, "MACD on its signal line"))
    if close < bands.lower:
        signals.append(Signal("bollinger", 1, "price below the lower Bollinger band"))
    elif close > bands.upper:
        signals.append(Signal("bollinger", -1, "price above the upper Bollinger band"))
    else:
        signals.append(Signal("bollinger", 0, "price inside the Bollinger bands"))
    score = sum(s.direction for s in signals)
    if score >= 2:
        action, confidence = "buy", 0.5 + 0.1 * abs(score)
    elif score <= -2:
        action, confidence = "sell", 0.5 + 0.1 * abs(score)
    else:
        action, confidence = "hold", 0.5 + 0.1 * (2 - abs(score))
    discount = min(0.3, max(0.0, volatility - 0.4))
    confidence = round(min(1.0, confidence) * (1 - discount), 2)
    return Recommendation(action, confidence, score, tuple(signals))


def analyse(closes: Sequence[float]) -> dict[str, Any]:
    """All indicators and the recommendation for a close series (oldest first), as JSON data."""
    if len(closes) < MIN_HISTORY:
        raise InsufficientDataError(f"analysis needs {MIN_HISTORY} closes, got {len(closes)}")
    close = closes[-1]
    sma20, sma50 = sma(closes, 20), sma(closes, 50)
    rsi14 = rsi(closes, 14)
    m = macd(closes)
    bands = bollinger(closes)
    vol = annualized_volatility(closes, 20)
    rec = recommend(close, sma20, sma50, rsi14, m, bands, vol)
    return {
        "price": {
            "close": round(close, 4),
            "previous_close": round(closes[-2], 4),
            "change_pct": round((close / closes[-2] - 1) * 100, 4),
        },
        "indicators": {
            "sma_20": round(sma20, 4),
            "sma_50": round(sma50, 4),
            "rsi_14": round(rsi14, 4),
            "macd": {
                "macd": round(m.macd, 4),
                "signal": round(m.signal, 4),
                "histogram": round(m.histogram, 4),
            },
            "bollinger": {
                "upper": round(bands.upper, 4),
                "middle": round(bands.middle, 4),
                "lower": round(bands.lower, 4),
                "percent_b": round(bands.percent_b, 4),
                "bandwidth": round(bands.bandwidth, 4),
            },
            "volatility": {"annualized": round(vol, 4), "window_days": 20},
        },
        "recommendation": {
            "action": rec.action,
            "confidence": rec.confidence,
            "score": rec.score,
            "signals": [s.as_dict() for s in rec.signals],
        },
    }
