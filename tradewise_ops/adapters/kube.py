"""The Kubernetes gateway: the only module that imports ``kubernetes``.

``KubeGateway`` resolves kubeconfig / context / namespace like kubectl (``KUBECONFIG``, the current
context, in-cluster config), sends every request through one place that counts it, maps failures
to the project's errors (unreachable -> ``UnreachableError`` naming server and context; 403 ->
``ForbiddenError`` naming verb and resource; 404 -> ``NotFoundError``; 409 -> ``ConflictError``),
retries 5xx / 429 / dropped connections with bounded backoff, and resumes watches from their last
resourceVersion (re-listing on 410 Gone). Objects go in and come out as plain dicts.

``kubernetes`` is imported inside functions only, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tradewise_ops.errors import (
    BadInputError,
    ConfigError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    TradewiseError,
    UnreachableError,
)

FIELD_MANAGER = "tradewise"

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass(frozen=True)
class KindInfo:
    """A kind the cluster serves: where its REST endpoint is."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""

    @property
    def base(self) -> str:
        """``/api/v1`` or ``/apis/GROUP/VERSION``."""
        return (
            f"/apis/{self.api_version}" if "/" in self.api_version else f"/api/{self.api_version}"
        )

    @property
    def resource(self) -> str:
        """``deployments.apps``-style name for messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


# kinds tradewise touches, so that reading them needs no discovery request
KNOWN_KINDS: dict[str, KindInfo] = {
    k.kind: k
    for k in (
        KindInfo("v1", "Namespace", "namespaces", namespaced=False),
        KindInfo("v1", "Pod", "pods"),
        KindInfo("v1", "Service", "services"),
        KindInfo("v1", "ConfigMap", "configmaps"),
        KindInfo("v1", "Secret", "secrets"),
        KindInfo("v1", "Event", "events"),
        KindInfo("v1", "ServiceAccount", "serviceaccounts"),
        KindInfo("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        KindInfo("v1", "Endpoints", "endpoints"),
        KindInfo("apps/v1", "Deployment", "deployments"),
        KindInfo("apps/v1", "StatefulSet", "statefulsets"),
        KindInfo("apps/v1", "ReplicaSet", "replicasets"),
        KindInfo("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        KindInfo("networking.k8s.io/v1", "Ingress", "ingresses"),
        KindInfo("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
        KindInfo("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
        KindInfo("batch/v1", "CronJob", "cronjobs"),
        KindInfo("batch/v1", "Job", "jobs"),
        KindInfo("rbac.authorization.k8s.io/v1", "Role", "roles"),
        KindInfo("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
        KindInfo("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
        KindInfo("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules"),
        KindInfo("monitoring.coreos.com/v1", "PodMonitor", "podmonitors"),
    )
}


@dataclass(frozen=True)
class WatchEvent:
    """One change seen by ``KubeGateway.watch``.

    ``type`` is ADDED, MODIFIED, DELETED, or SYNC (the object as re-listed after a 410 Gone,
    so consumers can refresh their state). ``obj`` is the object as a dict.
    """

    type: str
    kind: str
    name: str
    namespace: str | None
    obj: dict[str, Any]
    resource_version: str


@dataclass
class RequestLog:
    """What the gateway sent: ``count`` and ``(method, path)`` of every request (watches too)."""

    count: int = 0
    entries: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str) -> None:
        with self.lock:
            self.count += 1
            self.entries.append((method, path))


class _Gone(Exception):
    """A watch's resourceVersion is too old (410): re-list."""


class _Retryable(Exception):
    """A failure worth retrying (5xx, 429, a dropped connection)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


_List = list  # ``KubeGateway.list`` shadows the builtin inside the class

_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _kubeconfig_files() -> list[str]:
    raw = os.environ.get("KUBECONFIG")
    if raw:
        return [p for p in raw.split(os.pathsep) if p and os.path.exists(os.path.expanduser(p))]
    default = os.path.expanduser("~/.kube/config")
    return [default] if os.path.exists(default) else []


def _first_current_context(files: list[str]) -> str | None:
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


class KubeGateway:
    """Every Kubernetes API call tradewise makes. See ``docs/contracts.md`` "Kubernetes gateway"."""

    def __init__(
        self,
        api_client: Any,
        *,
        namespace: str,
        context: str | None = None,
        server: str = "",
        user: str | None = None,
        retries: int = 4,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        request_timeout: float = 30.0,
    ) -> None:
        self._api = api_client
        self.namespace = namespace
        self.context = context
        self.server = server
        self.user = user
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.request_timeout = request_timeout
        self.log = RequestLog()
        self._served: dict[str, dict[str, KindInfo] | None] = {}  # groupVersion -> kinds|None
        self._lock = threading.Lock()

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
        ``namespace``, else the context's, else ``default``.
        """
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        files = [config_file] if config_file else _kubeconfig_files()
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
            chosen = context or _first_current_context(files) or (current or {}).get("name")
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
                config.load_kube_config(
                    config_file=joined, context=chosen, client_configuration=cfg
                )
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
        api = client.ApiClient(configuration=cfg)
        return cls(
            api,
            namespace=namespace or ctx_namespace or "default",
            context=context,
            server=cfg.host,
            user=user,
            **options,
        )

    @classmethod
    def from_environment(
        cls, env: Any, context: str | None = None, namespace: str | None = None, **options: Any
    ) -> KubeGateway:
        """A gateway for a ``kubernetes`` environment of the config (its context and namespace)."""
        if not getattr(env, "is_kubernetes", False):
            raise BadInputError(
                f"environment {env.name!r} is of kind {env.kind!r}, not a Kubernetes cluster"
            )
        return cls.from_kubeconfig(
            context=context or env.context, namespace=namespace or env.namespace, **options
        )

    def close(self) -> None:
        """Release the HTTP connections."""
        with contextlib.suppress(Exception):
            self._api.close()

    @property
    def request_count(self) -> int:
        """Requests sent so far (watch connections count one each)."""
        return self.log.count

    @property
    def where(self) -> str:
        """``the Kubernetes API at URL (context C)`` for messages."""
        return f"the Kubernetes API at {self.server} (context {self.context or '-'})"

    # -- the one request path -------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
        what: tuple[str, str, str | None] | None = None,
    ) -> Any:
        """Send one request with retries; the decoded JSON answer (or the raw stream)."""
        attempt = 0
        while True:
            try:
                return self._send_once(
                    method, path, query, body, content_type, stream, timeout, what
                )
            except _Retryable as exc:
                attempt += 1
                if attempt > self.retries:
                    cause = exc.cause
                    if cause is not None and _is_connection_error(cause):
                        raise UnreachableError(
                            f"cannot reach {self.where}: {_short(cause)}",
                            hint="is the cluster up, and is this the right context?",
                        ) from None
                    raise TradewiseError(
                        f"{self.where} kept failing on {method} {path}: {exc} "
                        f"(tried {attempt} times)"
                    ) from None
                time.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))

    def _send_once(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        body: Any,
        content_type: str | None,
        stream: bool,
        timeout: float | tuple[float, float] | None,
        what: tuple[str, str, str | None] | None,
    ) -> Any:
        import urllib3

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        _method, url, headers, _body, _post = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=params,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        data: Any = None
        if body is not None:
            data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        self.log.add(method, path)
        try:
            response = self._api.rest_client.pool_manager.request(
                method,
                url,
                body=data,
                headers=headers,
                timeout=_timeout(timeout if timeout is not None else self.request_timeout),
                preload_content=False,
                retries=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise _Retryable(_short(exc), exc) from None
        if stream and response.status < 300:
            return response
        try:
            raw = response.data
        except urllib3.exceptions.HTTPError as exc:
            raise _Retryable(_short(exc), exc) from None
        finally:
            response.release_conn()
        status = response.status
        if status < 300:
            return json.loads(raw) if raw else {}
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = {"message": raw.decode("utf-8", "replace")[:200]}
        message = doc.get("message") or response.reason or str(status)
        if status in (429, 500, 502, 503, 504):
            raise _Retryable(f"{status} {message}")
        verb, resource, name = what or (_VERBS.get(method, method.lower()), path, None)
        subject = f"{resource}{' ' + repr(name) if name else ''}"
        if status == 401:
            raise ForbiddenError(
                f"{self.where} rejected the credentials of user {self.user or '?'}: {message}"
            )
        if status == 403:
            raise ForbiddenError(
                f"RBAC refused to {verb} {subject} (user {self.user or '?'}, namespace "
                f"{self.namespace}): {message}",
                hint="ask an admin for a Role that grants this verb, or use another context",
            )
        if status == 404:
            raise NotFoundError(f"{subject} not found: {message}")
        if status == 409:
            raise ConflictError(f"conflict on {subject}: {message}")
        if status == 410:
            raise _Gone(message)
        if status in (400, 422):
            raise BadInputError(f"the cluster refused {subject}: {message}")
        raise TradewiseError(f"{self.where} answered {status} to {method} {path}: {message}")

    # -- discovery ------------------------------------------------------------------------
    def _group_version(self, api_version: str) -> dict[str, KindInfo] | None:
        with self._lock:
            if api_version in self._served:
                return self._served[api_version]
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            doc = self._send("GET", path, what=("discover", api_version, None))
            kinds: dict[str, KindInfo] | None = {
                r["kind"]: KindInfo(api_version, r["kind"], r["name"], bool(r.get("namespaced")))
                for r in doc.get("resources", [])
                if "/" not in r["name"]
            }
        except NotFoundError:
            kinds = None
        with self._lock:
            self._served[api_version] = kinds
        return kinds

    def served(self, api_version: str, kind: str) -> bool:
        """Whether the cluster serves ``kind`` in ``api_version`` (one request per groupVersion)."""
        kinds = self._group_version(api_version)
        return kinds is not None and kind in kinds

    def discover(self) -> set[tuple[str, str]]:
        """Every ``(apiVersion, kind)`` the cluster serves (``/api/v1``, ``/apis``, each group)."""
        out: set[tuple[str, str]] = set()
        versions = ["v1"]
        doc = self._send("GET", "/apis", what=("discover", "API groups", None))
        for group in doc.get("groups", []):
            versions.extend(v["groupVersion"] for v in group.get("versions", []))
        for gv in versions:
            for kind in self._group_version(gv) or {}:
                out.add((gv, kind))
        return out

    def kind_info(self, kind: str, api_version: str | None = None) -> KindInfo:
        """Where ``kind`` lives; known kinds need no request, others are discovered."""
        known = KNOWN_KINDS.get(kind)
        if known is not None and (api_version is None or api_version == known.api_version):
            return known
        if api_version is None:
            raise BadInputError(f"kind {kind!r} needs an apiVersion")
        kinds = self._group_version(api_version)
        if not kinds or kind not in kinds:
            raise NotFoundError(f"the cluster does not serve {kind} in {api_version}")
        return kinds[kind]

    def _path(self, info: KindInfo, name: str | None = None, namespace: str | None = None) -> str:
        path = info.base
        if info.namespaced:
            path += f"/namespaces/{quote(namespace or self.namespace, safe='')}"
        path += f"/{info.plural}"
        if name:
            path += f"/{quote(name, safe='')}"
        return path

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
                time.sleep(min(self.backoff * 2**attempt, self.max_backoff))
        raise AssertionError("unreachable")  # pragma: no cover

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
    ) -> bool:
        """Delete ``kind/name`` (foreground-free, background propagation); False when missing."""
        info = self.kind_info(kind, api_version)
        try:
            self._send(
                "DELETE",
                self._path(info, name, namespace),
                {"propagationPolicy": "Background"},
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

        One watch connection per kind, read in threads and merged. Starting at ``since_rv`` (no
        initial ADDED events), or, when None, with the current objects as ADDED. A dropped
        connection resumes from the last resourceVersion seen (with backoff); a 410 Gone
        re-lists and yields the listed objects as SYNC events before watching on. Closing the
        generator stops the threads.
        """
        deadline = time.monotonic() + timeout
        stop = stop or threading.Event()
        out: queue.Queue[WatchEvent | BaseException | None] = queue.Queue()
        kinds = list(kinds)
        threads = []
        responses: _List[Any] = []
        for kind in kinds:
            info = self.kind_info(kind)
            t = threading.Thread(
                target=self._watch_kind,
                args=(info, since_rv, deadline, label_selector, namespace, stop, out, responses),
                daemon=True,
                name=f"watch-{info.plural}",
            )
            threads.append(t)
            t.start()
        finished = 0
        try:
            while finished < len(threads):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or stop.is_set():
                    return
                try:
                    item = out.get(timeout=min(remaining, 0.5))
                except queue.Empty:
                    continue
                if item is None:
                    finished += 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            stop.set()
            for response in list(responses):
                with contextlib.suppress(Exception):
                    response.shutdown() if hasattr(response, "shutdown") else response.close()

    def _watch_kind(
        self,
        info: KindInfo,
        since_rv: str | None,
        deadline: float,
        label_selector: str | None,
        namespace: str | None,
        stop: threading.Event,
        out: queue.Queue[WatchEvent | BaseException | None],
        responses: _List[Any],
    ) -> None:
        rv = since_rv
        failures = 0
        try:
            while not stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0.05:
                    return
                if rv is None:
                    items, rv = self.list_with_version(
                        info.kind, label_selector, namespace=namespace
                    )
                    for obj in items:
                        out.put(_event("ADDED", info, obj))
                try:
                    response = self._send(
                        "GET",
                        self._path(info, None, namespace),
                        {
                            "watch": "true",
                            "resourceVersion": rv,
                            "timeoutSeconds": max(1, int(remaining + 0.999)),
                            "labelSelector": label_selector,
                            "allowWatchBookmarks": "true",
                        },
                        stream=True,
                        timeout=(5.0, remaining + 5.0),
                        what=("watch", info.resource, None),
                    )
                except _Gone:
                    rv = self._resync(info, label_selector, namespace, out)
                    continue
                responses.append(response)
                try:
                    for line in _lines(response):
                        if stop.is_set():
                            return
                        failures = 0
                        doc = json.loads(line)
                        kind = doc.get("type")
                        obj = doc.get("object") or {}
                        if kind == "ERROR":
                            if obj.get("code") == 410:
                                raise _Gone(obj.get("message", "gone"))
                            raise _Retryable(str(obj.get("message")))
                        new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                        if new_rv:
                            rv = new_rv
                        if kind == "BOOKMARK":
                            continue
                        obj.setdefault("kind", info.kind)
                        obj.setdefault("apiVersion", info.api_version)
                        out.put(_event(kind, info, obj))
                except _Gone:
                    rv = self._resync(info, label_selector, namespace, out)
                except Exception as exc:  # a dropped connection: resume from rv with backoff
                    if stop.is_set():
                        return
                    failures += 1
                    if failures > self.retries:
                        raise UnreachableError(
                            f"the watch on {info.resource} at {self.where} keeps dropping: "
                            f"{_short(exc)}"
                        ) from None
                    time.sleep(min(self.backoff * 2 ** (failures - 1), self.max_backoff))
                finally:
                    with contextlib.suppress(ValueError):
                        responses.remove(response)
                    with contextlib.suppress(Exception):
                        response.release_conn()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            if not stop.is_set():
                out.put(exc)
        finally:
            out.put(None)

    def _resync(
        self,
        info: KindInfo,
        label_selector: str | None,
        namespace: str | None,
        out: queue.Queue[WatchEvent | BaseException | None],
    ) -> str:
        items, rv = self.list_with_version(info.kind, label_selector, namespace=namespace)
        for obj in items:
            out.put(_event("SYNC", info, obj))
        return rv


def _event(kind: str, info: KindInfo, obj: dict[str, Any]) -> WatchEvent:
    meta = obj.get("metadata") or {}
    return WatchEvent(
        type=kind,
        kind=obj.get("kind") or info.kind,
        name=meta.get("name", ""),
        namespace=meta.get("namespace"),
        obj=obj,
        resource_version=str(meta.get("resourceVersion", "")),
    )


def _lines(response: Any) -> Iterator[str]:
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line.decode("utf-8", "replace")
    if buffer.strip():
        yield buffer.decode("utf-8", "replace")


def _timeout(value: float | tuple[float, float]) -> Any:
    import urllib3

    if isinstance(value, tuple):
        return urllib3.Timeout(connect=value[0], read=value[1])
    return urllib3.Timeout(connect=min(value, 5.0), read=value)


def _is_connection_error(exc: BaseException) -> bool:
    import urllib3

    return isinstance(
        exc,
        (
            urllib3.exceptions.NewConnectionError,
            urllib3.exceptions.ConnectTimeoutError,
            urllib3.exceptions.MaxRetryError,
            urllib3.exceptions.ProtocolError,
            urllib3.exceptions.ReadTimeoutError,
            ConnectionError,
        ),
    )


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason or exc)
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0][:200] if text else type(exc).__name__
