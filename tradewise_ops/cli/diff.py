"""``tradewise diff [ENV] [--tag T]``: rendered vs live, as ``kubectl diff`` shows it.

Exit 0: no change; 1: changes; above 1: an error (as kubectl).
"""

from __future__ import annotations

import typer

from tradewise_ops.cli.state import get_state
from tradewise_ops.errors import TradewiseError


def register(app: typer.Typer) -> None:
    """Add ``diff`` to the root app."""
    app.command("diff")(diff)


def diff(
    ctx: typer.Context,
    env_name: str = typer.Argument(None, metavar="ENV", help="Environment (default: --env)."),
    tag: str = typer.Option(None, "--tag", help="Image tag (default: the running release's)."),
) -> None:
    """Unified diff of every object: live vs after a server-side dry-run apply (and prunes)."""
    try:
        changed = _diff(ctx, env_name, tag)
    except TradewiseError as exc:
        if exc.exit_code < 2:  # 1 means "changes" here: errors must be above 1
            exc.exit_code = 2
        raise
    if changed:
        raise typer.Exit(1)


def _diff(ctx: typer.Context, env_name: str | None, tag: str | None) -> bool:
    from tradewise_ops.adapters.live import (
        as_live_slot,
        check_served,
        live_and_predicted,
        maintenance_is_on,
    )
    from tradewise_ops.adapters.release_store import ReleaseStore
    from tradewise_ops.core import release as rel
    from tradewise_ops.core.plan import object_diff
    from tradewise_ops.core.release import ObjectRef

    state = get_state(ctx)
    env = state.environment(env_name)
    gw = state.kube_gateway(env)
    releases = ReleaseStore(gw, env.name, env.namespace).list()
    running = rel.current(releases)
    if tag is None and running is not None:
        tag = running.tag
    rendered = state.render_checked(env, tag, maintenance=maintenance_is_on(gw))
    rendered = as_live_slot(gw, rendered, env.namespace)  # blue-green: the slot serving now
    served = check_served(gw, rendered, strict=False)
    objects = [o for o in rendered if served(o["apiVersion"], o["kind"])]
    pairs = live_and_predicted(gw, objects)
    chunks = []
    changed: list[str] = []
    for ref, (live, predicted) in pairs.items():
        text = object_diff(ref, live, predicted)
        if text:
            chunks.append(text)
            changed.append(str(ref))
    previous = [m for r in (running, rel.latest(releases)) if r for m in r.manifests]
    for ref in rel.prune_refs(previous, rendered):
        live = gw.find(ref.kind, ref.name, namespace=ref.namespace, api_version=ref.api_version)
        if live is not None:
            chunks.append(object_diff(ObjectRef.of(live), live, None))
            changed.append(f"{ref} (prune)")
    term = state.terminal
    if term.machine_output:
        term.result(
            {"environment": env.name, "tag": tag, "changed": changed, "diff": "".join(chunks)}
        )
    else:
        term.raw("".join(chunks))
    term.info(f"{len(changed)} objects differ" if changed else f"{env.name} is up to date")
    return bool(changed)
