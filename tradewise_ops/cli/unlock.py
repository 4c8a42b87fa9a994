"""``tradewise unlock ENV``: break an environment's release lock, after confirmation."""

from __future__ import annotations

import datetime
import sys

import typer

from tradewise_ops.cli.state import get_state
from tradewise_ops.errors import BadInputError, ConflictError


def register(app: typer.Typer) -> None:
    """Add ``unlock`` to the root app."""
    app.command("unlock")(unlock)


def unlock(
    ctx: typer.Context,
    env_name: str = typer.Argument(None, metavar="ENV", help="Environment (default: --env)."),
) -> None:
    """Break ENV's release lock, held by a deploy, rollback or scale that is gone.

    Shows who holds it and asks first (--yes to skip). A holder that still renews it is running:
    breaking its lock lets a second writer in beside it.
    """
    from tradewise_ops.adapters.lock import ReleaseLock

    state = get_state(ctx)
    env = state.environment(env_name)
    gw = state.kube_gateway(env)
    term = state.terminal
    lock = ReleaseLock(gw, env.name, namespace=env.namespace, command="")
    holder, lease = lock.read()
    now = datetime.datetime.now(datetime.UTC)
    if lease is None:
        term.result({"environment": env.name, "locked": False, "unlocked": False},
                    f"{env.name} is not locked")  # fmt: skip
        return
    sentence = holder.sentence(now) if holder is not None else "held by nobody"
    if holder is not None and not holder.expired(now):
        term.warn(
            f"the lock of {env.name} is {sentence}: that run still renews it; breaking it lets "
            "another writer in beside it"
        )
    else:
        term.info(f"the lock of {env.name} is {sentence}")
    if not state.yes:
        if not sys.stdin.isatty():
            raise BadInputError(
                f"unlock {env.name} needs confirmation: add --yes (stdin is not a terminal)"
            )
        if not typer.confirm(f"break the lock of {env.name}?", default=False, err=True):
            raise typer.Exit(1)
    version = str((lease.get("metadata") or {}).get("resourceVersion") or "") or None
    try:
        lock.break_lock(version)
    except ConflictError:
        raise ConflictError(
            f"the lock of {env.name} changed while you decided (renewed or taken by another run): "
            "nothing was removed",
            hint=f"look again: tradewise unlock {env.name}",
        ) from None
    data = {
        "environment": env.name,
        "locked": True,
        "unlocked": True,
        "lock": holder.to_dict(now) if holder is not None else None,
    }
    term.success(f"unlocked {env.name}")
    term.result(data, f"removed the lock of {env.name} ({sentence})")
