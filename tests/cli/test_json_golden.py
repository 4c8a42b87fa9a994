"""The ``-o json`` documents of ``scale status``, ``deploy --dry-run`` and ``history``, golden.

Each scenario drives the emulator (real HTTP, a kubeconfig) into a fixed state and compares the
document on stdout, byte for byte, with a reviewed file in ``golden/``. Only timestamps (the
emulator's clock, the release records' times) are masked, as ``<time>``; everything else must match
exactly, so a refactor that changes a key, an order, a value or the layout fails here.

The config is ``tests/core/golden/tradewise.yaml`` (a frozen copy of the default), so a change to
the repo's config does not move these files. After an intended change of a document:
UPDATE_GOLDEN=1 pytest tests/cli/test_json_golden.py, and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.k8s_emulator import Emulator
from tradewise_ops.cli.main import app
from tradewise_ops.core.config import load_config

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests" / "core" / "golden" / "tradewise.yaml"
GOLDEN = Path(__file__).parent / "golden"
NS = "tradewise-ai"
API_HPA, WORKER_HPA = "tradewise-api-hpa", "tradewise-worker-hpa"
_TIME = re.compile(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)"')


@pytest.fixture(autouse=True)
def _fixed_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "golden")
    monkeypatch.delenv("TRADEWISE_ENV", raising=False)
    monkeypatch.delenv("TRADEWISE_CONFIG", raising=False)


def run(*args: str) -> str:
    result = CliRunner().invoke(app, ["--config", str(CONFIG), *args])
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result.stdout


def check(name: str, stdout: str) -> None:
    text = _TIME.sub('"<time>"', stdout)
    golden = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), f"{name}: the -o json document changed"


def settle(emu: Emulator) -> None:
    """Let the auto controller finish, then stop it: what follows reads a still cluster."""

    def ready() -> bool:
        for kind in ("Deployment", "StatefulSet"):
            for obj in emu.list(kind, NS):
                status = obj.get("status") or {}
                want = (obj.get("spec") or {}).get("replicas", 1)
                if status.get("readyReplicas") != want:
                    return False
                if status.get("observedGeneration") != obj["metadata"].get("generation"):
                    return False
        return True

    emu.wait_for(ready, timeout=20, what="every workload ready")
    emu.controllers.stop()


def test_deploy_dry_run_first_deploy(emulator: Emulator, kubeconfig: Path) -> None:
    doc = run("deploy", "staging", "--tag", "v1", "--dry-run", "-o", "json")
    check("deploy_dry_run_first", doc)


def test_deploy_dry_run_upgrade_keeping_a_profile(emulator: Emulator, kubeconfig: Path) -> None:
    emulator.controllers.auto(delay=0.01)
    run("deploy", "staging", "--tag", "v1", "--timeout", "30s")
    run("scale", "traffic", "high", "--env", "staging", "--yes")
    settle(emulator)
    check(
        "deploy_dry_run_upgrade_held",
        run("deploy", "staging", "--tag", "v2", "--dry-run", "-o", "json"),
    )
    check(
        "deploy_dry_run_upgrade_reset",
        run("deploy", "staging", "--tag", "v2", "--dry-run", "--reset-scaling", "-o", "json"),
    )


def test_deploy_dry_run_blue_green(emulator: Emulator, kubeconfig: Path) -> None:
    emulator.controllers.auto(delay=0.01)
    run("deploy", "staging", "--tag", "v1", "--timeout", "30s")
    settle(emulator)
    check(
        "deploy_dry_run_blue_green",
        run(
            "deploy", "staging", "--tag", "v2", "--strategy", "blue-green", "--dry-run",
            "-o", "json",
        ),
    )  # fmt: skip
    emulator.controllers.auto(delay=0.01)
    run(
        "deploy", "staging", "--tag", "v2", "--strategy", "blue-green", "--timeout", "30s",
        "--no-verify",
    )  # fmt: skip
    settle(emulator)
    check(  # from the live slot (blue) into the other one
        "deploy_dry_run_blue_green_again",
        run("deploy", "staging", "--tag", "v3", "--dry-run", "-o", "json"),
    )


def test_history(emulator: Emulator, kubeconfig: Path) -> None:
    emulator.controllers.auto(delay=0.01)
    run("deploy", "staging", "--tag", "v1", "--timeout", "30s")
    run(
        "deploy", "staging", "--tag", "v2", "--strategy", "blue-green", "--timeout", "30s",
        "--no-verify",
    )  # fmt: skip
    run("rollback", "staging", "--to-revision", "1", "--timeout", "30s")
    settle(emulator)
    check("history", run("history", "staging", "-o", "json"))


def test_scale_status(emulator: Emulator, kubeconfig: Path) -> None:
    from tradewise_ops.core.render import render_environment

    config = load_config(CONFIG, environ={})
    for obj in render_environment(config, "prod", tag="v1.0"):
        if obj["kind"] in ("Deployment", "HorizontalPodAutoscaler"):
            emulator.put(obj)
    emulator.controllers.set_hpa(NS, API_HPA, 3)
    emulator.controllers.set_hpa(NS, WORKER_HPA, 2)
    for obj in emulator.list("Deployment", NS):
        emulator.controllers.deployment_progress(NS, obj["metadata"]["name"])
    run("scale", "traffic", "high", "--env", "prod", "--yes")
    hpa = emulator.get("HorizontalPodAutoscaler", NS, API_HPA)
    assert hpa is not None
    hpa["status"] = {
        "currentReplicas": 10,
        "desiredReplicas": 10,
        "lastScaleTime": "2026-01-01T00:00:00Z",
        "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 41}}}
        ],
    }
    emulator.store.replace(
        emulator.resource("HorizontalPodAutoscaler"), NS, API_HPA, hpa, status_only=True
    )
    emulator.controllers.event(
        NS, "HorizontalPodAutoscaler", API_HPA, "SuccessfulRescale",
        "New size: 10; reason: All metrics below target", type="Normal",
    )  # fmt: skip
    check("scale_status", run("scale", "status", "--env", "prod", "-o", "json"))
