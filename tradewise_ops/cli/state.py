"""What the root callback builds and every command reads from ``ctx.obj``."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from tradewise_ops.cli.terminal import Terminal
from tradewise_ops.errors import BadInputError

if TYPE_CHECKING:  # the config module loads on first use, not at start-up (--help)
    from tradewise_ops.adapters.kube import KubeGateway
    from tradewise_ops.adapters.render_cache import RenderCaches
    from tradewise_ops.core.config import Config, Environment


@dataclass
class State:
    """The global options of one run, the terminal, and the config loaded on first use."""

    terminal: Terminal
    config_path: str | None = None
    env_name: str | None = None
    context: str | None = None
    namespace: str | None = None
    output: str = "table"
    yes: bool = False
    verbose: bool = False
    _config: Config | None = field(default=None, repr=False)

    def config(self) -> Config:
        """The config (``--config``, ``TRADEWISE_CONFIG``, ``./tradewise.yaml``, embedded)."""
        if self._config is None:
            from tradewise_ops.core.config import load_config

            self._config = load_config(self.config_path)
        return self._config

    def environment(self, positional: str | None = None) -> Environment:
        """The environment named on the command line (positional, then ``--env``), else the default.

        ``--namespace`` and ``--context`` override the environment's own values.
        """
        if positional and self.env_name and positional != self.env_name:
            cfg = self.config()
            if cfg.environment(positional).name != cfg.environment(self.env_name).name:
                raise BadInputError(
                    f"environment given twice: {positional!r} and --env {self.env_name!r}; give one"
                )
        env = self.config().environment(positional or self.env_name)
        changes: dict[str, Any] = {}
        if self.namespace:
            changes["namespace"] = self.namespace
        if self.context:
            changes["context"] = self.context
        return dataclasses.replace(env, **changes) if changes else env

    def confirm(self, env: Environment, action: str) -> None:
        """Ask before ``action`` on an environment that wants confirmation, unless ``--yes``."""
        if not env.confirm or self.yes:
            return
        if not sys.stdin.isatty():
            raise BadInputError(
                f"{action} on {env.name} needs confirmation: add --yes (stdin is not a terminal)"
            )
        if not typer.confirm(f"{action} on {env.name}?", default=False, err=True):
            raise typer.Exit(1)

    # -- what several commands share (so that no command imports another) ----------------------
    def kube_gateway(self, env: Environment) -> KubeGateway:
        """The gateway for ``env`` (its context and namespace, or --context / --namespace).

        ``BadInputError`` when ``env`` is not a Kubernetes environment.
        """
        from tradewise_ops.adapters.kube import KubeGateway

        if not env.is_kubernetes:
            raise BadInputError(
                f"environment {env.name!r} is of kind {env.kind!r}: this command needs a "
                "Kubernetes environment"
            )
        return KubeGateway.from_environment(env)

    def render_checked(
        self,
        env: Environment,
        tag: str | None,
        *,
        maintenance: bool = False,
        image_digests: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Render ``env`` and validate it; findings stop here (``GoalMissedError``, exit 1).

        The first 20 findings are shown as errors on stderr before it raises.
        """
        from tradewise_ops.core.render import render_environment
        from tradewise_ops.core.validate import validate
        from tradewise_ops.errors import GoalMissedError

        config = self.config()
        caches = self.render_caches()
        objects = render_environment(
            config,
            env,
            tag=tag,
            k8s_version=config.kubernetes_version,
            image_digests=image_digests,
            maintenance=maintenance,
            caches=caches,
        )
        findings = validate(
            objects, config.kubernetes_version, require_pinned=env.require_pinned_tag, caches=caches
        )
        if findings:
            for finding in findings[:20]:
                self.terminal.error(str(finding))
            raise GoalMissedError(
                f"the manifests of {env.name} have {len(findings)} findings: nothing was applied",
                hint=f"see `tradewise lint {env.name}`",
            )
        return objects

    def tables_view(self, tables: list[dict[str, Any]], footer: str | None = None) -> Any:
        """Tables given as data (``columns``, ``rows``, ``title``), then a line: one renderable.

        Tables without rows are left out.
        """
        from rich.console import Group
        from rich.text import Text

        from tradewise_ops.cli.terminal import TableData, render_table

        parts: list[Any] = [
            render_table(TableData(t["columns"], t["rows"], title=t.get("title")))
            for t in tables
            if t["rows"]
        ]
        if footer is not None:
            parts.append(Text(footer))
        return Group(*parts)

    @contextlib.contextmanager
    def sigterm_as_ctrl_c(self) -> Iterator[None]:
        """While the block runs (in the main thread), SIGTERM raises ``KeyboardInterrupt``, so a
        release that is told to stop cleans up as it does on Ctrl-C; the old handler after."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def interrupt(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, interrupt)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    # -- render caches: what render_environment and validate keep between runs ---------------
    _render_caches: RenderCaches | None = field(default=None, repr=False)

    def render_caches(self) -> RenderCaches:
        """The render caches of this run (compiled templates, schema results), made on first use.

        In ``$XDG_CACHE_HOME/tradewise``; ``TRADEWISE_NO_CACHE=1`` gives caches that keep nothing.
        Pass it to ``render_environment(..., caches=)`` and ``validate(..., caches=)``.
        """
        if self._render_caches is None:
            from tradewise_ops.adapters.render_cache import RenderCaches

            self._render_caches = RenderCaches.from_environment()
        return self._render_caches


def get_state(ctx: typer.Context) -> State:
    """The ``State`` of this run, from the root context."""
    root = ctx.find_root()
    obj = root.obj
    if not isinstance(obj, State):  # a command invoked without the root callback (tests)
        obj = State(terminal=Terminal())
        root.obj = obj
    return obj
