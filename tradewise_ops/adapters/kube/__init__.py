"""The Kubernetes gateway: the only package that imports ``kubernetes`` (for login plugins only).

``KubeGateway`` resolves kubeconfig / context / namespace like kubectl (``KUBECONFIG``, the current
context, in-cluster config), sends every request through one place that counts it and bounds it
in time, maps failures to the project's errors (unreachable, or TLS refused -> ``UnreachableError``
naming server and context; 403 -> ``ForbiddenError`` naming verb and resource; 404 ->
``NotFoundError``; 409 -> ``ConflictError``), retries 5xx / 429 / dropped connections with bounded
backoff, and resumes watches from their last resourceVersion (re-listing on 410 Gone). Objects go
in and come out as plain dicts.

One module each, along the seams:

- ``kubeconfig``: which cluster, as whom, in which namespace (kubeconfig, in-cluster), read
  without ``kubernetes``;
- ``plugins``: credentials from ``exec`` / ``auth-provider`` login plugins (the only importer of
  ``kubernetes``, for those users only);
- ``pool``: the HTTP(S) connections to the server (TLS, client certificate, proxy);
- ``transport``: the one request path (count, send, bound in time, retry, map the failure);
- ``errors``: an answer's status -> the project's error; what is worth retrying;
- ``discovery``: where each kind lives, which kinds are served;
- ``watching``: watches of several kinds, merged, resumed, re-listed;
- ``gateway``: ``KubeGateway``, the verbs callers use.

``kubernetes`` is imported inside ``plugins`` only, for kubeconfig users that log in through a
plugin; every other kubeconfig, and in-cluster config, is read without it.
"""

from __future__ import annotations

from tradewise_ops.adapters.kube.discovery import KNOWN_KINDS, KindInfo
from tradewise_ops.adapters.kube.gateway import FIELD_MANAGER, PATCH_TYPES, KubeGateway
from tradewise_ops.adapters.kube.transport import RequestLog
from tradewise_ops.adapters.kube.watching import WatchEvent

__all__ = [
    "FIELD_MANAGER",
    "KNOWN_KINDS",
    "PATCH_TYPES",
    "KindInfo",
    "KubeGateway",
    "RequestLog",
    "WatchEvent",
]
