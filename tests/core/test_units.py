"""Kubernetes quantities: one parser for CPU, memory, HPA metric values and policy checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tradewise_ops.core.units import (
    cpu_millicores,
    memory_bytes,
    parse_quantity,
    quantity_value,
)


@pytest.mark.parametrize(
    ("text", "amount", "suffix"),
    [
        ("500m", Decimal("0.5"), "m"),
        ("2Gi", Decimal(2 * 2**30), "Gi"),
        ("1.5", Decimal("1.5"), ""),
        (".5", Decimal("0.5"), ""),
        ("1.", Decimal(1), ""),
        ("+2k", Decimal(2000), "k"),
        ("-3", Decimal(-3), ""),
        ("1e3", Decimal(1000), "e3"),
        ("25E-2", Decimal("0.25"), "E-2"),
        ("100n", Decimal("1e-7"), "n"),
        ("5u", Decimal("5e-6"), "u"),
        (" 7M ", Decimal(7_000_000), "M"),
        (70, Decimal(70), ""),
        (0.25, Decimal("0.25"), ""),
    ],
)
def test_parse_quantity_follows_the_kubernetes_grammar(text: Any, amount: Decimal, suffix: str):
    parsed = parse_quantity(text)
    assert parsed is not None
    assert parsed.amount == amount
    assert parsed.suffix == suffix


@pytest.mark.parametrize(
    "text", [None, True, "", "abc", "5x", "1e3Ki", "1.5.2", "Mi", "2 Gi", "1mi", "e3", "++1", "."]
)
def test_parse_quantity_rejects_what_kubernetes_rejects(text: Any) -> None:
    assert parse_quantity(text) is None


def test_quantity_value_is_a_float_or_none() -> None:
    assert quantity_value("750m") == pytest.approx(0.75)
    assert quantity_value(70) == 70.0
    assert quantity_value("512Mi") == 512 * 2**20
    assert quantity_value("bogus") is None
    assert quantity_value(False) is None


@pytest.mark.parametrize(
    ("text", "millicores"),
    [("500m", 500), ("1", 1000), ("0.25", 250), (2, 2000), ("1.0005", 1000), ("0.5m", 0)],
)
def test_cpu_millicores(text: Any, millicores: int) -> None:
    assert cpu_millicores(text) == millicores


@pytest.mark.parametrize("text", ["lots", "-1", "1k", "1e3m", "2Gi", "500 m"])
def test_cpu_takes_cores_or_millicores_only(text: str) -> None:
    assert cpu_millicores(text) is None


@pytest.mark.parametrize(
    ("text", "size"),
    [("512Mi", 512 * 2**20), ("2Gi", 2 * 2**30), ("1G", 10**9), ("1k", 1000), ("100", 100)],
)
def test_memory_bytes(text: str, size: int) -> None:
    assert memory_bytes(text) == size


@pytest.mark.parametrize("text", ["512m", "512 MB", "1e9", "-1Gi", "5x", "2000u"])
def test_memory_refuses_fractions_of_a_byte_exponents_and_junk(text: str) -> None:
    assert memory_bytes(text) is None
