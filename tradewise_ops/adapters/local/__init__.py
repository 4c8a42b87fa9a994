"""The local stacks: ``LocalStack`` (processes, kind ``local``), ``ComposeStack`` (``compose``).

Both offer ``up``, ``down``, ``status``, ``counts``, ``scale``, ``logs``, ``url`` and ``is_up``
(see docs/contracts.md, "Local stack").
"""

from __future__ import annotations

from tradewise_ops.adapters.local.common import ProcessInfo, Progress, StackResult
from tradewise_ops.adapters.local.compose import ComposeStack
from tradewise_ops.adapters.local.processes import LocalStack
from tradewise_ops.core.config import Environment
from tradewise_ops.errors import BadInputError

__all__ = ["ComposeStack", "LocalStack", "ProcessInfo", "StackResult", "stack_for"]


def stack_for(env: Environment, progress: Progress | None = None) -> LocalStack | ComposeStack:
    """The stack of an environment of kind ``local`` or ``compose``."""
    if env.kind == "local":
        return LocalStack(env, progress=progress)
    if env.kind == "compose":
        return ComposeStack(env, progress=progress)
    raise BadInputError(
        f"environment {env.name} is of kind {env.kind}: `tradewise local` runs environments of "
        "kind local or compose (use `tradewise deploy` for a cluster)"
    )
