"""``tradewise render``: every manifest of an environment, validated, as YAML or files."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from tradewise_ops.cli.state import get_state
from tradewise_ops.errors import BadInputError, GoalMissedError

_MANIFEST_FILE = re.compile(r"^\d{2,}-[a-z]+-[a-z0-9.-]+\.yaml$")


def register(app: typer.Typer) -> None:
    app.command("render")(render)


def render(
    ctx: typer.Context,
    env: str = typer.Argument(
        None, metavar="ENV", help="Environment (default --env, then the config's)."
    ),
    tag: str = typer.Option(
        None, "--tag", "-t", metavar="TAG", help="Image tag of the API and worker images."
    ),
    out: str = typer.Option(
        None,
        "--out",
        metavar="DIR",
        help="Write one file per object (NN-kind-name.yaml) into this directory.",
    ),
    k8s_version: str = typer.Option(
        None,
        "--k8s-version",
        metavar="VERSION",
        help="Kubernetes version to validate for (default from config).",
    ),
    maintenance: bool = typer.Option(
        False, "--maintenance", help="Point the Ingress at the maintenance page."
    ),
) -> None:
    """Render every Kubernetes object of ENV, validated, in apply order."""
    from tradewise_ops.core import render as core_render
    from tradewise_ops.core.validate import check_version, validate

    state = get_state(ctx)
    term = state.terminal
    config = state.config()
    environment = state.environment(env)
    version = check_version(k8s_version or config.kubernetes_version)
    caches = state.render_caches()
    objects = core_render.render_environment(
        config, environment, tag=tag, k8s_version=version, maintenance=maintenance, caches=caches
    )
    findings = validate(
        objects, version, require_pinned=environment.require_pinned_tag, caches=caches
    )
    if findings:
        for finding in findings:
            term.info(str(finding))
        raise GoalMissedError(
            f"{len(findings)} finding(s) in the manifests of {environment.name}: nothing written",
            hint="`tradewise lint` lists them; -o json gives them as data",
        )
    if out is not None:
        written = write_manifests(Path(out), core_render.manifest_files(objects))
        term.info(f"wrote {len(written)} manifests for {environment.name} to {out}")
        term.result([str(p) for p in written], "\n".join(str(p) for p in written))
        return
    if state.output == "json":
        term.result({"apiVersion": "v1", "kind": "List", "items": objects})
        return
    term.raw(core_render.to_yaml_stream(objects))
    term.debug(f"{len(objects)} objects, valid for Kubernetes {version}")


def write_manifests(directory: Path, files: list[tuple[str, str]]) -> list[Path]:
    """Write ``files`` into ``directory``; first remove manifests a previous render left there."""
    if directory.exists() and not directory.is_dir():
        raise BadInputError(f"--out {directory} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            if old.is_file() and _MANIFEST_FILE.match(old.name):
                old.unlink()
        written = []
        for name, text in files:
            path = directory / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise BadInputError(f"cannot write manifests to {directory}: {exc.strerror}") from None
    return written
