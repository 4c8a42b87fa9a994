"""A built wheel carries the templates, the CRD schemas and the default config, and renders."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tradewise_ops.resources import repo_root

ROOT = repo_root()
GOLDEN = Path(__file__).parent / "golden"


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
