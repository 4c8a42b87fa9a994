"""The emulator's HTTP server: a Kubernetes-like REST API on 127.0.0.1, in a background thread.

Serves discovery, CRUD, PATCH (apply / merge / strategic / json), the ``scale`` and ``status``
subresources, list with label and field selectors, and watches (chunked JSON lines, honouring
``resourceVersion`` and ``timeoutSeconds``, 410 Gone when too old). Faults and RBAC denials are
injected per request; every request is logged for assertions and benchmarks (with its
``Authorization`` header and, over TLS, the common name of the client's certificate). With an
``ssl.SSLContext`` the server speaks TLS; each handshake runs in the connection's own thread, and a
failed one is counted (``Emulator.tls_failures``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from tests.k8s_emulator.store import ApiError, ResourceType


@dataclass
class Fault:
    """Answer the next ``count`` requests matching ``method`` and ``path`` (regex) with ``status``.

    ``status=0`` drops the connection without an answer. For watches, ``after_events`` lets that
    many events through and then drops the stream (a watch cut mid-way).
    """

    method: str
    path: str
    status: int
    count: int = 1
    reason: str = ""
    message: str = ""
    watch: bool | None = None
    after_events: int = 0
    delay: float = 0.0  # > 0: answer normally, but only after this many seconds
    after_processing: bool = False  # status 0: do the request, then drop the answer
    hits: int = 0

    def matches(self, method: str, path: str, is_watch: bool) -> bool:
        if self.count <= 0:
            return False
        if self.method not in ("*", method):
            return False
        if self.watch is not None and self.watch != is_watch:
            return False
        return re.search(self.path, path) is not None


@dataclass
class RequestRecord:
    """One request the emulator served."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    status: int = 0
    watch: bool = False
    at: float = field(default_factory=time.monotonic)
    authorization: str = ""  # the Authorization header as sent
    client_cn: str | None = None  # over TLS: the CN of the client certificate, if one was sent


_REASONS = {
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each answer waits ~40 ms for a delayed ACK
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    # one entry point for every verb
    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    # -------------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        emu = self.server.emulator
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        is_watch = method == "GET" and query.get("watch") in ("true", "1")
        record = RequestRecord(
            method,
            path,
            query,
            ctype,
            watch=is_watch,
            authorization=self.headers.get("Authorization") or "",
            client_cn=_peer_cn(self.connection),
        )
        with emu.lock:
            emu.requests.append(record)
            fault = next((f for f in emu.faults if f.matches(method, path, is_watch)), None)
            if fault is not None:
                fault.count -= 1
                fault.hits += 1
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)
            fault = None
        if fault is not None and fault.after_processing and not is_watch:
            with contextlib.suppress(ApiError):
                emu.check_rbac(method, path, query, is_watch)
                self._route(method, path, query, raw, ctype, record, None)
            record.status = 0
            self._drop()  # the change happened; the client never hears of it
            return
        try:
            if fault is not None and not (is_watch and fault.after_events):
                record.status = fault.status
                if fault.status == 0:
                    self._drop()
                    return
                raise ApiError(
                    fault.status,
                    fault.reason or _REASONS.get(fault.status, "InternalError"),
                    fault.message or f"injected fault: {fault.status}",
                )
            emu.check_rbac(method, path, query, is_watch)
            status, body = self._route(method, path, query, raw, ctype, record, fault)
            if status == -1:  # a watch: already streamed
                return
            record.status = status
            self._send_json(status, body)
        except ApiError as exc:
            record.status = exc.code
            self._send_json(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            return

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(data)

    # -------------------------------------------------------------------------------------
    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        raw: bytes,
        ctype: str,
        record: RequestRecord,
        fault: Fault | None,
    ) -> tuple[int, Any]:
        emu = self.server.emulator
        store = emu.store
        if (
            method == "GET"
            and path in ("/", "/version", "/api", "/apis")
            or (method == "GET" and re.fullmatch(r"/api/v1|/apis/[^/]+(/[^/]+)?", path))
        ):
            return 200, emu.discovery(path)
        proxied = _PROXY.match(unquote(path))  # the client may send ``web%3Ahttp``
        if proxied is not None:
            return self._proxy(method, proxied, query, raw, ctype, record)
        parsed = _parse_resource_path(path)
        if parsed is None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource {path}"
            )
        group, version, namespace, plural, name, sub = parsed
        if group == "" and plural == "namespaces" and namespace and not name:
            # /api/v1/namespaces/NAME[/status]: the namespace object itself
            plural, name, namespace = "namespaces", namespace, None
        res = store.resource(group, version, plural)
        if not res.namespaced:
            namespace = None
        if (group, plural, sub) == ("", "pods", "log") and name and method == "GET":
            self._pod_log(res, namespace, name, query, record)
            return -1, None
        if sub and sub not in res.subresources:
            raise ApiError(404, "NotFound", f"{res.plural} has no subresource {sub}")
        dry_run = query.get("dryRun") == "All"
        manager = query.get("fieldManager")
        body: Any = None
        if raw:
            try:
                body = (
                    yaml.safe_load(raw)
                    if ctype.endswith("yaml")
                    else json.loads(raw.decode("utf-8"))
                )
            except (ValueError, yaml.YAMLError) as exc:
                raise ApiError(400, "BadRequest", f"cannot decode body: {exc}") from None
        if method == "GET" and not name:
            if record.watch:
                self._watch(res, namespace, query, fault)
                return -1, None
            items, rv = store.list(
                res, namespace, query.get("labelSelector"), query.get("fieldSelector")
            )
            return 200, {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            }
        if method == "POST" and not name:
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "body must be an object")
            obj = store.create(res, namespace, body, dry_run=dry_run, manager=manager)
            return 201, obj
        if not name:
            raise ApiError(405, "MethodNotAllowed", f"{method} on a collection is not served")
        if sub == "scale":
            return 200, self._scale(res, namespace, name, method, body, ctype, dry_run)
        status_only = sub == "status"
        if method == "GET":
            return 200, store.get(res, namespace, name)
        if method == "PUT":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "body must be an object")
            return 200, store.replace(
                res, namespace, name, body, dry_run=dry_run, status_only=status_only
            )
        if method == "PATCH":
            existed = store.find(res, namespace, name) is not None
            obj = store.patch(
                res,
                namespace,
                name,
                ctype,
                body,
                dry_run=dry_run,
                manager=manager,
                force=query.get("force") in ("true", "1"),
                status_only=status_only,
            )
            return (200 if existed else 201), obj
        if method == "DELETE":
            options = body if isinstance(body, dict) else {}
            store.delete(
                res, namespace, name, dry_run=dry_run, preconditions=options.get("preconditions")
            )
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "group": res.group, "kind": res.plural},
            }
        raise ApiError(405, "MethodNotAllowed", f"{method} not served")

    def _scale(
        self,
        res: ResourceType,
        namespace: str | None,
        name: str,
        method: str,
        body: Any,
        ctype: str,
        dry_run: bool,
    ) -> dict[str, Any]:
        store = self.server.emulator.store
        with store.lock:
            obj = store.get(res, namespace, name)
            scale = _scale_of(obj)
            if method == "GET":
                return scale
            if method == "PUT":
                new_scale = body
            elif method == "PATCH":
                if ctype.startswith("application/json-patch"):
                    from tests.k8s_emulator.store import json_patch

                    new_scale = json_patch(scale, body)
                else:
                    from tests.k8s_emulator.store import merge_patch

                    new_scale = merge_patch(scale, body)
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} on scale")
            given = (new_scale.get("metadata") or {}).get("resourceVersion")
            if given and given != obj["metadata"]["resourceVersion"]:
                raise store.conflict(res, name)
            replicas = (new_scale.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(422, "Invalid", "spec.replicas: must be a non-negative integer")
            new = copy.deepcopy(obj)
            new.setdefault("spec", {})["replicas"] = replicas
            updated = store._store_update(res, namespace, obj, new, dry_run)
            return _scale_of(updated)

    # -------------------------------------------------------------------------------------
    def _proxy(
        self,
        method: str,
        match: re.Match[str],
        query: dict[str, str],
        raw: bytes,
        ctype: str,
        record: RequestRecord,
    ) -> tuple[int, Any]:
        """The service proxy: forward to the backend the test registered; answer with its
        status and body (a real API server forwards to one endpoint of the Service)."""
        import urllib.error
        import urllib.request
        from urllib.parse import urlencode

        emu = self.server.emulator
        namespace, service = match.group("ns"), match.group("svc")
        port = match.group("port")
        svc = emu.store.get(emu.resource("Service"), namespace, service)  # 404 when missing
        ports = (svc.get("spec") or {}).get("ports") or []
        if port and not any(port in (str(p.get("name")), str(p.get("port"))) for p in ports):
            raise ApiError(
                503, "ServiceUnavailable", f'no service port "{port}" found for service "{service}"'
            )
        backend = emu.proxies.get((namespace, service))
        if backend is None:
            raise ApiError(
                503, "ServiceUnavailable", f'no endpoints available for service "{service}"'
            )
        url = backend + (match.group("rest") or "/") + (f"?{urlencode(query)}" if query else "")
        request = urllib.request.Request(url, data=raw or None, method=method)
        if ctype:
            request.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
                status, body, kind = answer.status, answer.read(), answer.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            status, body, kind = exc.code, exc.read(), exc.headers.get_content_type()
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(
                503,
                "ServiceUnavailable",
                f"error trying to reach service: {getattr(exc, 'reason', exc)}",
            ) from None
        record.status = status
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return -1, None

    def _pod_log(
        self,
        res: ResourceType,
        namespace: str | None,
        name: str,
        query: dict[str, str],
        record: RequestRecord,
    ) -> None:
        """``GET .../pods/NAME/log``: text/plain; ``follow=true`` streams (chunked)."""
        from tests.k8s_emulator.podlogs import check_started, render, resolve_container, select

        emu = self.server.emulator
        logs = emu.pod_logs
        pod = emu.store.get(res, namespace, name)  # 404 when missing
        container = resolve_container(pod, query.get("container"))
        check_started(pod, container)
        key = (namespace or "", name, container)
        timestamps = query.get("timestamps") in ("true", "1")
        with logs.changed:
            entries = select(logs.lines.get(key, []), query)
            sent = len(logs.lines.get(key, []))
        record.status = 200
        if query.get("follow") not in ("true", "1"):
            data = b"".join(render(e, timestamps) for e in entries)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(data: bytes) -> None:
            if data:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        try:
            chunk(b"".join(render(e, timestamps) for e in entries))
            while True:
                with logs.changed:
                    current = logs.lines.get(key, [])
                    new = current[sent:]
                    sent = len(current)
                    ended = key in logs.ended
                    if not new and not ended:
                        logs.changed.wait(0.25)
                if new:
                    chunk(b"".join(render(e, timestamps) for e in new))
                    continue
                gone = emu.store.find(res, namespace, name) is None
                if ended or gone or emu.stopping:
                    break
            self._end_chunks()
        except OSError:
            return

    def _watch(
        self, res: ResourceType, namespace: str | None, query: dict[str, str], fault: Fault | None
    ) -> None:
        emu = self.server.emulator
        store = emu.store
        timeout = float(query.get("timeoutSeconds") or emu.default_watch_timeout)
        deadline = time.monotonic() + timeout
        label_selector = query.get("labelSelector")
        field_selector = query.get("fieldSelector")
        rv_text = query.get("resourceVersion") or ""
        initial: list[dict[str, Any]] = []
        with store.lock:
            if rv_text in ("", "0"):
                items, cursor = store.list(res, namespace, label_selector, field_selector)
                initial = [{"type": "ADDED", "object": obj} for obj in items]
            else:
                cursor = int(rv_text)
                if cursor < store.compacted_rv:
                    gone = ApiError(
                        410,
                        "Expired",
                        f"too old resource version: {cursor} ({store.compacted_rv})",
                    )
                    initial = [{"type": "ERROR", "object": gone.status()}]
                    cursor = -1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        drop_after = fault.after_events if fault is not None else None

        def send(event: dict[str, Any]) -> bool:
            nonlocal sent
            if drop_after is not None and sent >= drop_after:
                self._drop()
                return False
            line = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()
            sent += 1
            return True

        try:
            for event in initial:
                if not send(event):
                    return
            if cursor < 0:
                self._end_chunks()
                return
            while True:
                with store.lock:
                    events, _ = store.events_since(cursor, res, namespace)
                    if not events:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or emu.stopping:
                            break
                        store.changed.wait(min(remaining, 0.25))
                        continue
                for event in events:
                    cursor = event.rv
                    obj = event.obj
                    if not _selected(obj, label_selector, field_selector):
                        continue
                    if not send({"type": event.type, "object": obj}):
                        return
                if drop_after is not None and sent >= drop_after:
                    self._drop()
                    return
            self._end_chunks()
        except ApiError as exc:  # compacted while watching
            with contextlib.suppress(OSError):
                send({"type": "ERROR", "object": exc.status()})
                self._end_chunks()
        except OSError:
            return

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True


def _selected(obj: dict[str, Any], label_selector: str | None, field_selector: str | None) -> bool:
    from tests.k8s_emulator.store import field_selector_matches, selector_matches

    return selector_matches(label_selector, obj["metadata"].get("labels")) and (
        field_selector_matches(field_selector, obj)
    )


def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector", {}).get("matchLabels", {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        },
    }


_PROXY = re.compile(
    r"^/api/v1/namespaces/(?P<ns>[^/]+)/services/(?:https?:)?(?P<svc>[^/:]+)(?::(?P<port>[^/]+))?"
    r"/proxy(?P<rest>/.*)?$"
)
_CORE = re.compile(r"^/api/(?P<version>v1)(?P<rest>/.*)$")
_GROUP = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)(?P<rest>/.*)$")


def _parse_resource_path(
    path: str,
) -> tuple[str, str, str | None, str, str | None, str | None] | None:
    m = _CORE.match(path) or _GROUP.match(path)
    if not m:
        return None
    group = m.groupdict().get("group") or ""
    version = m.group("version")
    parts = m.group("rest").strip("/").split("/")
    namespace = None
    if parts[0] == "namespaces" and len(parts) >= 3:
        namespace = parts[1]
        parts = parts[2:]
    elif parts[0] == "namespaces" and len(parts) == 2:
        return group, version, parts[1], "namespaces", None, None
    plural = parts[0]
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else None
    return group, version, namespace, plural, name, sub


def _peer_cn(conn: Any) -> str | None:
    if not isinstance(conn, ssl.SSLSocket):
        return None
    cert = conn.getpeercert() or {}
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: Any
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[Any, Any]:
        conn, addr = super().get_request()
        if self.tls is not None:  # the handshake happens in the connection's thread
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(10)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError) as exc:
                with self.emulator.lock:
                    self.emulator.tls_failures.append(str(exc))
                return
        super().finish_request(request, client_address)
