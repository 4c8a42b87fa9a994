"""The deploy scenarios of ``tests/cli/test_deploy.py`` against a real cluster (kind), opt-in.

Fault injection (409/500, dropped watches) exists only in the emulator; here the cluster is real:
first deploy, upgrade, a failed rollout (an image tag that does not exist: ImagePullBackOff) with
and without ``--atomic``, rollback to a chosen revision, prune, dry-run, RBAC 403 (a ServiceAccount
token without rights), an unreachable cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.helpers import free_port
from tradewise_ops.cli.main import app

pytestmark = pytest.mark.kind

API = "tradewise-api-deployment"


def run(kind: dict[str, Any], *args: str, config: str | None = None) -> Result:
    return CliRunner().invoke(app, ["--config", config or kind["config"], *args])


def _gw(kind: dict[str, Any]) -> Any:
    from tradewise_ops.adapters.kube import KubeGateway

    return KubeGateway.from_kubeconfig(context=kind["context"], namespace=kind["namespace"])


def _image(kind: dict[str, Any]) -> str:
    dep = _gw(kind).get("Deployment", API)
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def test_first_deploy_upgrade_history(kind: dict[str, Any]) -> None:
    first = run(kind, "deploy", "kind", "--tag", kind["tag"], "--timeout", "5m")
    assert first.exit_code == 0, first.stderr
    assert _image(kind).endswith(f":{kind['tag']}")
    second = run(kind, "deploy", "kind", "--tag", kind["tag2"], "--timeout", "5m", "-o", "json")
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout)["status"] == "deployed"
    rows = json.loads(run(kind, "history", "kind", "-o", "json").stdout)
    assert [(r["revision"], r["status"]) for r in rows] == [(1, "superseded"), (2, "deployed")]


def test_failed_rollout_with_and_without_atomic(kind: dict[str, Any]) -> None:
    assert run(kind, "deploy", "kind", "--tag", kind["tag"], "--timeout", "5m").exit_code == 0
    failed = run(kind, "deploy", "kind", "--tag", "does-not-exist-0", "--timeout", "3m")
    assert failed.exit_code == 1
    assert "ImagePullBackOff" in failed.stderr or "ErrImagePull" in failed.stderr
    atomic = run(kind, "deploy", "kind", "--tag", "does-not-exist-1", "--atomic", "--timeout", "3m")
    assert atomic.exit_code == 1 and "rolled back as revision" in atomic.stderr
    assert _image(kind).endswith(f":{kind['tag']}")


def test_rollback_to_a_chosen_revision(kind: dict[str, Any]) -> None:
    for tag in (kind["tag"], kind["tag2"]):
        assert run(kind, "deploy", "kind", "--tag", tag, "--timeout", "5m").exit_code == 0
    back = run(kind, "rollback", "kind", "--to-revision", "1", "--timeout", "5m")
    assert back.exit_code == 0, back.stderr
    assert _image(kind).endswith(f":{kind['tag']}")


def test_prune_and_dry_run(kind: dict[str, Any], tmp_path: Path) -> None:
    dry = run(kind, "deploy", "kind", "--tag", kind["tag"], "--dry-run", "-o", "json")
    assert dry.exit_code == 0 and json.loads(dry.stdout)["counts"]["create"] > 20
    assert _gw(kind).find("Deployment", API) is None  # dry-run changed nothing
    assert run(kind, "deploy", "kind", "--tag", kind["tag"], "--timeout", "5m").exit_code == 0
    raw = yaml.safe_load(Path(kind["config"]).read_text())
    raw["schedules"] = []
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(yaml.safe_dump(raw))
    pruned = run(kind, "deploy", "kind", "--tag", kind["tag"], "-o", "json", config=str(smaller))
    assert pruned.exit_code == 0, pruned.stderr
    assert "CronJob/tradewise-scale-market-open" in json.loads(pruned.stdout)["pruned"]
    assert _gw(kind).find("CronJob", "tradewise-scale-market-open") is None


def test_rbac_forbidden(kind: dict[str, Any], tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("needs kubectl")
    ns = kind["namespace"]
    base = [kubectl, "--context", kind["context"]]
    subprocess.run([*base, "create", "namespace", ns], check=False, capture_output=True)
    subprocess.run([*base, "-n", ns, "create", "serviceaccount", "nobody"], check=True)
    token = subprocess.run(
        [*base, "-n", ns, "create", "token", "nobody"], check=True, capture_output=True, text=True
    ).stdout.strip()
    view = json.loads(
        subprocess.run(
            [*base, "config", "view", "--raw", "--minify", "-o", "json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    view["users"] = [{"name": "nobody", "user": {"token": token}}]
    view["contexts"][0]["context"]["user"] = "nobody"
    view["contexts"][0]["name"] = kind["context"]
    kc = tmp_path / "nobody.kubeconfig"
    kc.write_text(json.dumps(view))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tradewise_ops",
            "--config",
            kind["config"],
            "deploy",
            "kind",
            "--tag",
            kind["tag"],
        ],
        env={**os.environ, "KUBECONFIG": str(kc)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "RBAC refused" in result.stderr


def test_unreachable_cluster(kind: dict[str, Any], tmp_path: Path, monkeypatch: Any) -> None:
    kc = tmp_path / "kc"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": kind["context"], "context": {"cluster": "c", "user": "u"}}],
                "current-context": kind["context"],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kc))
    result = run(kind, "deploy", "kind", "--tag", kind["tag"])
    assert result.exit_code == 3 and "cannot reach" in result.stderr
