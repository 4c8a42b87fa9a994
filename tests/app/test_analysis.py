"""The indicator math against values computed by hand (derivations in the comments)."""

from __future__ import annotations

import math

import pytest

from app.analysis import (
    MIN_HISTORY,
    Bollinger,
    InsufficientDataError,
    Macd,
    analyse,
    annualized_volatility,
    bollinger,
    ema_series,
    macd,
    recommend,
    rsi,
    sma,
)


def test_sma_uses_the_last_n_values() -> None:
    assert sma(list(range(1, 21)), 20) == pytest.approx(10.5)
    assert sma(list(range(1, 11)), 5) == pytest.approx(8.0)  # (6+7+8+9+10)/5
    with pytest.raises(InsufficientDataError):
        sma([1.0, 2.0], 3)


def test_ema_is_seeded_with_the_sma() -> None:
    # n=3: alpha=0.5, seed mean(1,2,3)=2; then 0.5*4+0.5*2=3; 0.5*5+0.5*3=4
    assert ema_series([1, 2, 3, 4, 5], 3) == pytest.approx([2.0, 3.0, 4.0])


def test_wilder_rsi_small_series() -> None:
    # n=3, changes +1 -1 +2 | +1: first averages gain (1+0+2)/3=1, loss (0+1+0)/3=1/3;
    # Wilder step: gain (1*2+1)/3=1, loss (1/3*2+0)/3=2/9; RS=4.5; RSI=100-100/5.5
    assert rsi([10, 11, 10, 12, 13], 3) == pytest.approx(100 - 100 / 5.5)


def test_wilder_rsi_reference_series() -> None:
    # Wilder's 14-day RSI on the classic StockCharts closes: 14 changes with gains summing to
    # 3.34 and losses to 1.40 -> RS = (3.34/14)/(1.40/14) = 2.385714 -> RSI = 70.4641
    # (StockCharts prints 70.53 because it rounds RS to 2.39 first).
    closes = [44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08, 45.89, 46.03,
              45.61, 46.28, 46.28]  # fmt: skip
    assert rsi(closes) == pytest.approx(100 - 100 / (1 + 3.34 / 1.40), abs=1e-9)
    assert rsi(closes) == pytest.approx(70.4641, abs=1e-4)
    # next close 46.00: change -0.28 -> gain 0.238571*13/14, loss (0.1*13+0.28)/14
    gain, loss = 3.34 / 14 * 13 / 14, (0.1 * 13 + 0.28) / 14
    assert rsi([*closes, 46.00]) == pytest.approx(100 - 100 / (1 + gain / loss), abs=1e-9)


def test_rsi_edge_cases() -> None:
    assert rsi(list(range(1, 30))) == 100.0  # only gains
    assert rsi([5.0] * 20) == 50.0  # no movement
    assert rsi(list(range(30, 1, -1))) == pytest.approx(0.0)
    with pytest.raises(InsufficientDataError):
        rsi([1.0] * 14)


def test_macd_by_hand() -> None:
    # fast=2 (alpha 2/3, seed 1.5), slow=3 (alpha 1/2, seed 7/3), signal=2 on 1,2,4,8,16,32:
    # fast: 1.5, 19/6, 115/18, 691/54, 4147/162; slow: 7/3, 31/6, 127/12, 511/24
    fast = [3 / 2, 19 / 6, 115 / 18, 691 / 54, 4147 / 162]
    slow = [7 / 3, 31 / 6, 127 / 12, 511 / 24]
    assert ema_series([1, 2, 4, 8, 16, 32], 2) == pytest.approx(fast)
    assert ema_series([1, 2, 4, 8, 16, 32], 3) == pytest.approx(slow)
    line = [f - s for f, s in zip(fast[1:], slow, strict=True)]
    signal = (line[0] + line[1]) / 2
    for value in line[2:]:
        signal = 2 / 3 * value + 1 / 3 * signal
    result = macd([1, 2, 4, 8, 16, 32], fast=2, slow=3, signal=2)
    assert result.macd == pytest.approx(line[-1])  # 4.30710...
    assert result.macd == pytest.approx(4.3071, abs=1e-4)
    assert result.signal == pytest.approx(signal)  # 3.47737...
    assert result.signal == pytest.approx(3.4774, abs=1e-4)
    assert result.histogram == pytest.approx(line[-1] - signal)


def test_macd_of_a_straight_line_is_constant() -> None:
    # EMA of a linear ramp lags by (n-1)/2 steps: EMA12 - EMA26 = (25-11)/2 = 7 slope units
    result = macd([float(i) for i in range(100)])
    assert result.macd == pytest.approx(7.0)
    assert result.signal == pytest.approx(7.0)
    assert result.histogram == pytest.approx(0.0, abs=1e-9)


def test_bollinger_population_std() -> None:
    # 1..20: mean 10.5, population variance (20^2-1)/12 = 33.25
    bands = bollinger([float(i) for i in range(1, 21)])
    std = math.sqrt(33.25)
    assert bands.middle == pytest.approx(10.5)
    assert bands.upper == pytest.approx(10.5 + 2 * std)
    assert bands.lower == pytest.approx(10.5 - 2 * std)
    assert bands.percent_b == pytest.approx((20 - bands.lower) / (4 * std))
    assert bands.bandwidth == pytest.approx(4 * std / 10.5)


def test_annualized_volatility() -> None:
    # log returns alternate +r/-r: mean 0, sample variance 20 r^2 / 19, times sqrt(252)
    r = 0.01
    closes = [100.0 * math.exp(r * (i % 2)) for i in range(21)]
    expected = r * math.sqrt(20 / 19) * math.sqrt(252)
    assert annualized_volatility(closes) == pytest.approx(expected)
    assert expected == pytest.approx(0.16287, abs=1e-5)
    assert annualized_volatility([50.0] * 30) == 0.0


def test_recommendation_rules() -> None:
    wide = Bollinger(upper=120, middle=100, lower=80, percent_b=0.5, bandwidth=0.4)
    up = Macd(1.0, 0.5, 0.5)
    down = Macd(-1.0, -0.5, -0.5)
    buy = recommend(110, 105, 100, 50, up, wide, 0.2)  # above SMA50, 20>50, MACD up
    assert (buy.action, buy.score, buy.confidence) == ("buy", 3, 0.8)
    assert [s.indicator for s in buy.signals if s.direction == 1] == ["sma_50", "sma_cross", "macd"]
    sell = recommend(90, 95, 100, 75, down, wide, 0.2)  # all bearish + overbought
    assert (sell.action, sell.score, sell.confidence) == ("sell", -4, 0.9)
    hold = recommend(110, 95, 100, 50, down, wide, 0.2)  # +1 -1 0 -1 0 = -1
    assert (hold.action, hold.score, hold.confidence) == ("hold", -1, 0.6)
    # annualised volatility 60 % discounts confidence by 20 %: 0.8 * 0.8 = 0.64
    noisy = recommend(110, 105, 100, 50, up, wide, 0.6)
    assert noisy.confidence == pytest.approx(0.64)
    oversold = recommend(70, 95, 100, 20, down, wide, 0.2)  # -1 -1 +1 -1 +1 = -1
    assert oversold.action == "hold"
    assert {s.indicator: s.as_dict()["signal"] for s in oversold.signals}["rsi_14"] == "bullish"


def test_analyse_document() -> None:
    closes = [100 * math.exp(0.001 * i + 0.02 * math.sin(i / 3)) for i in range(120)]
    doc = analyse(closes)
    assert doc["price"]["close"] == pytest.approx(closes[-1], abs=1e-4)
    assert doc["indicators"]["sma_20"] == pytest.approx(sma(closes, 20), abs=1e-4)
    assert doc["indicators"]["rsi_14"] == pytest.approx(rsi(closes), abs=1e-4)
    assert doc["recommendation"]["action"] in {"buy", "hold", "sell"}
    assert 0 <= doc["recommendation"]["confidence"] <= 1
    assert len(doc["recommendation"]["signals"]) == 5
    with pytest.raises(InsufficientDataError):
        analyse(closes[: MIN_HISTORY - 1])
