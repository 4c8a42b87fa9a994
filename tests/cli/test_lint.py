"""``tradewise lint``: findings, JSON, exit codes 0/1/2, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tradewise_ops.cli.main import app
from tradewise_ops.core.validate import newest_version

# the frozen copy the golden files are rendered from
CONFIG = str(Path(__file__).parents[1] / "core" / "golden" / "tradewise.yaml")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "TRADEWISE_CONFIG",
        "TRADEWISE_ENV",
        "TRADEWISE_NAMESPACE",
        "TRADEWISE_REGISTRY",
        "TRADEWISE_CONTEXT",
        "TRADEWISE_KUBERNETES_VERSION",
    ):
        monkeypatch.delenv(name, raising=False)  # fmt: skip
    monkeypatch.setenv("TRADEWISE_NO_CACHE", "1")


@pytest.fixture
def bad_config(tmp_path: Path) -> str:
    """A config whose staging domain no Ingress accepts (upper case)."""
    doc = yaml.safe_load(Path(CONFIG).read_text(encoding="utf-8"))
    doc["environments"]["staging"]["domain"] = "Staging.TradeWise.example.com"
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def run(*args: str, config: str = CONFIG) -> object:
    return CliRunner().invoke(app, ["--config", config, *args])


@pytest.mark.parametrize("version", ["1.27", "1.37"])
def test_a_clean_environment_exits_0(version: str) -> None:
    result = run("lint", "staging", "--k8s-version", version)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"staging: 43 objects, no findings (Kubernetes {version})" in result.stderr
    assert result.stdout == ""


def test_prod_without_a_tag_is_linted_with_a_placeholder() -> None:
    result = run("lint", "prod")
    assert result.exit_code == 0, result.stderr
    assert "no --tag, images checked with v0.0.0-lint" in result.stderr


def test_all_environments_as_json() -> None:
    result = run("-o", "json", "lint", "--all")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert "staging, prod: 86 objects" in result.stderr


def test_the_default_local_environment_is_bad_input() -> None:
    result = run("lint")
    assert result.exit_code == 2
    assert "environment 'local' is of kind 'local'" in result.stderr
    assert "Kubernetes environments: staging, prod" in result.stderr


def test_all_with_an_environment_is_bad_input() -> None:
    result = run("lint", "--all", "staging")
    assert result.exit_code == 2
    assert "give no ENV" in result.stderr


def test_unsupported_version_is_bad_input() -> None:
    result = run("lint", "staging", "--k8s-version", "1.24")
    assert result.exit_code == 2
    assert f"use one of 1.27 to {newest_version()}" in result.stderr


def test_findings_exit_1_and_name_object_path_and_rule(bad_config: str) -> None:
    result = run("lint", "staging", config=bad_config)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert (
        "Ingress/tradewise-ingress spec.rules[0].host: host 'Staging.TradeWise.example.com' "
        "is not a lower-case DNS name (a wildcard only as '*.') [dns1123-name]"
    ) in lines
    assert any(line.startswith("Ingress/tradewise-ingress spec.tls[0].hosts[0]:") for line in lines)
    assert "2 finding(s) in 43 objects of staging" in result.stderr


def test_findings_as_json(bad_config: str) -> None:
    result = run("lint", "staging", "-o", "json", config=bad_config)
    assert result.exit_code == 1
    findings = json.loads(result.stdout)
    assert {(f["kind"], f["name"], f["rule"]) for f in findings} == {
        ("Ingress", "tradewise-ingress", "dns1123-name")
    }
    assert {f["path"] for f in findings} == {"spec.rules[0].host", "spec.tls[0].hosts[0]"}
