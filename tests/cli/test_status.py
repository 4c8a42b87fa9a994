"""``tradewise status``, ``maintenance`` and ``diff`` against the emulator over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.k8s_emulator import Emulator
from tradewise_ops.cli.main import app

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "tradewise.yaml")
NS = "tradewise-ai"
API = "tradewise-api-deployment"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def run(*args: str, config: str = CONFIG) -> Result:
    return CliRunner().invoke(app, ["--config", config, *args])


@pytest.fixture
def deployed(emulator: Emulator, kubeconfig: Path) -> Emulator:
    emulator.controllers.auto(delay=0.01)
    result = run("deploy", "staging", "--tag", "v1")
    assert result.exit_code == 0, result.stderr
    return emulator


def writes(emu: Emulator) -> list[str]:
    return [
        f"{r.method} {r.path}"
        for r in emu.requests
        if r.method in WRITES and r.query.get("dryRun") != "All"
    ]


# -- status ------------------------------------------------------------------------------------
def test_status_shows_release_workloads_hpas_and_warnings(deployed: Emulator) -> None:
    deployed.controllers.event(NS, "Pod", f"{API}-x", "BackOff", "restarting failed container")
    result = run("status", "staging", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["release"]["revision"] == 1 and doc["release"]["tag"] == "v1"
    assert doc["healthy"] is True and doc["maintenance"] is False
    names = {w["name"] for w in doc["workloads"]}
    assert {API, "postgres", "redis"} <= names
    api = next(w for w in doc["workloads"] if w["name"] == API)
    assert api["image"].endswith(":v1") and api["state"] == "ready"
    assert {h["name"] for h in doc["hpas"]} == {"tradewise-api-hpa", "tradewise-worker-hpa"}
    assert doc["warnings"][-1]["reason"] == "BackOff"
    table = run("status", "staging")
    assert "revision 1 (v1)" in table.stderr and "tradewise-api-hpa" in table.stdout
    assert "restarting failed container" in table.stderr


def test_status_of_an_unhealthy_workload(deployed: Emulator) -> None:
    deployed.controllers.fail_pods(NS, API, "CrashLoopBackOff")
    doc = json.loads(run("status", "staging", "-o", "json").stdout)
    api = next(w for w in doc["workloads"] if w["name"] == API)
    assert doc["healthy"] is False and api["failure"] == "CrashLoopBackOff"


def test_status_without_releases(emulator: Emulator, kubeconfig: Path) -> None:
    result = run("status", "staging", "-o", "json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["release"] is None and doc["workloads"] == [] and doc["healthy"] is False


def test_status_of_a_local_environment_lists_its_processes(tmp_path: Path) -> None:
    raw = yaml.safe_load(Path(CONFIG).read_text())
    raw["environments"]["local"]["local"]["state_dir"] = str(tmp_path / "state")
    config = tmp_path / "tradewise.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = run("status", "local", "-o", "json", config=str(config))
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["kind"], doc["processes"], doc["healthy"]) == ("local", [], False)
    assert run("history", "local").exit_code == 2  # release records are a cluster thing


# -- maintenance -------------------------------------------------------------------------------
def test_maintenance_on_and_off(deployed: Emulator) -> None:
    def backend() -> str:
        ingress = deployed.get("Ingress", NS, "tradewise-ingress")
        assert ingress is not None
        rule = ingress["spec"]["rules"][0]["http"]["paths"][0]
        return str(rule["backend"]["service"]["name"])

    assert backend() == "tradewise-api-service"
    on = run("maintenance", "on", "staging")
    assert on.exit_code == 0, on.stderr
    assert backend() == "tradewise-maintenance-service"
    again = run("maintenance", "on", "staging")
    assert again.exit_code == 0 and "already on" in again.stdout
    # a deploy during maintenance keeps the maintenance page
    redeploy = run("deploy", "staging", "--tag", "v2")
    assert redeploy.exit_code == 0 and "maintenance is on" in redeploy.stderr
    assert backend() == "tradewise-maintenance-service"
    status = json.loads(run("status", "staging", "-o", "json").stdout)
    assert status["maintenance"] is True
    off = run("maintenance", "off", "staging")
    assert off.exit_code == 0
    assert backend() == "tradewise-api-service"


def test_maintenance_needs_a_deployed_page_and_a_valid_mode(
    emulator: Emulator, kubeconfig: Path
) -> None:
    missing = run("maintenance", "on", "staging")
    assert missing.exit_code == 1 and "not deployed" in missing.stderr
    assert run("maintenance", "sideways", "staging").exit_code == 2


def test_maintenance_in_prod_asks_first(deployed: Emulator) -> None:
    result = run("maintenance", "on", "prod")
    assert result.exit_code == 2 and "--yes" in result.stderr


# -- diff --------------------------------------------------------------------------------------
def test_diff_exit_codes_and_kubectl_style(deployed: Emulator, tmp_path: Path) -> None:
    deployed.reset_requests()
    same = run("diff", "staging")
    assert same.exit_code == 0, same.stdout + same.stderr
    assert same.stdout == "" and "up to date" in same.stderr
    changed = run("diff", "staging", "--tag", "v2")
    assert changed.exit_code == 1
    header = f"diff -u -N /tmp/LIVE/apps.v1.Deployment.{NS}.{API} /tmp/MERGED/apps.v1.Deployment"
    assert header in changed.stdout
    assert "-        image: registry.example.com/tradewise/tradewise-ai:v1" in changed.stdout
    assert "+        image: registry.example.com/tradewise/tradewise-ai:v2" in changed.stdout
    assert writes(deployed) == []  # diff changes nothing
    raw = yaml.safe_load(Path(CONFIG).read_text())
    raw["schedules"] = []
    smaller = tmp_path / "tradewise.yaml"
    smaller.write_text(yaml.safe_dump(raw))
    pruned = run("diff", "staging", "-o", "json", config=str(smaller))
    assert pruned.exit_code == 1
    assert "CronJob/tradewise-scale-market-open (prune)" in json.loads(pruned.stdout)["changed"]


def test_diff_errors_exit_above_1(deployed: Emulator) -> None:
    deployed.deny("get", "deployments")
    result = run("diff", "staging")
    assert result.exit_code == 2 and "RBAC refused to get" in result.stderr
