"""The predictive-scaling CronJobs' command, run as the CronJob runs it, with only its Role.

The emulator refuses every verb the rendered ``tradewise-scaler`` Role does not grant, so these
tests fail if ``scale traffic`` ever needs more than the Role gives (a list, a PUT, another kind).
As in the pod, there is no ``./tradewise.yaml`` in the working directory: the packaged default
config is used, and the namespace comes from the CronJob's ``TRADEWISE_NAMESPACE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.k8s_emulator import Emulator
from tradewise_ops.cli.main import app
from tradewise_ops.core.config import load_config

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
NS = "tradewise-ai"
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
# every resource the CLI could touch, as the emulator names them (by plural)
PLURALS = (
    "deployments",
    "horizontalpodautoscalers",
    "events",
    "pods",
    "replicasets",
    "statefulsets",
    "namespaces",
    "configmaps",
    "secrets",
    "services",
    "cronjobs",
    "jobs",
    "ingresses",
    "leases",
)


@pytest.fixture
def prod_objects() -> list[dict[str, Any]]:
    from tradewise_ops.core.render import render_environment

    return render_environment(load_config(ROOT / "tradewise.yaml", environ={}), "prod", tag="v1")


@pytest.fixture
def scaler_cluster(
    emulator: Emulator,
    kubeconfig: Path,
    prod_objects: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Emulator:
    """Prod's Deployments and HPAs, and RBAC that grants exactly the scaler Role."""
    for obj in prod_objects:
        if obj["kind"] in ("Deployment", "HorizontalPodAutoscaler"):
            emulator.put(obj)
    emulator.controllers.set_hpa(NS, "tradewise-api-hpa", 3)
    emulator.controllers.set_hpa(NS, "tradewise-worker-hpa", 2)
    (role,) = [
        o
        for o in prod_objects
        if o["kind"] == "Role" and o["metadata"]["name"] == "tradewise-scaler"
    ]
    granted: dict[str, set[str]] = {}
    for rule in role["rules"]:
        for resource in rule["resources"]:
            # the emulator checks by plural; a subresource's rights count for its parent here
            granted.setdefault(resource.split("/")[0], set()).update(rule["verbs"])
    for plural in PLURALS:
        for verb in VERBS:
            if verb not in granted.get(plural, set()):
                emulator.deny(verb, plural)
    # as in the pod: no config file in the working directory, no TRADEWISE_CONFIG
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRADEWISE_CONFIG", raising=False)
    monkeypatch.delenv("TRADEWISE_ENV", raising=False)
    emulator.reset_requests()
    return emulator


def _cronjob(objects: list[dict[str, Any]], name: str) -> tuple[list[str], dict[str, str]]:
    (cj,) = [o for o in objects if o["kind"] == "CronJob" and o["metadata"]["name"] == name]
    (container,) = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    command = list(container.get("command", [])) + list(container.get("args", []))
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return command, env


# the schedules follow the NYSE calendar (issue 16): the runs here happen on an ordinary trading
# Monday outside every window, given to the command as its clock (tests/cli/test_scale_calendar.py
# runs the holidays, early closes and windows)
TRADING_MONDAY = "2026-03-09T{}:00-04:00"


def _run_as_cronjob(
    command: list[str],
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    now: str = TRADING_MONDAY.format("09:15"),
) -> Any:
    assert command[0] == "tradewise"
    for key, value in env.items():
        if key != "HOME":
            monkeypatch.setenv(key, value)
    return CliRunner().invoke(app, [*command[1:], "--now", now])


def _replicas(emu: Emulator, name: str) -> int:
    obj = emu.get("Deployment", NS, name)
    assert obj is not None
    return int(obj["spec"]["replicas"])


def test_market_open_cronjob_applies_high_with_only_its_role(
    scaler_cluster: Emulator, prod_objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    command, env = _cronjob(prod_objects, "tradewise-scale-market-open")
    result = _run_as_cronjob(command, env, monkeypatch)
    assert result.exit_code == 0, result.stderr
    assert _replicas(scaler_cluster, "tradewise-api-deployment") == 10
    assert _replicas(scaler_cluster, "tradewise-worker-deployment") == 4
    hpa = scaler_cluster.get("HorizontalPodAutoscaler", NS, "tradewise-api-hpa")
    assert hpa is not None and hpa["spec"]["minReplicas"] == 10
    assert hpa["metadata"]["annotations"]["tradewise.io/traffic-profile"] == "high"
    # nothing but gets and patches was sent, and the release lock taken and given back
    lease = "/apis/coordination.k8s.io/v1/namespaces/tradewise-ai/leases"
    assert {r.method for r in scaler_cluster.requests if not r.path.startswith(lease)} <= {
        "GET",
        "PATCH",
    }
    assert [r.method for r in scaler_cluster.requests if r.path.startswith(lease)] == [
        "POST",
        "DELETE",
    ]
    assert scaler_cluster.get("Lease", NS, "tradewise-lock-prod") is None
    assert all(r.status < 400 or r.status == 404 for r in scaler_cluster.requests)


def test_after_close_cronjob_applies_low(
    scaler_cluster: Emulator, prod_objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    command, env = _cronjob(prod_objects, "tradewise-scale-after-close")
    result = _run_as_cronjob(command, env, monkeypatch, TRADING_MONDAY.format("16:30"))
    assert result.exit_code == 0, result.stderr
    assert _replicas(scaler_cluster, "tradewise-api-deployment") == 2
    assert _replicas(scaler_cluster, "tradewise-worker-deployment") == 1


def test_the_role_is_really_enforced_here(
    scaler_cluster: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: what the Role does not grant (status lists objects) is refused."""
    monkeypatch.setenv("TRADEWISE_NAMESPACE", NS)
    result = CliRunner().invoke(app, ["scale", "status", "--env", "prod"])
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "forbidden" in result.stderr.lower() or "cannot list" in result.stderr


def test_a_schedule_may_name_emergency_down(
    scaler_cluster: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEWISE_NAMESPACE", NS)
    result = CliRunner().invoke(
        app, ["scale", "traffic", "emergency-down", "--env", "prod", "--yes"]
    )
    assert result.exit_code == 0, result.stderr
    assert _replicas(scaler_cluster, "tradewise-precompute-deployment") == 0
    hpa = scaler_cluster.get("HorizontalPodAutoscaler", NS, "tradewise-api-hpa")
    assert hpa is not None
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 3)


# runs the CronJob's command in a process where only the image's distributions can be imported:
# an import of anything else fails as it would in the image (optional imports may fall back)
_PROBE = """
import importlib.abc, importlib.metadata, json, re, sys
allowed = set(json.loads(sys.argv[1]))
by_module = importlib.metadata.packages_distributions()
blocked = set()

def canon(name):
    return re.sub(r"[-_.]+", "-", name).lower()

class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in ("tradewise_ops", "app"):
            return None
        dists = by_module.get(top)
        if dists and not any(canon(d) in allowed for d in dists):
            blocked.add(top)
            raise ModuleNotFoundError(f"No module named {top!r} (not in the image)", name=top)
        return None

sys.meta_path.insert(0, NotInImage())
from tradewise_ops.cli.main import main
code = 0
try:
    main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code or 0
print(json.dumps({"code": code, "blocked": sorted(blocked)}))
"""


def _service_closure() -> set[str]:
    """Every distribution the images install: the ``service`` extra and what it requires."""
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    doc = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    todo = [Requirement(r) for r in doc["project"]["optional-dependencies"]["service"]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for raw in requires:
            sub = Requirement(raw)
            extras = req.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras):
                todo.append(Requirement(str(sub).split(";")[0]))
    return seen


def test_the_api_image_carries_what_the_cronjob_command_imports(
    scaler_cluster: Emulator,
    prod_objects: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    """The CronJobs run the CLI in the API image, which installs only the ``service`` extra."""
    import json
    import os
    import subprocess
    import sys

    command, env_vars = _cronjob(prod_objects, "tradewise-scale-market-open")
    env = {**os.environ, **{k: v for k, v in env_vars.items() if k != "HOME"}}
    env.pop("TRADEWISE_CONFIG", None)
    env["PYTHONPATH"] = str(ROOT)
    allowed = sorted(_service_closure())
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROBE,
            json.dumps(allowed),
            *command[1:],
            "--now",
            TRADING_MONDAY.format("09:15"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    doc = json.loads(probe.stdout.strip().splitlines()[-1])
    assert doc["code"] == 0, probe.stderr[-3000:]
    assert _replicas(scaler_cluster, "tradewise-api-deployment") == 10
