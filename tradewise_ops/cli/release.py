"""``tradewise release finalize ENV``: delete the previous blue-green slot once its time is up."""

from __future__ import annotations

import typer

from tradewise_ops.cli.state import get_state


def register(app: typer.Typer) -> None:
    """Add the ``release`` group to the root app."""
    group = typer.Typer(
        name="release",
        help="Releases decided by evidence: finalize (delete the kept previous slot).",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    group.command("finalize")(finalize)
    app.add_typer(group, name="release")


def finalize(
    ctx: typer.Context,
    env_name: str = typer.Argument(None, metavar="ENV", help="Environment (default: --env)."),
    now: bool = typer.Option(
        False, "--now", help="Delete the previous slot even though its window is not over."
    ),
) -> None:
    """Delete the API slot kept after a blue-green switch once release.keep_previous is over
    (with --now at once); a slot still in its window stays, and says until when."""
    from tradewise_ops.adapters.deployer import Deployer

    state = get_state(ctx)
    env = state.environment(env_name)
    gw = state.kube_gateway(env)
    deployer = Deployer(gw, env.name, namespace=env.namespace)
    if now:
        state.confirm(env, "delete the previous slot now (no instant rollback after)")
    deleted, kept = deployer.finalize(force=now)
    data = {
        "environment": env.name,
        "deleted": [{"slot": k.slot, "revision": k.revision, "until": k.until} for k in deleted],
        "kept": [{"slot": k.slot, "revision": k.revision, "until": k.until} for k in kept],
    }
    parts = [f"deleted slot {k.slot} (revision {k.revision or '-'})" for k in deleted]
    parts += [
        f"slot {k.slot} (revision {k.revision}) is kept until {k.until}: `tradewise rollback` "
        "switches back to it until then (--now deletes it)"
        for k in kept
    ]
    state.terminal.result(data, "; ".join(parts) or f"{env.name} has no previous slot to delete")
