"""The plan is the thing that runs: ``deploy --dry-run`` prints the steps a deploy then takes.

For each scenario (a first rolling deploy; an upgrade that prunes and resets a traffic profile;
blue-green from rolling; blue-green from slot to slot), against the emulator over real HTTP:

1. ``deploy --dry-run`` prints its plan, one table row per step;
2. the same ``deploy`` without ``--dry-run`` (``--verbose``) names each step as it carries it out;
3. the two lists are equal, one for one and in order (number, step, object);
4. the writes the emulator received, in order, are exactly the writes those steps make.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from tests.k8s_emulator import Emulator
from tradewise_ops.adapters.kube.discovery import KNOWN_KINDS
from tradewise_ops.cli.main import app
from tradewise_ops.core.bluegreen import API_HPA, API_SERVICE
from tradewise_ops.core.release import secret_name
from tradewise_ops.core.verify import PREVIEW_SERVICE

pytest_plugins = ["tests.k8s_emulator.fixtures"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "tradewise.yaml")
NS = "tradewise-ai"
APPLY_TYPE = "application/apply-patch+yaml"
_EXECUTED = re.compile(r"^step (\d+): (\S+) (.+)$")

Step = tuple[int, str, str]  # number, what (apply, prune, ...), object (Kind/name, revision N)


def run(*args: str, config: str = CONFIG) -> Result:
    return CliRunner().invoke(app, ["--config", config, *args])


def printed_steps(stdout: str) -> list[Step]:
    """The rows of the dry run's table: ``# │ STEP │ OBJECT │ DETAIL`` (a long cell wraps onto
    lines whose first cell is empty)."""
    rows: list[list[str]] = []
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) != 4:
            continue
        if cells[0].isdigit():
            rows.append(cells[:3])
        elif not cells[0] and rows:
            rows[-1][2] += cells[2]
    return [(int(n), what, obj) for n, what, obj in rows]


def executed_steps(stderr: str) -> list[Step]:
    out = []
    for line in stderr.splitlines():
        found = _EXECUTED.match(line.strip())
        if found:
            out.append((int(found[1]), found[2], found[3]))
    return out


def deployed_revisions(emu: Emulator) -> list[int]:
    return sorted(
        int(s["metadata"]["labels"]["tradewise.io/revision"])
        for s in emu.list("Secret", NS, "owner=tradewise")
        if s["metadata"]["labels"]["tradewise.io/status"] == "deployed"
    )


def _path_of(target: str) -> str:
    kind, name = target.split("/", 1)
    return f"/{KNOWN_KINDS[kind].plural}/{name}"


def expected_writes(steps: list[Step], deployed_before: list[int]) -> list[tuple[str, str]]:
    """The writes each step makes: ``(what, path suffix)``."""
    out: list[tuple[str, str]] = []
    for _n, what, obj in steps:
        if what == "apply":
            out.append(("apply", _path_of(obj)))
        elif what == "record":
            out.append(("create", "/secrets"))
        elif what == "reset-scaling":
            out.append(("merge", _path_of(obj)))
        elif what == "prune":
            out.append(("delete", _path_of(obj)))
        elif what == "switch":
            out.append(("apply", f"/services/{API_SERVICE}"))
            out.append(("apply", f"/horizontalpodautoscalers/{API_HPA}"))
        elif what == "finish":
            revision = int(obj.split()[-1])
            for r in [revision, *deployed_before]:
                out.append(("merge", f"/secrets/{secret_name(r)}"))
        elif what == "retire":
            out.append(("delete", _path_of(obj)))
        elif what == "keep":
            out.append(("merge", _path_of(obj)))
        elif what == "preview":
            out.append(("apply", f"/services/{PREVIEW_SERVICE}"))
        elif what == "close-preview":
            out.append(("delete", f"/services/{PREVIEW_SERVICE}"))
        else:
            assert what in ("wait", "verify"), what  # reads only (watches), load from here
    return out


def real_writes(emu: Emulator, lock: bool = False) -> list[tuple[str, str]]:
    """The writes to the environment (``lock``: the release lock's Lease writes too, which are
    no step of the plan: taken before it runs, given back after)."""
    out = []
    for r in emu.requests:
        if r.method not in ("POST", "PATCH", "DELETE") or r.query.get("dryRun") == "All":
            continue
        if "/leases" in r.path and not lock:
            continue
        what = {"POST": "create", "DELETE": "delete"}.get(r.method)
        if what is None:
            what = "apply" if r.content_type.startswith(APPLY_TYPE) else "merge"
        suffix = "/" + "/".join(r.path.rstrip("/").split("/")[-2:])
        if r.method == "POST":
            suffix = "/" + r.path.rstrip("/").split("/")[-1]
        out.append((what, suffix))
    return out


def dry_run_then_deploy(emu: Emulator, *args: str, config: str = CONFIG) -> list[Step]:
    """Print the plan, deploy, and check that the deploy took exactly the printed steps."""
    emu.reset_requests()
    dry = run("deploy", "staging", *args, "--dry-run", config=config)
    assert dry.exit_code == 0, dry.stderr
    printed = printed_steps(dry.stdout)
    assert printed and [n for n, _w, _o in printed] == list(range(1, len(printed) + 1))
    assert real_writes(emu) == [], "the dry run wrote"
    before = deployed_revisions(emu)
    emu.reset_requests()
    real = run("deploy", "staging", *args, "--verbose", config=config)
    assert real.exit_code == 0, real.stderr
    executed = executed_steps(real.stderr)
    assert executed == printed  # one for one, in order
    assert real_writes(emu) == expected_writes(executed, before)
    # the lock is taken before the first step's write and given back after the last
    assert real_writes(emu, lock=True) == [
        ("create", "/leases"),
        *expected_writes(executed, before),
        ("delete", "/leases/tradewise-lock-staging"),
    ]
    return executed


@pytest.fixture
def cluster(emulator: Emulator, kubeconfig: Path) -> Emulator:
    emulator.controllers.auto(delay=0.01)
    return emulator


def test_rolling_deploys_take_the_printed_steps(cluster: Emulator, tmp_path: Path) -> None:
    first = dry_run_then_deploy(cluster, "--tag", "v1")
    assert [w for _n, w, _o in first[:2]] == ["apply", "record"]  # the Namespace, then the record
    assert first[0][2] == f"Namespace/{NS}"
    assert [w for _n, w, _o in first[-2:]] == ["wait", "finish"]

    # an upgrade that resets a traffic profile and prunes what the config no longer renders
    assert run("scale", "traffic", "high", "--env", "staging", "--yes").exit_code == 0
    raw = yaml.safe_load(Path(CONFIG).read_text(encoding="utf-8"))
    raw["schedules"] = []
    smaller = tmp_path / "tradewise.yaml"
    smaller.write_text(yaml.safe_dump(raw), encoding="utf-8")
    upgrade = dry_run_then_deploy(cluster, "--tag", "v2", "--reset-scaling", config=str(smaller))
    kinds = [w for _n, w, _o in upgrade]
    assert "reset-scaling" in kinds and "prune" in kinds
    assert kinds.index("reset-scaling") < kinds.index("prune") < kinds.index("wait")
    assert ("prune", "CronJob/tradewise-scale-market-open") in [(w, o) for _n, w, o in upgrade]


def test_blue_green_deploys_take_the_printed_steps(cluster: Emulator) -> None:
    assert run("deploy", "staging", "--tag", "v1").exit_code == 0
    into_blue = dry_run_then_deploy(
        cluster, "--tag", "v2", "--strategy", "blue-green", "--no-verify"
    )
    tail = [(w, o) for _n, w, o in into_blue[-4:]]
    assert tail == [
        ("wait", tail[0][1]),
        ("switch", f"Service/{API_SERVICE}"),
        ("prune", "Deployment/tradewise-api-deployment"),  # the rolling API, once blue serves
        ("finish", "revision 2"),
    ]
    into_green = dry_run_then_deploy(cluster, "--tag", "v3", "--no-verify")  # keeps blue-green
    assert ("keep", "Deployment/tradewise-api-deployment-blue") in [  # instant rollback window
        (w, o) for _n, w, o in into_green
    ]
    assert ("apply", "Deployment/tradewise-api-deployment-green") in [
        (w, o) for _n, w, o in into_green
    ]
