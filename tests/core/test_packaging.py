"""A built wheel carries the templates, the CRD schemas and the default config, and renders; and
installed without extras (the CLI alone) it has none of the bundled service's dependencies."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tradewise_ops.resources import repo_root

ROOT = repo_root()
GOLDEN = Path(__file__).parent / "golden"

pytest_plugins = ["tests.k8s_emulator.fixtures"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if ROOT is None:
        pytest.skip("runs from a checkout only (it builds the wheel from the sources)")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=180,
    )
    (built,) = out.glob("tradewise-*.whl")
    return built


def test_the_wheel_ships_templates_schemas_and_config(wheel: Path) -> None:
    assert ROOT is not None
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {
        "tradewise_ops/_data/k8s/" + p.relative_to(ROOT / "templates" / "k8s").as_posix()
        for p in (ROOT / "templates" / "k8s").rglob("*.j2")
    }
    assert len(templates) >= 15
    assert templates <= names
    reports = {
        "tradewise_ops/_data/reports/" + p.name
        for p in (ROOT / "templates" / "reports").glob("*.j2")
    }
    assert "tradewise_ops/_data/reports/monitor.html.j2" in reports
    assert reports <= names
    assert "tradewise_ops/_data/tradewise.yaml" in names
    assert "tradewise_ops/core/schemas/servicemonitor-monitoring-v1.json" in names
    assert "tradewise_ops/core/schemas/prometheusrule-monitoring-v1.json" in names


def test_render_works_from_the_unpacked_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"  # no tradewise.yaml here: the embedded one is used
    work.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRADEWISE_")},
        "PYTHONPATH": str(site),  # before the checkout's editable install on sys.path
        "TRADEWISE_NO_CACHE": "1",
    }
    where = subprocess.run(
        [sys.executable, "-c",
         "import tradewise_ops.resources as r; print(r.templates_dir()); print(r.repo_root())"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    templates_dir, root = where.stdout.split()
    assert templates_dir == str(site / "tradewise_ops" / "_data" / "k8s")
    assert root == "None"
    golden = ["--config", str(GOLDEN / "tradewise.yaml")]
    done = subprocess.run(
        [sys.executable, "-m", "tradewise_ops", *golden, "render", "prod", "--tag", "v1.2.3"],
        cwd=work, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == (GOLDEN / "prod.yaml").read_text(encoding="utf-8")
    embedded = subprocess.run(
        [sys.executable, "-m", "tradewise_ops", "lint", "--all"],
        cwd=work, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert embedded.returncode == 0, embedded.stderr
    assert "staging, prod:" in embedded.stderr


def test_reports_render_from_the_unpacked_wheel(wheel: Path, tmp_path: Path) -> None:
    """The HTML report templates ship too: a frozen monitor report renders to its golden page."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRADEWISE_")},
        "PYTHONPATH": str(site),
    }
    doc = GOLDEN / "reports" / "monitor-load-pass.json"
    script = (
        "import json, sys\n"
        "import tradewise_ops.resources as r\n"
        "from tradewise_ops.core.monitor_report import combined_html\n"
        "print(r.report_templates_dir(), file=sys.stderr)\n"
        f"sys.stdout.write(combined_html(json.load(open({str(doc)!r}))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == str(site / "tradewise_ops" / "_data" / "reports")
    assert done.stdout == (GOLDEN / "reports" / "monitor-load-pass.html").read_text(
        encoding="utf-8"
    )


# -- the CLI-only install (`pipx install tradewise`) -----------------------------------------
# the bundled service's servers and clients, which only `tradewise[service]` installs
SERVICE_ONLY = ("celery", "gunicorn", "psycopg", "sqlalchemy", "redis", "kombu", "httpx")
CACHE_DIR = Path(os.environ.get("TRADEWISE_TEST_CACHE", Path.home() / ".cache" / "tradewise-test"))
# run in the fresh venv: the CLI as the console script runs it, then what it had imported
_PROBE = """
import atexit, json, os, sys
def report():
    with open(os.environ["PROBE_OUT"], "w") as f:
        json.dump(sorted({m.split(".")[0] for m in sys.modules}), f)
atexit.register(report)
from tradewise_ops.cli.main import main
main(sys.argv[1:])
"""


# which installed distributions require a package (without an extra's marker)
_REQUIRERS_OF = """
import sys
from importlib import metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
wanted = canonicalize_name(sys.argv[1])
found = set()
for dist in metadata.distributions():
    for raw in dist.requires or []:
        req = Requirement(raw)
        if canonicalize_name(req.name) == wanted and (
            req.marker is None or req.marker.evaluate({"extra": ""})
        ):
            found.add(canonicalize_name(dist.metadata["Name"]))
print(sorted(found))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    skip = ("TRADEWISE_", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env["TRADEWISE_NO_CACHE"] = "1"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def cli_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed WITHOUT extras.

    Its dependencies come from a wheelhouse (``pip wheel`` of the built wheel, once, cached under
    ``~/.cache/tradewise-test`` by the dependency list), then install with ``--no-index``.
    """
    import hashlib
    import shutil
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "dependencies"
    ]
    key = hashlib.sha256(f"{deps}|{sys.version_info[:2]}".encode()).hexdigest()[:16]
    house = CACHE_DIR / f"cli-wheelhouse-{key}"
    if not (house / ".complete").is_file():
        shutil.rmtree(house, ignore_errors=True)
        house.mkdir(parents=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(house), str(wheel)],
            check=True,
            timeout=900,
        )
        (house / ".complete").write_text("ok\n")
    venv = tmp_path_factory.mktemp("cli-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links", str(house),
         str(wheel)],
        check=True, timeout=600, env=_clean_env(),
    )  # fmt: skip
    return venv


def _cli(venv: Path, *args: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, set[str]]:
    """Run the CLI in ``venv``; its exit code, output and the top-level modules it imported."""
    out = cwd / "imported.json"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _PROBE, *args],
        cwd=cwd, env={**env, "PROBE_OUT": str(out)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    import json

    imported = set(json.loads(out.read_text(encoding="utf-8"))) if out.is_file() else set()
    return done.returncode, done.stdout + done.stderr, imported


@pytest.mark.slow
def test_the_cli_only_install_has_none_of_the_service_and_imports_none_of_it(
    cli_venv: Path, tmp_path: Path
) -> None:
    python = str(cli_venv / "bin" / "python")
    # (the wheel holds the service's code, `app`, for the images; not the servers it runs on)
    for module in SERVICE_ONLY:
        found = subprocess.run(
            [python, "-c", f"import {module}"],
            capture_output=True, text=True, env=_clean_env(), cwd=tmp_path,
        )  # fmt: skip
        assert found.returncode != 0 and "ModuleNotFoundError" in found.stderr, module
    # Flask is there only as Locust's own dependency (its web UI), which tradewise never starts
    needs_flask = subprocess.run(
        [python, "-c", _REQUIRERS_OF, "flask"],
        capture_output=True, text=True, check=True, env=_clean_env(), cwd=tmp_path,
    ).stdout.strip()  # fmt: skip
    assert needs_flask in ("['locust']", "['flask-cors', 'flask-login', 'locust']"), needs_flask
    assert (cli_venv / "bin" / "tradewise").is_file()

    work = tmp_path / "elsewhere"  # no tradewise.yaml here: the embedded one is used
    work.mkdir()
    env = _clean_env()
    golden = ["--config", str(GOLDEN / "tradewise.yaml")]
    code, output, imported = _cli(cli_venv, *golden, "render", "prod", "--tag", "v1.2.3",
                                  cwd=work, env=env)  # fmt: skip
    assert code == 0, output
    assert output.startswith((GOLDEN / "prod.yaml").read_text(encoding="utf-8")[:2000])
    service = {"flask", "celery", "gunicorn", "app", "werkzeug", "sqlalchemy", "locust", "docker"}
    assert not imported & service, imported & service
    code, output, imported = _cli(cli_venv, "lint", "--all", cwd=work, env=env)
    assert code == 0, output
    assert "staging, prod:" in output
    assert not imported & service, imported & service
    # the local stack needs the service: said at once, nothing started
    code, output, _ = _cli(cli_venv, "local", "up", cwd=work, env=env)
    assert code == 2, output
    assert "install tradewise[service]" in output


@pytest.mark.slow
def test_the_cli_only_install_plans_a_deploy_against_a_cluster(
    cli_venv: Path, tmp_path: Path, emulator: Any, kubeconfig: Path
) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _clean_env(KUBECONFIG=str(kubeconfig))
    code, output, imported = _cli(cli_venv, "deploy", "staging", "--dry-run", cwd=work, env=env)
    assert code == 0, output
    assert re.search(r"plan for staging \(latest\): .*\d+ to create", output), output
    assert "tradewise-api-deployment" in output and "dry run: nothing was changed" in output
    # it did talk to the cluster, over HTTP (a token kubeconfig needs no `kubernetes` package)
    assert "urllib3" in imported and "kubernetes" not in imported
    assert not imported & {"flask", "celery", "gunicorn", "app", "werkzeug"}
    assert emulator.get("Deployment", "tradewise-ai", "tradewise-api-deployment") is None
