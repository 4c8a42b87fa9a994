"""Pytest fixtures for the emulator; a test module enables them with
``pytest_plugins = ["tests.k8s_emulator.fixtures"]``.

- ``emulator``: a started ``Emulator`` (namespaces ``default`` and ``tradewise-ai``, Prometheus
  operator kinds served), stopped after the test.
- ``kubeconfig``: a kubeconfig for it in ``tmp_path`` with contexts ``emulator`` (current),
  ``staging`` and ``prod``; ``KUBECONFIG`` points at it for the test.
- ``bare_emulator`` / ``bare_kubeconfig``: the same without ``monitoring.coreos.com``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s_emulator.emulator import Emulator

CONTEXTS = ("emulator", "staging", "prod")


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator(namespaces=("default", "tradewise-ai")).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def kubeconfig(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = emulator.write_kubeconfig(tmp_path / "kubeconfig", contexts=CONTEXTS)
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
def bare_emulator() -> Iterator[Emulator]:
    emu = Emulator(namespaces=("default", "tradewise-ai"), prometheus_operator=False).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def bare_kubeconfig(
    bare_emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    path = bare_emulator.write_kubeconfig(tmp_path / "kubeconfig", contexts=CONTEXTS)
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path
