"""Credentials from a kubeconfig user's login plugin (``exec``, ``auth-provider``), via kubernetes.

Cloud clusters log in through a plugin: an ``exec`` command printing an ``ExecCredential`` (EKS,
GKE, AKS, OIDC helpers) or a legacy ``auth-provider`` (gcp, oidc). For those users only, the
``kubernetes`` package's own loader runs the plugin; its token is asked again before every request
(the package re-runs the plugin when the token expires) and a client certificate it returns is used
for TLS. Every other kubeconfig is read by ``kube.kubeconfig`` without importing ``kubernetes``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from tradewise_ops.errors import ConfigError


@dataclass(frozen=True)
class PluginCredentials:
    """What a login plugin gave: an ``Authorization`` header source and/or a client certificate."""

    authorization: Callable[[], str | None] | None = field(default=None, compare=False)
    client_cert: bytes | None = None
    client_key: bytes | None = None


class _Collect(logging.Handler):
    """Keeps the messages the ``kubernetes`` loader logs (it logs a failing plugin, not raises)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def credentials(files: list[str], context: str, user: str) -> PluginCredentials:
    """Run the login plugin of ``user`` (context ``context`` of ``files``) through ``kubernetes``.

    ``ConfigError`` naming the user when the plugin fails or gives neither a token nor a client
    certificate (with what the plugin said).
    """
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    cfg = client.Configuration()
    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    try:
        config.load_kube_config(
            config_file=os.pathsep.join(files), context=context, client_configuration=cfg
        )
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"the login plugin of user {user!r} (context {context!r}) failed: {exc}"
        ) from None
    finally:
        root.removeHandler(collect)
    cert = _read(cfg.cert_file)
    key = _read(cfg.key_file)
    token = cfg.api_key.get("BearerToken")
    if not token and cert is None:
        said = "; ".join(collect.messages) or "no token and no client certificate"
        raise ConfigError(
            f"the login plugin of user {user!r} (context {context!r}) gave no credentials: {said}",
            hint="run the plugin's login (e.g. `aws sso login`, `gcloud auth login`) and retry",
        )

    def authorization() -> str | None:
        value = cfg.get_api_key_with_prefix("BearerToken")  # re-runs an expired plugin
        return str(value) if value else None

    return PluginCredentials(authorization if token else None, cert, key)


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        return fh.read()
    return None
