"""``tradewise build`` / ``tradewise push`` through the CLI: exit codes, streamed progress, output.

The engine tests use the private dockerd of ``tests/docker_engine.py`` (shared with the adapter
tests in the same session); no registry is reachable here, so push is exercised up to the
registry's door: an unreachable registry must exit 3 with a clear sentence.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.docker_engine import (  # noqa: F401 - fixtures
    DockerEngine,
    base_image,
    docker_engine,
    wheelhouse,
)
from tests.helpers import free_port
from tradewise_ops.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The checkout's config with test image names (so the tests never touch real tags)."""
    raw = yaml.safe_load((ROOT / "tradewise.yaml").read_text())
    raw["defaults"]["images"] = {"api": "tw-cli-api", "worker": "tw-cli-worker"}
    path = tmp_path / "tradewise.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run(config: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["--config", str(config), *args], env=env)


def test_no_engine_exits_3_naming_docker_host(config: Path, tmp_path: Path) -> None:
    sock = f"unix://{tmp_path}/docker.sock"
    result = run(config, "build", "v1", env={"DOCKER_HOST": sock})
    assert result.exit_code == 3
    assert f"cannot reach the Docker engine at {sock} (DOCKER_HOST={sock})" in result.stderr
    pushed = run(config, "push", "v1", env={"DOCKER_HOST": sock})
    assert pushed.exit_code == 3 and "DOCKER_HOST" in pushed.stderr


def test_bad_values_exit_2(config: Path) -> None:
    assert run(config, "build", "--only", "db").exit_code == 2
    bad_tag = run(config, "build", "-o", "json", "bad:tag")
    assert bad_tag.exit_code == 2 and "image tag 'bad:tag' is not valid" in bad_tag.stderr


@pytest.fixture
def engine(docker_engine: DockerEngine) -> Iterator[dict[str, str]]:  # noqa: F811
    yield {"DOCKER_HOST": docker_engine.host}


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_build_push_cycle(
    config: Path,
    engine: dict[str, str],
    base_image: str,  # noqa: F811
    wheelhouse: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    built = run(
        config,
        "build",
        "v9",
        "--only",
        "api",
        "--base-image",
        base_image,
        "--wheelhouse",
        str(wheelhouse),
        "-o",
        "json",
        env=engine,
    )
    assert built.exit_code == 0, built.stderr[-3000:]
    assert "Step 1/" in built.stderr  # the build's progress, streamed on stderr
    data = json.loads(built.stdout)
    assert [i["component"] for i in data["images"]] == ["api"]
    assert data["images"][0]["tags"][0] == "tw-cli-api:v9"
    assert data["digests"] == {}

    # push: the registry is a closed loopback port, so the engine cannot reach it
    registry = f"127.0.0.1:{free_port()}/tradewise"
    images_file = tmp_path / "images.json"
    env = dict(engine, TRADEWISE_REGISTRY=registry, TRADEWISE_IMAGES_FILE=str(images_file))
    pushed = run(config, "push", "v9", "--only", "api", env=env)
    assert pushed.exit_code == 3, pushed.stderr
    assert f"cannot reach the registry {registry.split('/')[0]} to push" in pushed.stderr
    assert not images_file.exists()  # nothing recorded for a failed push

    never = run(config, "push", "never-built", "--only", "worker", env=env)
    assert never.exit_code == 2
    assert "no image tw-cli-worker:never-built to push: build it first" in never.stderr


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_failing_step_exits_1_with_its_output(
    config: Path,
    engine: dict[str, str],
    docker_engine: DockerEngine,  # noqa: F811
) -> None:
    import io
    import tarfile

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("etc")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    client = docker_engine.client()
    try:
        client.api.import_image_from_data(data.getvalue(), repository="tw-cli-empty", tag="b")
    finally:
        client.close()
    result = run(
        config, "build", "broken", "--only", "api", "--base-image", "tw-cli-empty:b", env=engine
    )
    assert result.exit_code == 1
    assert "building tw-cli-api:broken failed at step" in result.stderr
    assert "RUN python3 -m venv /opt/venv" in result.stderr
