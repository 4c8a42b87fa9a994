"""Which cluster, as whom, in which namespace: kubeconfig or in-cluster config, read like kubectl.

``load`` reads ``config_file``, else ``KUBECONFIG`` (several files joined by ``:``, missing ones
skipped), else ``~/.kube/config``, and merges them as kubectl does: the first file that names a
cluster, user or context wins it, the first ``current-context`` wins, and a relative path is
relative to the file that holds it. From the context come the cluster (``server``,
``certificate-authority[-data]``, ``insecure-skip-tls-verify``, ``tls-server-name``,
``proxy-url``), the user (``token`` / ``tokenFile``, ``client-certificate[-data]`` and
``client-key[-data]``, ``username`` / ``password``) and the namespace: an ``Access``, all the
transport needs, read without importing ``kubernetes``. Only ``exec`` and ``auth-provider`` users
(cloud login plugins) go through the ``kubernetes`` package's loader (``kube.plugins``). With no
kubeconfig at all: the in-cluster service account (its token file and CA; no import either).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tradewise_ops.errors import ConfigError, UnreachableError

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_REREAD_SECONDS = 60.0  # a token file is read again this often (bound tokens rotate)


@dataclass(frozen=True)
class Access:
    """How to reach one API server and who to say we are: what the transport's pool is built from.

    ``ca``, ``client_cert`` and ``client_key`` are PEM bytes (read from the kubeconfig's files or
    its ``-data`` fields); ``ca`` None means the system's roots. ``authorization`` gives the
    ``Authorization`` header for each request (a token file or a plugin's token may change);
    None: no header (anonymous, or a client certificate alone).
    """

    server: str
    ca: bytes | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    proxy_url: str | None = None
    authorization: Callable[[], str | None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Connection:
    """What ``load`` found: how to reach the server, and the context, user and namespace."""

    access: Access
    context: str | None
    user: str | None
    namespace: str | None  # the context's (or the service account's); None: not set

    @property
    def server(self) -> str:
        return self.access.server


def kubeconfig_files() -> list[str]:
    """The kubeconfig files kubectl would read: ``KUBECONFIG``'s existing ones, else the default."""
    raw = os.environ.get("KUBECONFIG")
    if raw:
        return [p for p in raw.split(os.pathsep) if p and os.path.exists(os.path.expanduser(p))]
    default = os.path.expanduser("~/.kube/config")
    return [default] if os.path.exists(default) else []


def load(context: str | None = None, config_file: str | None = None) -> Connection:
    """How to reach ``context`` (default: the current one) of the kubeconfig, like kubectl.

    Reads ``config_file``, else ``KUBECONFIG``, else ``~/.kube/config``; with none of them, the
    in-cluster service account. ``ConfigError`` when the kubeconfig or the context is unusable
    (it names the file and the key), ``UnreachableError`` when there is no configuration at all.
    """
    files = [config_file] if config_file else kubeconfig_files()
    if files:
        return _from_kubeconfig(files, context)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster()
    raise UnreachableError(
        "no Kubernetes configuration: no KUBECONFIG, no ~/.kube/config, not in a cluster",
        hint="point KUBECONFIG at a kubeconfig or pass --context",
    )


def in_cluster(
    environ: Mapping[str, str] | None = None, sa_dir: str = SERVICE_ACCOUNT_DIR
) -> Connection:
    """The pod's service account: ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``,
    its token file (read again every minute: bound tokens rotate), its CA and its namespace."""
    env = os.environ if environ is None else environ
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise UnreachableError(
            "in-cluster config is not usable: KUBERNETES_SERVICE_HOST/PORT are not both set"
        )
    host = f"[{host}]" if ":" in host else host
    token = os.path.join(sa_dir, "token")
    try:
        with open(os.path.join(sa_dir, "ca.crt"), "rb") as fh:
            ca = fh.read()
        authorization = _TokenFile(token)
    except (OSError, ConfigError) as exc:
        raise UnreachableError(f"in-cluster config is not usable: {_why(exc)}") from None
    namespace = None
    with contextlib.suppress(OSError):
        with open(os.path.join(sa_dir, "namespace"), encoding="utf-8") as fh:
            namespace = fh.read().strip() or None
    access = Access(server=f"https://{host}:{port}", ca=ca or None, authorization=authorization)
    return Connection(access, "in-cluster", "serviceaccount", namespace)


# -- the kubeconfig ------------------------------------------------------------------------------
@dataclass
class _Merged:
    """The kubeconfig files merged: each named entry with the file it came from."""

    files: list[str]
    clusters: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    users: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    contexts: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    current: str | None = None

    @property
    def joined(self) -> str:
        return os.pathsep.join(self.files)


_SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))


def _merge(files: list[str]) -> _Merged:
    """kubectl's merge: the first file that names an entry wins it, the first current-context."""
    merged = _Merged(files)
    for path in files:
        doc = _read_yaml(path)
        for section, key in _SECTIONS:
            entries = doc.get(section) or []
            if not isinstance(entries, list):
                raise ConfigError(f"kubeconfig {path}: `{section}` is not a list")
            known = getattr(merged, section)
            for item in entries:
                name = item.get("name") if isinstance(item, dict) else None
                if not isinstance(name, str) or not name:
                    raise ConfigError(f"kubeconfig {path}: an entry of `{section}` has no name")
                body = item.get(key) or {}
                if not isinstance(body, dict):
                    raise ConfigError(f"kubeconfig {path}: {section} {name!r} is not a mapping")
                known.setdefault(name, (body, path))
        current = doc.get("current-context")
        if merged.current is None and current:
            merged.current = str(current)
    return merged


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as fh:
            doc = yaml.load(fh, Loader=loader)  # noqa: S506 - a safe loader
    except OSError as exc:
        raise ConfigError(f"kubeconfig {path} cannot be read: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"kubeconfig {path} is not valid YAML: {first}") from None
    if doc is None:
        return {}  # an empty file is an empty config, as for kubectl
    if not isinstance(doc, dict):
        raise ConfigError(f"kubeconfig {path} is not a mapping of clusters, users and contexts")
    return doc


def _from_kubeconfig(files: list[str], context: str | None) -> Connection:
    merged = _merge(files)
    names = list(merged.contexts)
    chosen = context or merged.current
    if chosen is None:
        raise ConfigError(
            f"kubeconfig {merged.joined} has no current context: pass --context "
            f"(one of: {', '.join(names) or 'none'})"
        )
    if chosen not in merged.contexts:
        raise ConfigError(
            f"context {chosen!r} is not in kubeconfig {merged.joined}: use one of "
            f"{', '.join(names) or 'none'} (or set the environment's `context`)"
        )
    ctx, ctx_file = merged.contexts[chosen]
    cluster_name = ctx.get("cluster")
    cluster, cluster_file = merged.clusters.get(str(cluster_name), ({}, ctx_file))
    if not cluster.get("server"):
        what = f"cluster {cluster_name!r}" if cluster_name else "no cluster"
        raise ConfigError(
            f"context {chosen!r} of {ctx_file} names {what}, which has no server "
            f"in kubeconfig {merged.joined}"
        )
    user_name = ctx.get("user")
    # kubectl: a user the kubeconfig does not define is anonymous
    user, user_file = merged.users.get(str(user_name), ({}, ctx_file)) if user_name else ({}, "")
    where = f"user {user_name!r} of {user_file}"
    authorization, cert, key = _credentials(user, user_file, where)
    if "exec" in user or "auth-provider" in user:
        if authorization is not None:
            raise ConfigError(
                f"{where} has a login plugin and a token or password: only one is allowed"
            )
        from tradewise_ops.adapters.kube import plugins

        got = plugins.credentials(files, chosen, str(user_name))
        authorization = got.authorization
        if got.client_cert is not None:
            cert, key = got.client_cert, got.client_key
    namespace = ctx.get("namespace")
    access = _access(cluster, cluster_file, str(cluster_name), cert, key, authorization)
    return Connection(access, chosen, str(user_name) if user_name else None, namespace or None)


def _access(
    cluster: dict[str, Any],
    origin: str,
    name: str,
    cert: bytes | None,
    key: bytes | None,
    authorization: Callable[[], str | None] | None,
) -> Access:
    where = f"cluster {name!r} of {origin}"
    ca = _file_or_data(cluster, "certificate-authority", origin, where)
    insecure = cluster.get("insecure-skip-tls-verify") is True
    if insecure and ca is not None:
        raise ConfigError(
            f"{where} sets both insecure-skip-tls-verify and a certificate-authority: "
            "kubectl refuses that too; keep one"
        )
    server = str(cluster["server"]).strip().rstrip("/")
    if "://" not in server:  # kubectl: https when anything about TLS is set, else http
        tls = ca is not None or insecure or cert is not None
        server = ("https://" if tls else "http://") + server
    scheme = server.split("://", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"{where}: server {server!r} is not an http:// or https:// URL")
    proxy = cluster.get("proxy-url")
    return Access(
        server=server,
        ca=ca,
        client_cert=cert,
        client_key=key,
        insecure=insecure,
        tls_server_name=str(cluster["tls-server-name"]) if cluster.get("tls-server-name") else None,
        proxy_url=str(proxy) if proxy else None,
        authorization=authorization,
    )


def _credentials(
    user: dict[str, Any], origin: str, where: str
) -> tuple[Callable[[], str | None] | None, bytes | None, bytes | None]:
    """The user's bearer token or basic auth (as a header source), and its client cert and key."""
    cert = _file_or_data(user, "client-certificate", origin, where)
    key = _file_or_data(user, "client-key", origin, where)
    if (cert is None) != (key is None):
        missing = "client-key" if key is None else "client-certificate"
        raise ConfigError(
            f"{where} has only half a client certificate: {missing}(-data) is missing"
        )
    has_token = bool(user.get("token") or user.get("tokenFile"))
    has_basic = bool(user.get("username") or user.get("password"))
    if has_token and has_basic:
        raise ConfigError(
            f"{where} has a token and a username/password: kubectl allows only one of them"
        )
    authorization: Callable[[], str | None] | None = None
    if user.get("tokenFile"):  # kubectl: the file wins over `token`, and is read again
        authorization = _TokenFile(_resolve(str(user["tokenFile"]), origin), where)
    elif user.get("token"):
        header = f"Bearer {str(user['token']).strip()}"
        authorization = lambda: header  # noqa: E731 - a constant header source
    elif has_basic:
        pair = f"{user.get('username') or ''}:{user.get('password') or ''}".encode()
        header = "Basic " + base64.b64encode(pair).decode("ascii")
        authorization = lambda: header  # noqa: E731
    return authorization, cert, key


def _file_or_data(entry: dict[str, Any], key: str, origin: str, where: str) -> bytes | None:
    """``KEY-data`` (base64) if set, else the file ``KEY`` names (relative to ``origin``)."""
    data = entry.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(str(data).encode("ascii"), validate=False)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise ConfigError(f"{where}: {key}-data is not base64") from None
    path = entry.get(key)
    if not path:
        return None
    resolved = _resolve(str(path), origin)
    try:
        with open(resolved, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"{where}: {key} {resolved} cannot be read: {exc.strerror}") from None


def _resolve(path: str, origin: str) -> str:
    """``path`` relative to the directory of the kubeconfig ``origin`` that holds it."""
    if os.path.isabs(path) or not origin:
        return path
    return os.path.join(os.path.dirname(os.path.abspath(os.path.expanduser(origin))), path)


class _TokenFile:
    """``Bearer <the file's content>``, read again every ``TOKEN_REREAD_SECONDS``."""

    def __init__(self, path: str, where: str = "the service account") -> None:
        self.path = path
        self.where = where
        self._lock = threading.Lock()
        self._header = self._read()
        self._read_at = time.monotonic()

    def _read(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as exc:
            raise ConfigError(
                f"{self.where}: tokenFile {self.path} cannot be read: {exc.strerror}"
            ) from None
        if not token:
            raise ConfigError(f"{self.where}: tokenFile {self.path} is empty")
        return f"Bearer {token}"

    def __call__(self) -> str:
        with self._lock:
            if time.monotonic() - self._read_at >= TOKEN_REREAD_SECONDS:
                with contextlib.suppress(ConfigError):  # keep the last good token
                    self._header = self._read()
                self._read_at = time.monotonic()
            return self._header


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)
