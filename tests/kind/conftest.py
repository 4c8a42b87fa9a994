"""The opt-in real-cluster suite (kind): skipped unless asked for.

    pytest tests/kind --kind [--kind-context kind-kind] [--kind-registry localhost:5001/tradewise]
                             [--kind-tag v1]      (or TRADEWISE_KIND=1 and TRADEWISE_KIND_*)

Needs a running cluster (``kind create cluster``), its context in the kubeconfig, and the API and
worker images of ``--kind-tag`` (and of ``--kind-tag2`` for the upgrade) reachable from the cluster
(``tradewise build TAG --push`` to a registry the cluster pulls from, or ``kind load``).
Each test uses its own namespace and deletes it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kind", "real-cluster suite (opt-in)")
    group.addoption("--kind", action="store_true", help="run the real-cluster (kind) suite")
    group.addoption("--kind-context", default=os.environ.get("TRADEWISE_KIND_CONTEXT", "kind-kind"))
    group.addoption(
        "--kind-registry",
        default=os.environ.get("TRADEWISE_KIND_REGISTRY", "localhost:5001/tradewise"),
    )
    group.addoption("--kind-tag", default=os.environ.get("TRADEWISE_KIND_TAG", "v1"))
    group.addoption("--kind-tag2", default=os.environ.get("TRADEWISE_KIND_TAG2", "v2"))


def _asked(config: pytest.Config) -> bool:
    try:
        if config.getoption("--kind"):
            return True
    except ValueError:
        pass
    return os.environ.get("TRADEWISE_KIND") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _asked(config):
        return
    skip = pytest.mark.skip(reason="real-cluster suite: run with `pytest tests/kind --kind`")
    for item in items:
        if "kind" in item.keywords:
            item.add_marker(skip)


def _option(config: pytest.Config, name: str, env: str, default: str) -> str:
    try:
        return str(config.getoption(name))
    except ValueError:
        return os.environ.get(env, default)


@pytest.fixture
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A config with one environment ``kind`` in a fresh namespace of the real cluster."""
    cfg = request.config
    context = _option(cfg, "--kind-context", "TRADEWISE_KIND_CONTEXT", "kind-kind")
    namespace = f"tradewise-kind-{uuid.uuid4().hex[:6]}"
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text())
    raw["environments"]["kind"] = {
        "kind": "kubernetes",
        "context": context,
        "namespace": namespace,
        "registry": _option(
            cfg, "--kind-registry", "TRADEWISE_KIND_REGISTRY", "localhost:5001/tradewise"
        ),
        "domain": "tradewise.kind.test",
        "components": {
            "api": {"replicas": 1, "autoscaling": {"min": 1, "max": 2}},
            "worker": {"replicas": 1, "autoscaling": {"min": 1, "max": 2}},
        },
    }
    config_path = tmp_path / "tradewise.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    info = {
        "config": str(config_path),
        "context": context,
        "namespace": namespace,
        "tag": _option(cfg, "--kind-tag", "TRADEWISE_KIND_TAG", "v1"),
        "tag2": _option(cfg, "--kind-tag2", "TRADEWISE_KIND_TAG2", "v2"),
    }
    yield info
    from tradewise_ops.adapters.kube import KubeGateway

    gw = KubeGateway.from_kubeconfig(context=context, namespace=namespace)
    gw.delete("Namespace", namespace)
