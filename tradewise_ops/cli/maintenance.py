"""``tradewise maintenance on|off [ENV]``: point the Ingress at the maintenance page and back."""

from __future__ import annotations

import typer

from tradewise_ops.cli.state import get_state
from tradewise_ops.errors import BadInputError


def register(app: typer.Typer) -> None:
    """Add ``maintenance`` to the root app."""
    app.command("maintenance")(maintenance)


def maintenance(
    ctx: typer.Context,
    mode: str = typer.Argument(..., metavar="on|off", help="Switch maintenance mode on or off."),
    env_name: str = typer.Argument(None, metavar="ENV", help="Environment (default: --env)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would change; change nothing."),
) -> None:
    """Switch the Ingress to the maintenance page (on) or back to the API (off)."""
    from tradewise_ops.adapters.live import maintenance_is_on, maintenance_page_deployed
    from tradewise_ops.core.render import render_ingress
    from tradewise_ops.errors import NotFoundError

    if mode not in ("on", "off"):
        raise BadInputError(f"maintenance mode {mode!r}: use on or off")
    state = get_state(ctx)
    env = state.environment(env_name)
    gw = state.kube_gateway(env)
    wanted = mode == "on"
    was = maintenance_is_on(gw)
    data = {"environment": env.name, "maintenance": mode, "changed": was != wanted}
    if was == wanted:
        state.terminal.result(data, f"maintenance is already {mode} in {env.name}")
        return
    if dry_run:
        state.terminal.result({**data, "dry_run": True}, f"would switch maintenance {mode}")
        return
    if wanted and not maintenance_page_deployed(gw):
        raise NotFoundError(
            f"the maintenance page is not deployed in {env.name} ({env.namespace})",
            hint=f"run `tradewise deploy {env.name}` first",
        )
    state.confirm(env, f"maintenance {mode}")
    gw.apply(render_ingress(state.config(), env, maintenance=wanted))
    state.terminal.success(
        f"maintenance {mode} in {env.name}: the Ingress now points at "
        + ("the maintenance page" if wanted else "the API")
    )
    state.terminal.result(data)
