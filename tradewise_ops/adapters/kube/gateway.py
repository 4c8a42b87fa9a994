"""``KubeGateway``: every Kubernetes API call tradewise makes, as verbs on plain dicts.

Reads (get, find, list, events), writes (server-side apply, create, patch, update, scale, delete)
and watches (``kube.watching``) of one context and namespace. Each goes through the gateway's one
request path (``kube.transport``: counted, retried, failures mapped by status in ``kube.errors``);
where a kind lives comes from ``kube.discovery``; which cluster and user from ``kube.kubeconfig``.
Every wait is bounded: ``connect_timeout`` (5 s) for a connection, ``request_timeout`` (20 s) for
an answer, ``total_timeout`` (30 s) for one call with its retries; watches keep their own long
read timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tradewise_ops.adapters.kube import kubeconfig
from tradewise_ops.adapters.kube.discovery import Discovery, KindInfo
from tradewise_ops.adapters.kube.streams import TextStream, read_json
from tradewise_ops.adapters.kube.transport import RequestLog, Transport
from tradewise_ops.adapters.kube.watching import WatchEvent, watch
from tradewise_ops.errors import BadInputError, ConflictError, NotFoundError

FIELD_MANAGER = "tradewise"

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}

# how long to wait for the API server, unless the config says otherwise (``kubernetes.*``)
CONNECT_TIMEOUT = 5.0  # s for a connection
REQUEST_TIMEOUT = 20.0  # s for an answer (a watch has its own, as long as the watch)

_List = list  # ``KubeGateway.list`` shadows the builtin inside the class


def default_total(connect_timeout: float, request_timeout: float) -> float:
    """The most one call may take with its retries, when not set: 30 s, or one full attempt."""
    return max(30.0, connect_timeout + request_timeout)


class KubeGateway:
    """Every Kubernetes API call tradewise makes. See ``docs/contracts.md`` "Kubernetes gateway"."""

    def __init__(
        self,
        connection: kubeconfig.Connection,
        *,
        namespace: str | None = None,
        retries: int = 4,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        connect_timeout: float = CONNECT_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
        total_timeout: float | None = None,
    ) -> None:
        self.namespace = namespace or connection.namespace or "default"
        self.context = connection.context
        self.server = connection.server
        self.user = connection.user
        self.transport = Transport(
            connection.access,
            where=self.where,
            user=self.user,
            namespace=self.namespace,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            total_timeout=total_timeout or default_total(connect_timeout, request_timeout),
        )
        self.discovery = Discovery(self.transport.send, self.namespace)
        self._send = self.transport.send  # the one request path
        self._path = self.discovery.path

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_kubeconfig(
        cls,
        context: str | None = None,
        namespace: str | None = None,
        config_file: str | None = None,
        **options: Any,
    ) -> KubeGateway:
        """A gateway for ``context`` (default: the current one) of the kubeconfig, like kubectl.

        Reads ``config_file``, else ``KUBECONFIG`` (several files joined by ``:``), else
        ``~/.kube/config``; with none of them, the in-cluster service account. The namespace is
        ``namespace``, else the context's, else ``default``. ``options`` are those of the
        constructor (retries, backoff, timeouts).
        """
        return cls(kubeconfig.load(context, config_file), namespace=namespace, **options)

    @classmethod
    def from_environment(
        cls, env: Any, context: str | None = None, namespace: str | None = None, **options: Any
    ) -> KubeGateway:
        """A gateway for a ``kubernetes`` environment of the config: its context, namespace and
        API timeouts (``kubernetes.*`` of the environment; ``options`` win)."""
        if not getattr(env, "is_kubernetes", False):
            raise BadInputError(
                f"environment {env.name!r} is of kind {env.kind!r}, not a Kubernetes cluster"
            )
        settings = getattr(env, "kubernetes", None)
        if settings is not None:
            options.setdefault("connect_timeout", settings.connect_timeout)
            options.setdefault("request_timeout", settings.request_timeout)
            options.setdefault("total_timeout", settings.total_timeout)
        return cls.from_kubeconfig(
            context=context or env.context, namespace=namespace or env.namespace, **options
        )

    def close(self) -> None:
        """Release the HTTP connections."""
        self.transport.close()

    @property
    def request_count(self) -> int:
        """Requests sent so far (watch connections count one each)."""
        return self.log.count

    @property
    def where(self) -> str:
        """``the Kubernetes API at URL (context C)`` for messages."""
        return f"the Kubernetes API at {self.server} (context {self.context or '-'})"

    @property
    def log(self) -> RequestLog:
        """Every request sent so far (``count``, ``entries``)."""
        return self.transport.log

    # -- discovery ------------------------------------------------------------------------
    def served(self, api_version: str, kind: str) -> bool:
        """Whether the cluster serves ``kind`` in ``api_version`` (one request per groupVersion)."""
        return self.discovery.served(api_version, kind)

    def discover(self) -> set[tuple[str, str]]:
        """Every ``(apiVersion, kind)`` the cluster serves (``/api/v1``, ``/apis``, each group)."""
        return self.discovery.discover()

    def kind_info(self, kind: str, api_version: str | None = None) -> KindInfo:
        """Where ``kind`` lives; known kinds need no request, others are discovered."""
        return self.discovery.kind_info(kind, api_version)

    # -- reads ----------------------------------------------------------------------------
    def get(
        self,
        kind: str,
        name: str,
        *,
        namespace: str | None = None,
        api_version: str | None = None,
    ) -> dict[str, Any]:
        """The object ``kind/name``; ``NotFoundError`` when missing."""
        info = self.kind_info(kind, api_version)
        return dict(
            self._send("GET", self._path(info, name, namespace), what=("get", info.resource, name))
        )

    def find(
        self,
        kind: str,
        name: str,
        *,
        namespace: str | None = None,
        api_version: str | None = None,
    ) -> dict[str, Any] | None:
        """Like ``get``, but None when missing."""
        try:
            return self.get(kind, name, namespace=namespace, api_version=api_version)
        except NotFoundError:
            return None

    def list_with_version(
        self,
        kind: str,
        label_selector: str | None = None,
        *,
        namespace: str | None = None,
        api_version: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """The objects of ``kind`` matching the selectors, and the list's resourceVersion."""
        info = self.kind_info(kind, api_version)
        doc = self._send(
            "GET",
            self._path(info, None, namespace),
            {"labelSelector": label_selector, "fieldSelector": field_selector},
            what=("list", info.resource, None),
        )
        items = doc.get("items") or []
        for item in items:  # lists carry no kind/apiVersion per item on a real server
            item.setdefault("kind", info.kind)
            item.setdefault("apiVersion", info.api_version)
        return items, str((doc.get("metadata") or {}).get("resourceVersion") or "")

    def list(
        self,
        kind: str,
        label_selector: str | None = None,
        *,
        namespace: str | None = None,
        api_version: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """The objects of ``kind`` in the namespace matching ``label_selector``."""
        return self.list_with_version(
            kind,
            label_selector,
            namespace=namespace,
            api_version=api_version,
            field_selector=field_selector,
        )[0]

    def events(
        self,
        involved_name: str | None = None,
        *,
        involved_kind: str | None = None,
        warnings_only: bool = False,
        namespace: str | None = None,
    ) -> _List[dict[str, Any]]:
        """Events of the namespace (about ``involved_kind/involved_name``), oldest first."""
        selectors = []
        if involved_name:
            selectors.append(f"involvedObject.name={involved_name}")
        if involved_kind:
            selectors.append(f"involvedObject.kind={involved_kind}")
        if warnings_only:
            selectors.append("type=Warning")
        items = self.list("Event", namespace=namespace, field_selector=",".join(selectors) or None)
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    # -- writes ---------------------------------------------------------------------------
    def apply(
        self,
        obj: dict[str, Any],
        *,
        dry_run: bool = False,
        force: bool = True,
        field_manager: str = FIELD_MANAGER,
    ) -> dict[str, Any]:
        """Server-side apply ``obj`` (field manager ``tradewise``, ``force`` for our fields).

        Creates or updates; the answer is the object as stored. A 409 (a conflict with another
        field manager, or a lost race) is retried once on the spot, then raised.
        """
        info = self.kind_info(obj["kind"], obj.get("apiVersion"))
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        namespace = meta.get("namespace")
        query = {
            "fieldManager": field_manager,
            "force": "true" if force else None,
            "dryRun": "All" if dry_run else None,
        }
        path = self._path(info, name, namespace)
        for attempt in range(2):
            try:
                return dict(
                    self._send(
                        "PATCH",
                        path,
                        query,
                        body=obj,
                        content_type=PATCH_TYPES["apply"],
                        what=("patch", info.resource, name),
                    )
                )
            except ConflictError:
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj``; ``ConflictError`` when it already exists."""
        info = self.kind_info(obj["kind"], obj.get("apiVersion"))
        meta = obj.get("metadata") or {}
        return dict(
            self._send(
                "POST",
                self._path(info, None, meta.get("namespace")),
                {"fieldManager": FIELD_MANAGER},
                body=obj,
                content_type="application/json",
                what=("create", info.resource, meta.get("name")),
            )
        )

    def patch(
        self,
        kind: str,
        name: str,
        patch: Any,
        type: str = "merge",  # noqa: A002 - the patch type, as kubectl calls it
        *,
        namespace: str | None = None,
        api_version: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """Patch ``kind/name``: ``type`` is merge, strategic or json (apply: use ``apply``)."""
        if type not in PATCH_TYPES or type == "apply":
            raise BadInputError(f"patch type {type!r} is not one of merge, strategic, json")
        info = self.kind_info(kind, api_version)
        path = self._path(info, name, namespace) + (f"/{subresource}" if subresource else "")
        return dict(
            self._send(
                "PATCH",
                path,
                {"fieldManager": FIELD_MANAGER},
                body=patch,
                content_type=PATCH_TYPES[type],
                what=("patch", info.resource + (f"/{subresource}" if subresource else ""), name),
            )
        )

    def update(
        self,
        kind: str,
        name: str,
        mutate: Callable[[dict[str, Any]], dict[str, Any] | None],
        *,
        namespace: str | None = None,
        api_version: str | None = None,
        attempts: int = 5,
    ) -> dict[str, Any]:
        """Read-modify-write ``kind/name`` with PUT; on 409 read it again and re-apply ``mutate``.

        ``mutate`` gets the fresh object and returns the new one (or changes it in place and
        returns None).
        """
        info = self.kind_info(kind, api_version)
        path = self._path(info, name, namespace)
        for attempt in range(attempts):
            current = self.get(kind, name, namespace=namespace, api_version=api_version)
            changed = mutate(current)
            body = current if changed is None else changed
            try:
                return dict(
                    self._send(
                        "PUT",
                        path,
                        {"fieldManager": FIELD_MANAGER},
                        body=body,
                        content_type="application/json",
                        what=("update", info.resource, name),
                    )
                )
            except ConflictError:
                if attempt == attempts - 1:
                    raise
                self.transport.pause(attempt + 1)
        raise AssertionError("unreachable")  # pragma: no cover

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT ``obj`` as it is, carrying its ``metadata.resourceVersion``: ``ConflictError``
        when the object changed since that version (no retry: the caller decides who won)."""
        info = self.kind_info(obj["kind"], obj.get("apiVersion"))
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        return dict(
            self._send(
                "PUT",
                self._path(info, name, meta.get("namespace")),
                {"fieldManager": FIELD_MANAGER},
                body=obj,
                content_type="application/json",
                what=("update", info.resource, name),
            )
        )

    def scale(
        self,
        kind: str,
        name: str,
        replicas: int,
        *,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Set ``spec.replicas`` through the ``scale`` subresource; returns the Scale object."""
        info = self.kind_info(kind)
        return dict(
            self._send(
                "PATCH",
                self._path(info, name, namespace) + "/scale",
                {"fieldManager": FIELD_MANAGER},
                body={"spec": {"replicas": int(replicas)}},
                content_type=PATCH_TYPES["merge"],
                what=("patch", f"{info.resource}/scale", name),
            )
        )

    def read_scale(self, kind: str, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        """The ``scale`` subresource of ``kind/name``."""
        info = self.kind_info(kind)
        return dict(
            self._send(
                "GET",
                self._path(info, name, namespace) + "/scale",
                what=("get", f"{info.resource}/scale", name),
            )
        )

    def delete(
        self,
        kind: str,
        name: str,
        *,
        namespace: str | None = None,
        api_version: str | None = None,
        missing_ok: bool = True,
        resource_version: str | None = None,
    ) -> bool:
        """Delete ``kind/name`` (foreground-free, background propagation); False when missing.

        ``resource_version``: only that version of it (a DeleteOptions precondition);
        ``ConflictError`` when the object changed since.
        """
        info = self.kind_info(kind, api_version)
        options = None
        if resource_version is not None:
            options = {
                "apiVersion": "v1",
                "kind": "DeleteOptions",
                "preconditions": {"resourceVersion": resource_version},
            }
        try:
            self._send(
                "DELETE",
                self._path(info, name, namespace),
                {"propagationPolicy": "Background"},
                body=options,
                content_type="application/json" if options else None,
                what=("delete", info.resource, name),
            )
            return True
        except NotFoundError:
            if missing_ok:
                return False
            raise

    def ensure_namespace(self, namespace: str | None = None) -> bool:
        """Create the namespace when it does not exist; True when it was created."""
        ns = namespace or self.namespace
        if self.find("Namespace", ns) is not None:
            return False
        try:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        except ConflictError:
            return False
        return True

    # -- watches --------------------------------------------------------------------------
    def watch(
        self,
        kinds: Iterable[str],
        since_rv: str | None = None,
        timeout: float = 60.0,
        *,
        label_selector: str | None = None,
        namespace: str | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[WatchEvent]:
        """Events of every kind in ``kinds`` (namespace-wide) until ``timeout`` s or ``stop``.

        See ``kube.watching.watch``: one connection per kind, resumed from the last
        resourceVersion when dropped, re-listed (SYNC events) on 410 Gone. Closing the generator
        stops its threads.
        """
        return watch(
            self,
            kinds,
            since_rv,
            timeout,
            label_selector=label_selector,
            namespace=namespace,
            stop=stop,
        )

    # -- text and proxied answers (``kube.streams``) ------------------------------------------
    def pod_log(
        self,
        name: str,
        *,
        container: str | None = None,
        follow: bool = False,
        since_seconds: int | None = None,
        tail_lines: int | None = None,
        timestamps: bool = False,
        namespace: str | None = None,
        read_timeout: float | None = None,
    ) -> TextStream:
        """The log of pod ``name`` (``GET .../pods/NAME/log``) as a ``TextStream`` of lines.

        ``follow`` keeps it open for new lines (``close()`` it from any thread to stop);
        ``read_timeout`` defaults to the request timeout, a day when following. A container
        waiting to start is ``BadInputError`` (the server's 400), a missing pod ``NotFoundError``.
        """
        info = self.kind_info("Pod")
        query = {
            "container": container,
            "follow": "true" if follow else None,
            "sinceSeconds": since_seconds,
            "tailLines": tail_lines,
            "timestamps": "true" if timestamps else None,
        }
        read = read_timeout or (86400.0 if follow else self.transport.request_timeout)
        response = self._send(
            "GET",
            self._path(info, name, namespace) + "/log",
            query,
            stream=True,
            timeout=(5.0, read),
            what=("get", "pods/log", name),
        )
        return TextStream(response)

    def proxy_get_json(
        self,
        service: str,
        port: str | int,
        path: str,
        *,
        namespace: str | None = None,
        timeout: float = 10.0,
    ) -> Any:
        """``GET path`` on ``service:port`` through the API server's service proxy, as JSON.

        ``/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH``: the application's own answer,
        reached with the kubeconfig's credentials (no port-forward). A non-2xx answer is an error
        like any other (5xx retried first), so read endpoints that answer 200.
        """
        info = self.kind_info("Service")
        base = self._path(info, service, namespace) + f":{port}"
        response = self._send(
            "GET",
            f"{base}/proxy/{path.lstrip('/')}",
            stream=True,
            timeout=(5.0, timeout),
            what=("get", "services/proxy", service),
        )
        return read_json(response)
