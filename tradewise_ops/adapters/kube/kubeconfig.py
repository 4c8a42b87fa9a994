"""Which cluster, as whom, in which namespace: kubeconfig or in-cluster config, as kubectl.

``load`` resolves ``KUBECONFIG`` (several files joined by ``:``) or ``~/.kube/config``, the
context (given, else the first file's ``current-context``), its user and namespace; with no
kubeconfig at all, the in-cluster service account. ``kubernetes`` is imported inside ``load``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

from tradewise_ops.errors import ConfigError, UnreachableError


@dataclass(frozen=True)
class Connection:
    """What ``load`` found: an ``ApiClient`` and who and where it talks to."""

    api_client: Any
    server: str
    context: str | None
    user: str | None
    namespace: str | None  # the context's (or the service account's); None: not set


def kubeconfig_files() -> list[str]:
    """The kubeconfig files kubectl would read: ``KUBECONFIG``'s existing ones, else the default."""
    raw = os.environ.get("KUBECONFIG")
    if raw:
        return [p for p in raw.split(os.pathsep) if p and os.path.exists(os.path.expanduser(p))]
    default = os.path.expanduser("~/.kube/config")
    return [default] if os.path.exists(default) else []


def first_current_context(files: list[str]) -> str | None:
    """kubectl's rule: the first file that sets ``current-context`` wins."""
    import yaml

    for path in files:
        try:
            with open(os.path.expanduser(path), encoding="utf-8") as fh:
                doc = yaml.safe_load(fh) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(doc, dict) and doc.get("current-context"):
            return str(doc["current-context"])
    return None


def load(context: str | None = None, config_file: str | None = None) -> Connection:
    """A client for ``context`` (default: the current one) of the kubeconfig, like kubectl.

    Reads ``config_file``, else ``KUBECONFIG``, else ``~/.kube/config``; with none of them, the
    in-cluster service account. ``ConfigError`` when the kubeconfig or the context is unusable,
    ``UnreachableError`` when there is no configuration at all. The client does not retry (the
    transport does, with backoff).
    """
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    files = [config_file] if config_file else kubeconfig_files()
    cfg = client.Configuration()
    user = None
    ctx_namespace = None
    if files:
        joined = os.pathsep.join(files)
        try:
            contexts, current = config.list_kube_config_contexts(config_file=joined)
        except (ConfigException, OSError, ValueError) as exc:
            raise ConfigError(f"kubeconfig {joined} cannot be read: {exc}") from None
        names = [c["name"] for c in contexts or []]
        chosen = context or first_current_context(files) or (current or {}).get("name")
        if chosen is None:
            raise ConfigError(
                f"kubeconfig {joined} has no current context: pass --context "
                f"(one of: {', '.join(names) or 'none'})"
            )
        if chosen not in names:
            raise ConfigError(
                f"context {chosen!r} is not in kubeconfig {joined}: use one of "
                f"{', '.join(names) or 'none'} (or set the environment's `context`)"
            )
        entry = next(c for c in contexts if c["name"] == chosen)
        user = (entry.get("context") or {}).get("user")
        ctx_namespace = (entry.get("context") or {}).get("namespace")
        try:
            config.load_kube_config(config_file=joined, context=chosen, client_configuration=cfg)
        except (ConfigException, OSError, ValueError) as exc:
            raise ConfigError(f"context {chosen!r} of {joined} is not usable: {exc}") from None
        context = chosen
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=cfg)
        except ConfigException as exc:
            raise UnreachableError(f"in-cluster config is not usable: {exc}") from None
        context = "in-cluster"
        user = "serviceaccount"
        sa_ns = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
        with contextlib.suppress(OSError):
            with open(sa_ns, encoding="utf-8") as fh:
                ctx_namespace = fh.read().strip()
    else:
        raise UnreachableError(
            "no Kubernetes configuration: no KUBECONFIG, no ~/.kube/config, not in a cluster",
            hint="point KUBECONFIG at a kubeconfig or pass --context",
        )
    cfg.retries = False  # the gateway retries itself, with backoff
    return Connection(client.ApiClient(configuration=cfg), cfg.host, context, user, ctx_namespace)
