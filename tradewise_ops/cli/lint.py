"""``tradewise lint``: validate the manifests of an environment (schemas and policy)."""

from __future__ import annotations

from typing import Any

import typer

from tradewise_ops.cli.state import get_state
from tradewise_ops.cli.terminal import TableData
from tradewise_ops.errors import BadInputError, GoalMissedError

# the tag images are checked with when --tag is not given for an environment that needs one
PLACEHOLDER_TAG = "v0.0.0-lint"


def register(app: typer.Typer) -> None:
    app.command("lint")(lint)


def lint(
    ctx: typer.Context,
    env: str = typer.Argument(
        None, metavar="ENV", help="Environment (default --env, then the config's)."
    ),
    tag: str = typer.Option(None, "--tag", "-t", metavar="TAG", help="Image tag to render with."),
    k8s_version: str = typer.Option(
        None,
        "--k8s-version",
        metavar="VERSION",
        help="Kubernetes version to validate for (default from config).",
    ),
    all_envs: bool = typer.Option(False, "--all", help="Lint every Kubernetes environment."),
) -> None:
    """Validate the manifests of ENV: strict schemas plus policy; exit 1 on findings."""
    from tradewise_ops.core.render import kubernetes_environment_names, render_environment
    from tradewise_ops.core.validate import check_version, validate

    state = get_state(ctx)
    term = state.terminal
    config = state.config()
    version = check_version(k8s_version or config.kubernetes_version)
    if all_envs:
        if env:  # (--env / TRADEWISE_ENV is ignored: --all says which ones)
            raise BadInputError("--all lints every Kubernetes environment: give no ENV with it")
        environments = [state.environment(n) for n in kubernetes_environment_names(config)]
    else:
        environments = [state.environment(env)]
    caches = state.render_caches()
    findings: list[Any] = []
    counted = 0
    for environment in environments:
        use_tag = tag
        if use_tag is None and environment.require_pinned_tag:
            use_tag = PLACEHOLDER_TAG
            term.info(f"{environment.name}: no --tag, images checked with {PLACEHOLDER_TAG}")
        objects = render_environment(
            config, environment, tag=use_tag, k8s_version=version, caches=caches
        )
        counted += len(objects)
        findings.extend(
            validate(objects, version, require_pinned=environment.require_pinned_tag, caches=caches)
        )
    names = ", ".join(e.name for e in environments)
    rows = [(f.kind, f.name, f.path, f.rule, f.message) for f in findings]
    human: Any = "\n".join(str(f) for f in findings) if findings else None
    if term.machine_output or findings:
        term.result(
            [f.to_dict() for f in findings],
            human if human is not None else TableData(["kind", "name", "path", "rule"], rows),
        )
    if findings:
        raise GoalMissedError(f"{len(findings)} finding(s) in {counted} objects of {names}")
    term.success(f"{names}: {counted} objects, no findings (Kubernetes {version})")
