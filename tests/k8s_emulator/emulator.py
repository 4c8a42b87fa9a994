"""``Emulator``: the store, the HTTP server, faults, RBAC, controllers, and a kubeconfig for it."""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.k8s_emulator.controllers import Controllers
from tests.k8s_emulator.podlogs import PodLogs, containers_of
from tests.k8s_emulator.server import Fault, RequestRecord, _Handler, _Server
from tests.k8s_emulator.store import (
    CORE,
    METRICS_API,
    PROMETHEUS_OPERATOR,
    ApiError,
    ResourceType,
    Store,
)

_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class Emulator:
    """A Kubernetes-like API server on 127.0.0.1 for tests; see ``docs/contracts.md`` "Emulator".

    ``prometheus_operator=False`` leaves ``monitoring.coreos.com`` out of discovery, like a
    cluster without the Prometheus operator. ``namespaces`` are created at start.
    """

    def __init__(
        self,
        *,
        prometheus_operator: bool = True,
        namespaces: Iterable[str] = ("default",),
        user: str = "tester",
    ) -> None:
        resources = list(CORE) + (list(PROMETHEUS_OPERATOR) if prometheus_operator else [])
        self.store = Store(resources=resources)
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.requests: list[RequestRecord] = []
        self.denied: list[tuple[str, str]] = []  # (verb, resource plural) RBAC refuses
        self.tls_failures: list[str] = []  # TLS handshakes that failed (TLS mode only)
        self.tls: ssl.SSLContext | None = None
        self.user = user
        self.default_watch_timeout = 30.0
        self.stopping = False
        self.controllers = Controllers(self)
        self.pod_logs = PodLogs()
        self.proxies: dict[tuple[str, str], str] = {}  # (namespace, service) -> backend URL
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        for ns in namespaces:
            self.create_namespace(ns)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, tls: ssl.SSLContext | None = None) -> Emulator:
        """Serve on a free loopback port in a daemon thread; over TLS with ``tls`` (a server
        context: its certificate, and the CA it checks client certificates with, if any)."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.emulator = self
        server.tls = self.tls = tls
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the controllers, end open watches, close the server."""
        self.stopping = True
        self.controllers.stop()
        self.pod_logs.wake()
        with self.store.lock:
            self.store.changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "emulator not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def write_kubeconfig(
        self,
        path: str | Path,
        contexts: Iterable[str] = ("emulator",),
        namespace: str | None = None,
        current: str | None = None,
    ) -> Path:
        """A kubeconfig whose ``contexts`` all point at this emulator (user ``self.user``)."""
        names = list(contexts)
        doc: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": self.user, "user": {"token": "emulator-token"}}],
            "contexts": [
                {
                    "name": name,
                    "context": {
                        "cluster": "emulator",
                        "user": self.user,
                        **({"namespace": namespace} if namespace else {}),
                    },
                }
                for name in names
            ],
            "current-context": current or names[0],
        }
        path = Path(path)
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        return path

    # -- objects (direct access for tests and controllers) --------------------------------
    def create_namespace(self, name: str) -> None:
        if self.store.find(self.store.resources[0], None, name) is None:
            self.store.create(self.store.resources[0], None, {"metadata": {"name": name}})

    def resource(self, kind: str) -> ResourceType:
        for res in self.store.resources:
            if res.kind == kind:
                return res
        raise KeyError(kind)

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object, or None."""
        return self.store.find(self.resource(kind), namespace, name)

    def list(self, kind: str, namespace: str | None = None, selector: str | None = None) -> list:
        return self.store.list(self.resource(kind), namespace, selector)[0]

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace ``obj`` directly (as another client would)."""
        res = self.resource(obj["kind"])
        ns = obj["metadata"].get("namespace")
        name = obj["metadata"]["name"]
        if self.store.find(res, ns, name) is None:
            return self.store.create(res, ns, obj)
        return self.store.replace(res, ns, name, obj)

    # -- the metrics API and the service proxy ---------------------------------------------
    def serve_metrics_api(self) -> None:
        """Serve ``metrics.k8s.io/v1beta1`` (PodMetrics, NodeMetrics), as metrics-server does."""
        self.store.serve(METRICS_API)

    def set_pod_metrics(
        self, namespace: str, pod: str, cpu: str, memory: str, container: str | None = None
    ) -> dict[str, Any]:
        """The pod's usage as metrics-server would report it (``cpu`` ``250m`` or
        ``250000000n``, ``memory`` ``900Mi``), for ``container`` (default: the pod's first)."""
        obj = self.get("Pod", namespace, pod) or {}
        name = container or (containers_of(obj) or ["main"])[0]
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return self.put_pod_metrics(namespace, pod, labels, {name: (cpu, memory)})

    def proxy_service(self, namespace: str, service: str, url: str) -> None:
        """``.../services/SERVICE[:PORT]/proxy/PATH`` forwards to ``url`` + PATH (a server the
        test runs on loopback), as the API server forwards to one of the Service's endpoints."""
        self.proxies[(namespace, service)] = url.rstrip("/")

    # -- pod logs (``GET .../pods/NAME/log``) ----------------------------------------------
    def write_log(
        self,
        namespace: str,
        pod: str,
        lines: str | Iterable[str],
        *,
        container: str | None = None,
        at: float | None = None,
    ) -> None:
        """Append ``lines`` (a string is split on newlines) to the log of ``pod``'s
        ``container`` (default: its first), stamped ``at`` (unix time; default now). Open
        ``follow`` streams get them at once. The pod must exist."""
        obj = self.get("Pod", namespace, pod)
        if obj is None:
            raise KeyError(f"no pod {namespace}/{pod}")
        name = container or (containers_of(obj) or ["main"])[0]
        items = lines.splitlines() if isinstance(lines, str) else list(lines)
        self.pod_logs.write((namespace, pod, name), items, at)

    def end_log(self, namespace: str, pod: str, container: str | None = None) -> None:
        """The container stopped: ``follow`` streams of its log end (after what is written)."""
        obj = self.get("Pod", namespace, pod)
        name = container or (containers_of(obj or {}) or ["main"])[0]
        self.pod_logs.end((namespace, pod, name))

    # -- faults and RBAC ------------------------------------------------------------------
    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        count: int = 1,
        *,
        message: str = "",
        watch: bool | None = None,
        after_processing: bool = False,
    ) -> Fault:
        """The next ``count`` requests ``METHOD`` on a path matching regex ``path`` get ``status``.

        ``status=0`` drops the connection without an answer; with ``after_processing`` the
        request is carried out first (the answer is lost, the change is not).
        """
        fault = Fault(
            method.upper(),
            path,
            status,
            count,
            message=message,
            watch=watch,
            after_processing=after_processing,
        )
        with self.lock:
            self.faults.append(fault)
        return fault

    def delay_next(self, method: str, path: str, seconds: float, count: int = 1) -> Fault:
        """Answer the next ``count`` matching requests normally, after ``seconds``."""
        fault = Fault(method.upper(), path, 200, count, delay=seconds)
        with self.lock:
            self.faults.append(fault)
        return fault

    def drop_watch(self, path: str, after_events: int = 0, count: int = 1) -> Fault:
        """Cut the next ``count`` watches on ``path`` after ``after_events`` events."""
        fault = Fault("GET", path, 0, count, watch=True, after_events=after_events or 0)
        if not after_events:
            fault.after_events = 0
        with self.lock:
            self.faults.append(fault)
        return fault

    def deny(self, verb: str, plural: str) -> None:
        """RBAC: refuse ``verb`` (get, list, watch, create, update, patch, delete) on ``plural``."""
        with self.lock:
            self.denied.append((verb, plural))

    def check_rbac(self, method: str, path: str, query: dict[str, str], is_watch: bool) -> None:
        if not self.denied:
            return
        m = re.match(
            r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?",
            path,
        )
        if not m:
            return
        plural, name, ns = m.group("plural"), m.group("name"), m.group("ns")
        group = m.group("group") or ""
        verb = _VERBS.get(method, method.lower())
        if method == "GET" and not name:
            verb = "watch" if is_watch else "list"
        if (verb, plural) in self.denied:
            what = f"{plural}{'.' + group if group else ''}"
            subject = f' "{name}"' if name else ""
            where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
            raise ApiError(
                403,
                "Forbidden",
                f'{what}{subject} is forbidden: User "{self.user}" cannot {verb} resource '
                f'"{plural}" in API group "{group}"{where}',
                {"name": name or "", "group": group, "kind": plural},
            )

    # -- request log ----------------------------------------------------------------------
    def requests_matching(
        self, method: str | None = None, path: str | None = None
    ) -> list[RequestRecord]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and (path is None or re.search(path, r.path))
            ]

    def reset_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    # -- discovery ------------------------------------------------------------------------
    def serve_prometheus_operator(self) -> None:
        """Install the Prometheus operator's kinds (as if its CRDs were applied)."""
        self.store.serve(PROMETHEUS_OPERATOR)

    def put_pod_metrics(
        self,
        namespace: str,
        pod: str,
        labels: dict[str, str],
        containers: dict[str, tuple[str, str]],
    ) -> dict[str, Any]:
        """A pod's current usage, ``{container: (cpu, memory)}`` like ``("250m", "300Mi")``,
        shaped as metrics-server reports it (timestamp, window, containers[].usage)."""
        return self.put(
            {
                "apiVersion": "metrics.k8s.io/v1beta1",
                "kind": "PodMetrics",
                "metadata": {"name": pod, "namespace": namespace, "labels": dict(labels)},
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "window": "15s",
                "containers": [
                    {"name": name, "usage": {"cpu": cpu, "memory": memory}}
                    for name, (cpu, memory) in containers.items()
                ],
            }
        )

    def serve_vpa(self) -> None:
        """Serve ``autoscaling.k8s.io/v1`` VerticalPodAutoscalers (the VPA's CRD)."""
        from tests.k8s_emulator.store import VPA

        self.store.serve(VPA)

    def discovery(self, path: str) -> dict[str, Any]:
        resources = list(self.store.resources)
        if path == "/":
            paths = {"/api", "/api/v1", "/apis", "/version"}
            paths |= {f"/apis/{r.group}/{r.version}" for r in resources if r.group}
            return {"paths": sorted(paths)}
        if path == "/version":
            return {
                "major": "1",
                "minor": "32",
                "gitVersion": "v1.32.0-tradewise-emulator",
                "platform": "linux/amd64",
            }
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                ],
            }
        groups: dict[str, list[str]] = {}
        for r in resources:
            if r.group and r.version not in groups.setdefault(r.group, []):
                groups[r.group].append(r.version)

        def group_doc(name: str) -> dict[str, Any]:
            versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in groups[name]]
            return {"name": name, "versions": versions, "preferredVersion": versions[0]}

        if path == "/apis":
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [group_doc(g) for g in groups],
            }
        parts = path.strip("/").split("/")
        if parts[0] == "apis" and len(parts) == 2:
            if parts[1] not in groups:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return {"kind": "APIGroup", "apiVersion": "v1", **group_doc(parts[1])}
        group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
        served = [r for r in resources if (r.group, r.version) == (group, version)]
        if not served:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        out = []
        for r in served:
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            out.append(
                {
                    "name": r.plural,
                    "singularName": r.singular(),
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": verbs,
                    "shortNames": list(r.short),
                }
            )
            for sub in r.subresources:
                out.append(
                    {
                        "name": f"{r.plural}/{sub}",
                        "singularName": "",
                        "namespaced": r.namespaced,
                        "kind": "Scale" if sub == "scale" else r.kind,
                        "group": "autoscaling" if sub == "scale" else None,
                        "version": "v1" if sub == "scale" else None,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        for item in out:
            for k in ("group", "version"):
                if item.get(k) is None:
                    item.pop(k, None)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": out,
        }

    # -- waiting helper for tests ---------------------------------------------------------
    def wait_for(self, predicate: Any, timeout: float = 5.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise TimeoutError(f"emulator: timed out waiting for {what or predicate}")
