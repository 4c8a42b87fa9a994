"""Which pods' logs ``tradewise logs`` reads, and how each line is shown: pure, from pod dicts.

A component's pods are those labelled ``app.kubernetes.io/name=tradewise`` and
``app.kubernetes.io/component=<component>`` (every slot of a blue-green API). Of each pod the
log of its first container is read (tradewise's pods run one), once that container has run: a
container still waiting to start (image pull, scheduling) has no log yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradewise_ops.errors import BadInputError

NAME_LABEL = "app.kubernetes.io/name=tradewise"
LOG_COMPONENTS = (
    "api",
    "worker",
    "precompute",
    "postgres",
    "redis",
    "maintenance",
    "scaler",
    "loadtest",
)
# waiting reasons after which a container has run before (its last run's log is served)
_HAS_RUN = frozenset({"CrashLoopBackOff", "RunContainerError"})


def selector_for(component: str | None) -> str:
    """The label selector of ``component``'s pods (every tradewise pod when None)."""
    if component is None:
        return NAME_LABEL
    name = {"workers": "worker"}.get(component, component)
    if name not in LOG_COMPONENTS:
        raise BadInputError(
            f"no component {component!r}: use one of {', '.join(LOG_COMPONENTS)} (or none: all)"
        )
    return f"{NAME_LABEL},app.kubernetes.io/component={name}"


def main_container(pod: Mapping[str, Any]) -> str:
    """The name of the pod's first container (``main`` when it names none)."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("name") or "main")


def _status(pod: Mapping[str, Any], container: str) -> Mapping[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == container:
            return dict(cs)
    return {}


def log_ready(pod: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the main container has a log to read, and if not why (its waiting reason)."""
    cs = _status(pod, main_container(pod))
    state = cs.get("state") or {}
    if "running" in state or "terminated" in state or cs.get("lastState"):
        return True, ""
    reason = (state.get("waiting") or {}).get("reason") or (
        (pod.get("status") or {}).get("phase") or "Pending"
    )
    return reason in _HAS_RUN, str(reason)


def restarts(pod: Mapping[str, Any]) -> int:
    """The main container's restart count (a new run has a new log)."""
    return int(_status(pod, main_container(pod)).get("restartCount") or 0)


@dataclass(frozen=True)
class LogLine:
    """One line of one pod's log."""

    pod: str
    container: str
    text: str

    def prefixed(self) -> str:
        """``[pod/NAME/CONTAINER] text``, as ``kubectl logs --prefix`` shows it."""
        return f"[pod/{self.pod}/{self.container}] {self.text}"
