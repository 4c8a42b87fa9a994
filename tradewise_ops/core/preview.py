"""The preview of a new slot, as data: a Service selecting only it, and an Ingress host for it.

Before any traffic moves, a blue-green release opens a preview of the new slot: the Service
``tradewise-api-preview`` (the API Service's ports, selecting the new slot's pods alone) and, where
the environment has a domain, the Ingress ``tradewise-ingress-preview`` for
``<release.preview_host>.<domain>`` (``preview.tradewise.example.com``), with the main Ingress's
class, TLS rule (its secret, or ``release.preview_tls_secret``) and annotations. The preview
Ingress publishes the API's public paths plus ``/api/health/ready`` (the readiness smoke check
needs it; the host lives only while the release is verified). Both are removed once the release
is decided. A canary uses the same Service under another name (``tradewise-api-canary``) as the
backend of its canary Ingress. Pure: built from the rendered objects.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from tradewise_ops.core.bluegreen import API_SERVICE, SLOT_LABEL
from tradewise_ops.core.verify import PREVIEW_INGRESS, PREVIEW_SERVICE

MAIN_INGRESS = "tradewise-ingress"
PREVIEW_LABEL = "tradewise.io/preview"
PREVIEW_PATHS = (
    ("/api/stock-analysis", "Exact"),
    ("/api/health", "Exact"),
    ("/api/health/ready", "Exact"),
    ("/api/openapi.json", "Exact"),
)
_KEPT_ANNOTATIONS = ("nginx.ingress.kubernetes.io/ssl-redirect",)


def preview_hostname(domain: str | None, preview_host: str) -> str | None:
    """``preview.<domain>``, or None without a domain."""
    return f"{preview_host}.{domain}" if domain else None


def _find(objects: Sequence[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    for obj in objects:
        if obj.get("kind") == kind and (obj.get("metadata") or {}).get("name") == name:
            return dict(obj)
    return None


def slot_service(
    rendered: Sequence[Mapping[str, Any]], slot: str, name: str = PREVIEW_SERVICE
) -> dict[str, Any]:
    """A Service like the API Service, named ``name``, selecting only ``slot``'s pods."""
    base = _find(rendered, "Service", API_SERVICE)
    if base is None:
        raise ValueError(f"the rendered objects have no Service/{API_SERVICE}")
    svc = copy.deepcopy(base)
    meta = svc["metadata"]
    meta["name"] = name
    meta.setdefault("labels", {})[PREVIEW_LABEL] = slot
    meta.pop("annotations", None)
    svc["spec"]["selector"] = {**(svc["spec"].get("selector") or {}), SLOT_LABEL: slot}
    return svc


def preview_ingress(
    rendered: Sequence[Mapping[str, Any]],
    host: str | None,
    *,
    name: str = PREVIEW_INGRESS,
    service: str = PREVIEW_SERVICE,
    tls_secret: str | None = None,
    paths: Sequence[tuple[str, str]] = PREVIEW_PATHS,
    annotations: Mapping[str, str] | None = None,
    label: str = "preview",
) -> dict[str, Any]:
    """An Ingress for ``host`` (None: any host) sending ``paths`` to ``service``, with the main
    Ingress's class and TLS rule: TLS when the main one has it (its secret unless
    ``tls_secret``)."""
    main = _find(rendered, "Ingress", MAIN_INGRESS)
    if main is None:
        raise ValueError(f"the rendered objects have no Ingress/{MAIN_INGRESS}")
    meta = copy.deepcopy(main["metadata"])
    meta["name"] = name
    meta.setdefault("labels", {})[PREVIEW_LABEL] = label
    kept = {k: v for k, v in (meta.get("annotations") or {}).items() if k in _KEPT_ANNOTATIONS}
    kept.update(annotations or {})
    if kept:
        meta["annotations"] = kept
    else:
        meta.pop("annotations", None)
    spec: dict[str, Any] = {}
    if main["spec"].get("ingressClassName"):
        spec["ingressClassName"] = main["spec"]["ingressClassName"]
    tls = main["spec"].get("tls") or []
    if tls and host:
        secret = tls_secret or tls[0].get("secretName")
        spec["tls"] = [{"hosts": [host], "secretName": secret}]
    spec["rules"] = [
        {
            **({"host": host} if host else {}),
            "http": {
                "paths": [
                    {
                        "path": path,
                        "pathType": path_type,
                        "backend": {"service": {"name": service, "port": {"name": "http"}}},
                    }
                    for path, path_type in paths
                ]
            },
        }
    ]
    return {"apiVersion": main["apiVersion"], "kind": "Ingress", "metadata": meta, "spec": spec}


def preview_objects(
    rendered: Sequence[Mapping[str, Any]],
    slot: str,
    *,
    domain: str | None,
    preview_host: str,
    tls_secret: str | None = None,
) -> list[dict[str, Any]]:
    """The preview of ``slot``: its Service, and its Ingress where there is a domain."""
    out = [slot_service(rendered, slot)]
    host = preview_hostname(domain, preview_host)
    if host is not None and _find(rendered, "Ingress", MAIN_INGRESS) is not None:
        out.append(preview_ingress(rendered, host, tls_secret=tls_secret))
    return out
