"""``tradewise render``: output, files, exit codes, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tradewise_ops.cli.main import app
from tradewise_ops.core.validate import newest_version

GOLDEN = Path(__file__).parents[1] / "core" / "golden"
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
        "TRADEWISE_NO_CACHE",
    ):
        monkeypatch.delenv(name, raising=False)  # fmt: skip
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TRADEWISE_IMAGES_FILE", str(tmp_path / "no-push-recorded.json"))


def run(*args: str) -> object:
    return CliRunner().invoke(app, ["--config", CONFIG, *args])


def test_render_prints_the_golden_stream() -> None:
    result = run("render", "prod", "--tag", "v1.2.3")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (GOLDEN / "prod.yaml").read_text(encoding="utf-8")


def test_templates_are_cached_and_the_output_stays_identical(tmp_path: Path) -> None:
    first = run("render", "staging", "--tag", "v1.2.3")
    cached = list((tmp_path / "cache" / "tradewise" / "templates").iterdir())
    second = run("render", "staging", "--tag", "v1.2.3")
    assert first.exit_code == second.exit_code == 0
    assert len(cached) >= 10
    assert first.stdout == second.stdout == (GOLDEN / "staging.yaml").read_text(encoding="utf-8")


def test_global_options_work_after_the_command() -> None:
    result = run("render", "--tag", "v1.2.3", "--env", "production")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (GOLDEN / "prod.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("tag", [[], ["--tag", "latest"]])
def test_prod_needs_a_pinned_tag(tag: list[str]) -> None:
    result = run("render", "prod", *tag)
    assert result.exit_code == 2
    assert "requires a pinned image tag" in result.stderr
    assert result.stdout == ""


def test_a_local_environment_has_no_manifests() -> None:
    result = run("render", "local")
    assert result.exit_code == 2
    assert "Kubernetes environments: staging, prod" in result.stderr


@pytest.mark.parametrize(("version", "code"), [("1.27", 0), ("1.37", 0), ("1.26", 2), ("9", 2)])
def test_k8s_version(version: str, code: int) -> None:
    result = run("render", "prod", "--tag", "v1.2.3", "--k8s-version", version)
    assert result.exit_code == code, result.stderr
    if code:
        assert f"use one of 1.27 to {newest_version()}" in result.stderr


def test_out_writes_one_file_per_object(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    out.mkdir()
    (out / "99-deployment-stale.yaml").write_text("stale", encoding="utf-8")
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    result = run("render", "prod", "--tag", "v1.2.3", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    files = sorted(p.name for p in out.glob("*.yaml"))
    assert files[0] == "01-namespace-tradewise-ai.yaml"
    assert "99-deployment-stale.yaml" not in files
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    text = "".join((out / name).read_text(encoding="utf-8") for name in files)
    assert text == (GOLDEN / "prod.yaml").read_text(encoding="utf-8")
    assert f"wrote {len(files)} manifests for prod" in result.stderr


def test_json_output_is_one_list_document() -> None:
    result = run("-o", "json", "render", "prod", "--tag", "v1.2.3")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["kind"] == "List"
    golden = list(yaml.safe_load_all((GOLDEN / "prod.yaml").read_text(encoding="utf-8")))
    assert doc["items"] == golden


def test_maintenance_flag_switches_the_ingress() -> None:
    result = run("render", "prod", "--tag", "v1.2.3", "--maintenance")
    assert result.exit_code == 0, result.stderr
    (ingress,) = [o for o in yaml.safe_load_all(result.stdout) if o["kind"] == "Ingress"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    assert backend == "tradewise-maintenance-service"


def test_render_refuses_manifests_with_findings(tmp_path: Path) -> None:
    doc = yaml.safe_load(Path(CONFIG).read_text(encoding="utf-8"))
    doc["environments"]["staging"]["domain"] = "Staging.TradeWise.example.com"
    config = tmp_path / "tradewise.yaml"
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(config), "render", "staging", "-t", "v1"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Ingress/tradewise-ingress spec.rules[0].host: host" in result.stderr
    assert "[dns1123-name]" in result.stderr
    assert "nothing written" in result.stderr


def test_a_config_error_exits_2_naming_file_key_and_value(tmp_path: Path) -> None:
    doc = yaml.safe_load(Path(CONFIG).read_text(encoding="utf-8"))
    doc["environments"]["prod"]["components"] = {"api": {"autoscaling": {"min": 9, "max": 3}}}
    config = tmp_path / "tradewise.yaml"
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(config), "render", "prod", "-t", "v1"])
    assert result.exit_code == 2
    assert (
        f"{config}: environments.prod.components.api.autoscaling.min is 9; "
        "expected at most autoscaling.max (3)"
    ) in result.stderr
    assert result.stdout == ""


def test_namespace_override_moves_every_object() -> None:
    result = run("--namespace", "tw-blue", "render", "staging", "--tag", "v1.2.3")
    assert result.exit_code == 0, result.stderr
    objects = list(yaml.safe_load_all(result.stdout))
    assert objects[0]["kind"] == "Namespace" and objects[0]["metadata"]["name"] == "tw-blue"
    cluster_scoped = {"Namespace", "PriorityClass"}
    namespaced = [o for o in objects if o["kind"] not in cluster_scoped]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"tw-blue"}
    assert all("namespace" not in o["metadata"] for o in objects if o["kind"] == "PriorityClass")
    assert 'namespace="tw-blue"' in result.stdout  # alerts and dashboards too
    assert 'namespace="tradewise-ai"' not in result.stdout
    assert "namespace: tradewise-ai" not in result.stdout


# -- pinning by the digests `tradewise push` recorded ---------------------------------------------
DIGEST_API = "sha256:" + "a" * 64
DIGEST_WORKER = "sha256:" + "b" * 64


def _pushed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registry: str) -> None:
    """The record `tradewise push staging v2` leaves (written here, as push writes it)."""
    record = tmp_path / "images.json"
    monkeypatch.setenv("TRADEWISE_IMAGES_FILE", str(record))
    entry = {"api": DIGEST_API, "worker": DIGEST_WORKER}
    entry["registries"] = {"api": registry, "worker": registry}  # type: ignore[assignment]
    record.write_text(json.dumps({"staging": {"v2": entry}}))


def test_render_after_push_pins_the_images_by_digest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _pushed(monkeypatch, tmp_path, "registry.example.com/tradewise")
    result = run("render", "staging", "--tag", "v2")
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    images = [
        c["image"]
        for o in yaml.safe_load_all(result.stdout)  # type: ignore[attr-defined]
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    ]
    assert f"registry.example.com/tradewise/tradewise-ai@{DIGEST_API}" in images
    assert f"registry.example.com/tradewise/tradewise-ai-worker@{DIGEST_WORKER}" in images
    assert "pinning api@sha256:aaaaaaaaaaaa..., worker@sha256:bbbbbbbbbbbb..." in (
        result.stderr  # type: ignore[attr-defined]
    )
    # another tag, or --no-pin: the tag
    other = run("render", "staging", "--tag", "v3")
    assert "@sha256:" not in other.stdout and ":v3" in other.stdout  # type: ignore[attr-defined]
    unpinned = run("render", "staging", "--tag", "v2", "--no-pin")
    assert unpinned.exit_code == 0  # type: ignore[attr-defined]
    assert "@sha256:" not in unpinned.stdout  # type: ignore[attr-defined]
    assert "tradewise-ai:v2" in unpinned.stdout  # type: ignore[attr-defined]


def test_a_digest_pushed_to_another_registry_is_not_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _pushed(monkeypatch, tmp_path, "old-registry.example.com/tradewise")
    result = run("render", "staging", "--tag", "v2")
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    assert "@sha256:" not in result.stdout  # type: ignore[attr-defined]
    assert "it was pushed to old-registry.example.com/tradewise, not registry.example.com" in (
        result.stderr  # type: ignore[attr-defined]
    )
    # the registry the environment now names (TRADEWISE_REGISTRY) is the one that counts
    monkeypatch.setenv("TRADEWISE_REGISTRY", "old-registry.example.com/tradewise")
    moved = run("render", "staging", "--tag", "v2")
    assert f"old-registry.example.com/tradewise/tradewise-ai@{DIGEST_API}" in (
        moved.stdout  # type: ignore[attr-defined]
    )
