"""``deploy`` after ``tradewise push``: the images go out pinned by the recorded digests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.k8s_emulator import Emulator
from tradewise_ops.adapters.images import record_digests
from tradewise_ops.cli.main import app

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "tradewise.yaml")
NS = "tradewise-ai"
DIGEST_API = "sha256:" + "c" * 64
DIGEST_WORKER = "sha256:" + "d" * 64
REGISTRY = "registry.example.com/tradewise"  # staging's, in tradewise.yaml


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["--config", CONFIG, *args])


def image_of(emu: Emulator, name: str) -> str:
    obj = emu.get("Deployment", NS, name)
    assert obj is not None, name
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


@pytest.fixture
def pushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The record `tradewise push v2 --env staging` leaves (written as push writes it)."""
    record = tmp_path / "images.json"
    monkeypatch.setenv("TRADEWISE_IMAGES_FILE", str(record))
    monkeypatch.delenv("TRADEWISE_REGISTRY", raising=False)
    record_digests("staging", "v2", {"api": DIGEST_API, "worker": DIGEST_WORKER}, record, REGISTRY)
    return record


def test_deploy_after_push_pins_by_digest_and_says_so(
    emulator: Emulator, kubeconfig: Path, pushed: Path
) -> None:
    emulator.controllers.auto(delay=0.01)
    result = run("deploy", "staging", "--tag", "v2", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert image_of(emulator, "tradewise-api-deployment") == f"{REGISTRY}/tradewise-ai@{DIGEST_API}"
    assert image_of(emulator, "tradewise-worker-deployment") == (
        f"{REGISTRY}/tradewise-ai-worker@{DIGEST_WORKER}"
    )
    assert "pinning api@sha256:cccccccccccc..., worker@sha256:dddddddddddd..." in result.stderr
    assert json.loads(result.stdout)["tag"] == "v2"
    unpinned = run("deploy", "staging", "--tag", "v2", "--no-pin")
    assert unpinned.exit_code == 0, unpinned.stderr
    assert image_of(emulator, "tradewise-api-deployment") == f"{REGISTRY}/tradewise-ai:v2"
    assert "pinning" not in unpinned.stderr


def test_deploy_does_not_pin_a_digest_of_another_registry(
    emulator: Emulator, kubeconfig: Path, pushed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.controllers.auto(delay=0.01)
    monkeypatch.setenv("TRADEWISE_REGISTRY", "mirror.example.com/tw")
    result = run("deploy", "staging", "--tag", "v2")
    assert result.exit_code == 0, result.stderr
    assert image_of(emulator, "tradewise-api-deployment") == "mirror.example.com/tw/tradewise-ai:v2"
    assert f"it was pushed to {REGISTRY}, not mirror.example.com/tw" in result.stderr
