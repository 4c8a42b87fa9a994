"""What the day-2 commands (restart, logs, doctor) share: the gateway, rollout progress.

Not a command module. Its two helpers are the same as ``kube_gateway`` and ``LiveProgress`` in
``cli/deploy.py``, which other commands import from there today; both belong on the CLI state
object / terminal (``State.gateway(env)``, ``terminal.RolloutProgress``): when they move there,
this module goes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradewise_ops.cli.state import State
from tradewise_ops.cli.terminal import TableData
from tradewise_ops.errors import BadInputError

if TYPE_CHECKING:
    from tradewise_ops.adapters.kube import KubeGateway
    from tradewise_ops.core.config import Environment
    from tradewise_ops.core.rollout import WorkloadStatus


def kube_gateway(state: State, env: Environment) -> KubeGateway:
    """The gateway for ``env`` (its context and namespace, or --context / --namespace)."""
    from tradewise_ops.adapters.kube import KubeGateway

    if not env.is_kubernetes:
        raise BadInputError(
            f"environment {env.name!r} is of kind {env.kind!r}: this command needs a Kubernetes "
            "environment"
        )
    return KubeGateway.from_environment(env)


class RolloutProgress:
    """Per-workload progress on stderr: a refreshing table on a terminal, else one line per change.

    Use as a context manager around the wait so the live table is always closed.
    """

    def __init__(self, state: State) -> None:
        self.term = state.terminal
        self.rows: dict[tuple[str, str], WorkloadStatus] = {}
        self._live: Any = None

    def __call__(self, status: WorkloadStatus) -> None:
        if not self.term.interactive or self.term.machine_output:
            self.term.info("  " + status.line())
            return
        self.rows[(status.kind, status.name)] = status
        if self._live is None:
            from rich.live import Live

            self._live = Live(console=self.term.err, refresh_per_second=8, transient=True)
            self._live.start()
        self._live.update(self._table())

    def _table(self) -> Any:
        from tradewise_ops.cli.terminal import render_table

        return render_table(
            TableData(
                ["WORKLOAD", "READY", "UP-TO-DATE", "AVAILABLE", "STATUS"],
                [
                    [
                        f"{w.kind}/{w.name}",
                        f"{w.ready}/{w.desired}",
                        w.updated,
                        w.available,
                        w.state,
                    ]
                    for w in self.rows.values()
                ],
            )
        )

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __enter__(self) -> RolloutProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
