"""The configuration: ``tradewise.yaml`` plus ``TRADEWISE_*`` variables, as frozen dataclasses.

Loaded in one place (``load_config``). Every error names the file, the key path, the bad value and
what is allowed, and is a ``ConfigError`` (exit 2); a value that looks like a credential is not
echoed. Environments may override any key of ``defaults``; the override is deep-merged before
validation, so an error in an override names the environment's own key path. A file that is not
UTF-8, or a mapping with the same key twice (YAML would keep the last silently), is refused.
Replica counts stay within what Kubernetes accepts (int32) and within ``max_replicas``.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from tradewise_ops.core.redact import looks_like_credential
from tradewise_ops.core.schedule_runs import Schedule, parse_calendar_keys
from tradewise_ops.core.units import cpu_millicores, memory_bytes, parse_duration
from tradewise_ops.errors import BadInputError, ConfigError

ENV_KINDS = ("kubernetes", "compose", "local")
COMPONENTS = ("api", "worker", "precompute", "postgres", "redis")
SCALABLE = ("api", "worker")
LOCAL_BROKERS = ("auto", "redis", "sqlite")
DEFAULT_CONFIG_NAME = "tradewise.yaml"
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
INT32_MAX = 2_147_483_647  # the most replicas (or any int32 field) the Kubernetes API accepts
_K8S_VERSION = re.compile(r"^1\.(\d+)$")
_CRON = re.compile(r"^(\S+\s+){4}\S+$")
# a third-party image pinned by a tag (not latest) or a digest: postgres:15, redis@sha256:...
_PINNED_IMAGE = re.compile(
    r"^[a-z0-9][a-z0-9._/:-]*[a-z0-9](?::(?!latest$)[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
    r"|@sha256:[0-9a-f]{64})$"
)


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CostSettings:
    """``cost:`` in ``tradewise.yaml``: prices and the right-sizing margins."""

    cpu_hour: float = 0.0316  # one vCPU for an hour (on-demand list price, USD)
    gib_hour: float = 0.0042  # one GiB of memory for an hour
    spot_discount_percent: float = 65.0
    hours_per_month: float = 730.0
    headroom_percent: float = 20.0  # requests above the p95
    limit_headroom_percent: float = 25.0  # limits above the max
    margin_percent: float = 50.0  # over-provisioned: a request this much above the recommendation


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    @property
    def qos_class(self) -> str:
        """Guaranteed when requests equal limits, else Burstable."""
        same_cpu = cpu_millicores(self.cpu_request) == cpu_millicores(self.cpu_limit)
        same_mem = memory_bytes(self.memory_request) == memory_bytes(self.memory_limit)
        return "Guaranteed" if same_cpu and same_mem else "Burstable"


@dataclass(frozen=True)
class Autoscaling:
    """HPA bounds and targets of one Deployment."""

    min_replicas: int
    max_replicas: int
    cpu_percent: int
    memory_percent: int
    p95_ms: int | None = None  # API: Pods metric on the latency histogram
    queue_per_worker: int | None = None  # workers: queue depth per pod


@dataclass(frozen=True)
class Component:
    """One workload: api, worker, precompute, postgres or redis."""

    name: str
    replicas: int
    resources: Resources
    autoscaling: Autoscaling | None = None
    storage: str | None = None
    # issue 16, placement by price (core.placement): spot | on-demand; critical | normal | batch
    placement: str = "on-demand"
    priority: str = "normal"


@dataclass(frozen=True)
class LocalSettings:
    """How the ``local`` kind runs on this machine."""

    api_port: int = 8000
    api_processes: int = 2
    worker_processes: int = 1
    redis_port: int = 6390
    state_dir: str = ".tradewise/local"
    # auto: a private redis-server when one is installed, else the SQLite broker (no cache);
    # redis: require redis-server; sqlite: the SQLite broker even when redis-server exists
    broker: str = "auto"


DEFAULT_VERIFY_ENDPOINTS = ("/api/health", "/api/stock-analysis?symbol=AAPL")
# the app's flask_request_* series, per version (``$version``), namespace and window; p95 in ms
DEFAULT_CANARY_QUERIES = {
    "error_rate": (
        '(sum(rate(flask_request_total{namespace="$namespace",version="$version",status=~"5.."}'
        "[$window])) or vector(0)) / sum(rate(flask_request_total"
        '{namespace="$namespace",version="$version"}[$window]))'
    ),
    "p95_ms": (
        "1000 * histogram_quantile(0.95, sum by (le) (rate(flask_request_duration_seconds_bucket"
        '{namespace="$namespace",version="$version"}[$window])))'
    ),
    "rps": 'sum(rate(flask_request_total{namespace="$namespace",version="$version"}[$window]))',
}
CANARY_QUERY_NAMES = tuple(DEFAULT_CANARY_QUERIES)


@dataclass(frozen=True)
class VerifySettings:
    """``release.verify``: the load that verifies a new slot before traffic moves to it.

    ``endpoints`` are loaded in turn by ``users`` users for ``duration_seconds`` (``mix``: the
    performance-test mix of request groups instead); ``p95_ms`` and ``error_rate`` are the
    objectives (None: ``slo``'s). ``smoke_symbol`` is the analysis the smoke check asks for.
    """

    duration_seconds: float = 20.0
    users: int = 10
    spawn_rate: float = 10.0
    endpoints: tuple[str, ...] = DEFAULT_VERIFY_ENDPOINTS
    mix: bool = False
    p95_ms: float | None = None
    error_rate: float | None = None
    smoke_symbol: str = "AAPL"
    image: str | None = None  # in the cluster: an image with tradewise and Locust (None: the API's)


@dataclass(frozen=True)
class CanarySettings:
    """``release.canary``: the traffic weights (percent, ending at 100), the hold per step and
    the Prometheus queries (``$version``, ``$namespace``, ``$window`` are filled in) of the
    analysis; the canary may be worse than the stable version by ``p95_percent`` (and at least
    ``p95_floor_ms``) and ``error_rate_points`` percentage points, besides meeting the SLOs."""

    steps: tuple[int, ...] = (10, 25, 50, 100)
    hold_seconds: float = 60.0
    window: str = "1m"
    queries: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CANARY_QUERIES))
    p95_percent: float = 25.0
    p95_floor_ms: float = 20.0
    error_rate_points: float = 1.0


@dataclass(frozen=True)
class ReleaseSettings:
    """``release``: how blue-green and canary releases verify, preview and keep the previous
    slot (``keep_previous_seconds``: the window of an instant rollback; 0 deletes it at once)."""

    keep_previous_seconds: float = 900.0
    preview_host: str = "preview"  # the preview Ingress host: preview.<domain>
    preview_tls_secret: str | None = None  # None: the main Ingress's TLS secret
    verify: VerifySettings = field(default_factory=VerifySettings)
    canary: CanarySettings = field(default_factory=CanarySettings)


@dataclass(frozen=True)
class KubeClientSettings:
    """How long tradewise waits for the Kubernetes API server, in seconds (``kubernetes.*``).

    ``connect_timeout`` for a connection, ``request_timeout`` for an answer, ``total_timeout``
    for one call with its retries (default: 30, or one full attempt if longer). Watches keep
    their own read timeout, as long as the watch.
    """

    connect_timeout: float = 5.0
    request_timeout: float = 20.0
    total_timeout: float = 30.0


@dataclass(frozen=True)
class Backups:
    """In-cluster database backups (``backups:`` of an environment; off unless ``enabled``).

    A CronJob runs ``pg_dump -Fc`` into the ``tradewise-backups`` claim on ``schedule`` and keeps
    the newest ``keep`` dumps; another restores the newest into a throwaway server on
    ``verify_schedule`` (the guide's weekly backup verification).
    """

    enabled: bool = False
    schedule: str = "0 2 * * *"
    verify_schedule: str = "0 3 * * 0"
    timezone: str = "America/New_York"
    keep: int = 7
    storage: str = "10Gi"


@dataclass(frozen=True)
class Environment:
    """A place tradewise deploys to."""

    name: str
    kind: str
    namespace: str
    registry: str
    api_image: str
    worker_image: str
    secret_name: str
    max_replicas: int
    components: Mapping[str, Component]
    context: str | None = None
    domain: str | None = None
    tls_secret: str | None = None
    url: str | None = None
    confirm: bool = False
    require_pinned_tag: bool = False
    aliases: tuple[str, ...] = ()
    local: LocalSettings = field(default_factory=LocalSettings)
    # third-party images, pinned by a tag or a digest
    postgres_image: str = "postgres:15"
    redis_image: str = "redis:7"
    maintenance_image: str = "nginxinc/nginx-unprivileged:1.27-alpine"
    # where traffic and scrapes come from (NetworkPolicy), which Ingress controller serves us
    ingress_class: str = "nginx"
    ingress_namespace: str = "ingress-nginx"
    monitoring_namespace: str = "monitoring"
    kubernetes: KubeClientSettings = field(default_factory=KubeClientSettings)
    # extra labels on the ServiceMonitor and PrometheusRule: what a Prometheus selects them by
    monitoring_labels: Mapping[str, str] = field(default_factory=dict)
    cloud: str = "none"  # issue 16: whose spot-pool labels and taints (core.placement.CLOUDS)
    prometheus_url: str | None = None  # issue 16: monitoring.prometheus_url (`rightsize`)
    backups: Backups = field(default_factory=Backups)
    # `tradewise stress`: the pool it checks (rendered into the ConfigMap), the knobs it may use
    database_pool: DatabasePool = field(default_factory=lambda: DatabasePool())
    faults: tuple[str, ...] = ()
    # blue-green / canary releases (``release``)
    release: ReleaseSettings = field(default_factory=ReleaseSettings)

    @property
    def is_kubernetes(self) -> bool:
        return self.kind == "kubernetes"

    @property
    def target_url(self) -> str | None:
        """Where the API answers: ``url`` if set, else ``https://DOMAIN`` for a cluster."""
        if self.url:
            return self.url
        if self.domain:
            return f"https://{self.domain}"
        return None


@dataclass(frozen=True)
class Profile:
    """A traffic profile: replicas of the API and the workers."""

    name: str
    api: int
    workers: int
    rps: str = ""


@dataclass(frozen=True)
class Slo:
    """The service-level objectives every verdict is checked against."""

    p95_ms: float = 500.0
    error_rate: float = 0.01
    scale_up_seconds: float = 120.0
    recovery_seconds: float = 60.0


@dataclass(frozen=True)
class LoadTestDefaults:
    duration: str = "60s"
    users: int = 50
    endpoint: str = "/api/health"
    spawn_rate: float = 10.0


@dataclass(frozen=True)
class Stage:
    name: str
    duration_seconds: float
    users: int
    spawn_rate: float


@dataclass(frozen=True)
class PerformanceTest:
    """The mixed workload of ``tradewise performance-test``."""

    weights: Mapping[str, int]
    hot_symbols: tuple[str, ...]
    cold_symbols: tuple[str, ...]
    stages: tuple[Stage, ...]


@dataclass(frozen=True)
class CompareThresholds:
    """How much worse NEW may be than BASE before ``tradewise compare`` calls it a regression.

    Percent changes of the run totals (latency up, req/s down), error-rate change in percentage
    points, scale-up time in percent and peak replicas in replicas (both only when both runs
    carry ``--monitor`` data). ``None``: shown, not judged.
    """

    p50_percent: float | None = None
    p95_percent: float | None = 10.0
    p99_percent: float | None = None
    error_rate_points: float | None = 0.5
    rps_percent: float | None = 10.0
    scale_up_percent: float | None = 25.0
    peak_replicas: float | None = 1.0


@dataclass(frozen=True)
class CapacitySettings:
    """``tradewise capacity``: headroom over a band's top and how the load steps up."""

    headroom_percent: float = 30.0
    step_seconds: float = 5.0
    max_seconds: float = 60.0


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    path: Path | None
    default_environment: str
    kubernetes_version: str
    environments: Mapping[str, Environment]
    profiles: Mapping[str, Profile]
    schedules: tuple[Schedule, ...]
    slo: Slo
    load_test: LoadTestDefaults
    performance_test: PerformanceTest
    compare: CompareThresholds = field(default_factory=CompareThresholds)
    capacity: CapacitySettings = field(default_factory=CapacitySettings)
    cost: CostSettings = field(default_factory=lambda: _cost_settings(None, {}))  # issue 16
    stress: StressSettings = field(default_factory=lambda: StressSettings())

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "<embedded tradewise.yaml>"

    def environment(self, name: str | None = None) -> Environment:
        """The environment called ``name`` (or an alias of it), default when None."""
        wanted = name or self.default_environment
        if wanted in self.environments:
            return self.environments[wanted]
        for env in self.environments.values():
            if wanted in env.aliases:
                return env
        allowed = ", ".join(_names_with_aliases(self.environments.values()))
        raise BadInputError(
            f"unknown environment {wanted!r} in {self.source}: use one of {allowed}"
        )

    def profile(self, name: str) -> Profile:
        """The traffic profile called ``name``."""
        if name in self.profiles:
            return self.profiles[name]
        allowed = ", ".join(self.profiles)
        raise BadInputError(f"unknown traffic profile {name!r}: use one of {allowed}")


def _names_with_aliases(envs: Any) -> list[str]:
    out = []
    for env in envs:
        out.append(env.name + (f" ({', '.join(env.aliases)})" if env.aliases else ""))
    return out


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
def embedded_config_path() -> Path:
    """The ``tradewise.yaml`` shipped with the package (in a checkout, the root's file)."""
    from tradewise_ops.resources import data_path

    return data_path("tradewise.yaml")


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """The config file to read and whether the user chose it.

    Order: ``--config``; ``TRADEWISE_CONFIG``; ``./tradewise.yaml``; the embedded default.
    """
    if explicit:
        return Path(explicit), True
    env = os.environ.get("TRADEWISE_CONFIG")
    if env:
        return Path(env), True
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    if local.is_file():
        return local, False
    return embedded_config_path(), False


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read, merge and validate the configuration. ``environ`` defaults to ``os.environ``."""
    import yaml

    environ = os.environ if environ is None else environ
    resolved, chosen = resolve_config_path(path)
    try:
        data = resolved.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {resolved} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {resolved} cannot be read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"config file {resolved} is not UTF-8 text: byte 0x{data[exc.start]:02x} at line "
            f"{line} ({exc.reason}); save it as UTF-8"
        ) from None
    try:
        raw = yaml.load(text, Loader=_unique_key_loader())
    except _DuplicateKeyError as exc:
        raise ConfigError(f"{resolved}: {exc}") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{resolved} holds a value YAML cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{resolved} is not valid YAML{where}: {problem}") from None
    return parse_config(raw, source=resolved, environ=environ)


class _DuplicateKeyError(Exception):
    """The same key twice in one mapping; the message names it and both lines."""


_LOADERS: dict[str, Any] = {}


def _unique_key_loader() -> Any:
    """A safe YAML loader (libyaml's parser when present: the pure-Python one is most of the load
    time) that refuses a mapping with the same key twice instead of keeping the last."""
    if "unique" in _LOADERS:
        return _LOADERS["unique"]
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class UniqueKeyLoader(base):  # type: ignore[valid-type,misc]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue  # "<<: *defaults" then an override is how merging works
                    key = self.construct_object(key_node, deep=True)
                    line = key_node.start_mark.line + 1
                    try:
                        first = seen.get(key)
                    except TypeError:  # an unhashable key: the base constructor names it
                        continue
                    if first is not None:
                        raise _DuplicateKeyError(
                            f"duplicate key {key!r} at line {first} and again at line {line}: "
                            "a mapping holds each key once (YAML would keep the last silently)"
                        )
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    _LOADERS["unique"] = UniqueKeyLoader
    return UniqueKeyLoader


def parse_config(
    raw: Any, source: Path | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Validate a parsed YAML document into a ``Config``."""
    v = _Validator(str(source) if source else "<config>")
    environ = {} if environ is None else environ
    top = v.mapping(raw, "", allowed=_TOP_KEYS)
    defaults = v.mapping(top.get("defaults", {}), "defaults", allowed=_ENV_KEYS)
    envs_raw = v.mapping(top.get("environments"), "environments", required=True)
    if not envs_raw:
        v.fail("environments", envs_raw, "at least one environment")

    environments: dict[str, Environment] = {}
    for name, body in envs_raw.items():
        key = f"environments.{name}"
        if not isinstance(name, str) or not _DNS1123_LABEL.match(name):
            v.fail(key, name, "a lower-case name of letters, digits and '-'")
        body = v.mapping(body, key, allowed=_ENV_KEYS | {"kind", "aliases"})
        merged = _deep_merge(copy.deepcopy(defaults), body)
        try:
            environments[name] = _environment(v, name, merged, key, environ)
        except ConfigError as exc:
            raise _blame_defaults(exc, key, body, defaults) from None

    aliases: dict[str, str] = {}
    for env in environments.values():
        for alias in env.aliases:
            if alias in environments or alias in aliases:
                v.fail(
                    f"environments.{env.name}.aliases", alias, "a name no other environment uses"
                )
            aliases[alias] = env.name

    default_env = v.string(
        top.get("default_environment", next(iter(environments))), "default_environment"
    )
    if default_env not in environments and default_env not in aliases:
        v.fail("default_environment", default_env, "one of " + ", ".join(environments))

    k8s_version = str(top.get("kubernetes_version", "1.37"))
    k8s_version = environ.get("TRADEWISE_KUBERNETES_VERSION", k8s_version)
    if not _K8S_VERSION.match(k8s_version):
        v.fail("kubernetes_version", k8s_version, "a version like 1.37")

    profiles: dict[str, Profile] = {}
    for pname, pbody in v.mapping(top.get("profiles", {}), "profiles").items():
        pkey = f"profiles.{pname}"
        pbody = v.mapping(pbody, pkey, allowed={"api", "workers", "rps"})
        profiles[str(pname)] = Profile(
            name=str(pname),
            api=v.replicas(pbody.get("api"), f"{pkey}.api", required=True),
            workers=v.replicas(pbody.get("workers"), f"{pkey}.workers", required=True),
            rps=str(pbody.get("rps", "")),
        )

    schedules = []
    for i, sbody in enumerate(v.sequence(top.get("schedules", []), "schedules")):
        skey = f"schedules[{i}]"
        sbody = v.mapping(sbody, skey, allowed={"name", "profile", "cron", "timezone"} | _CAL_KEYS)
        sname = v.string(sbody.get("name"), f"{skey}.name", required=True)
        if not _DNS1123_LABEL.match(sname):
            v.fail(f"{skey}.name", sname, "a lower-case name of letters, digits and '-'")
        sprofile = v.string(sbody.get("profile"), f"{skey}.profile", required=True)
        if sprofile not in profiles and sprofile != "emergency-down":
            v.fail(f"{skey}.profile", sprofile, "one of " + ", ".join(profiles))
        cron = v.string(sbody.get("cron"), f"{skey}.cron", required=True)
        if not _CRON.match(cron.strip()):
            v.fail(f"{skey}.cron", cron, "a five-field cron expression like '15 9 * * 1-5'")
        tz = v.string(sbody.get("timezone", "UTC"), f"{skey}.timezone")
        _check_timezone(v, f"{skey}.timezone", tz)
        calendar, anchor, windows = parse_calendar_keys(
            sbody, skey, cron.strip(), tz, list(profiles), v.fail
        )
        schedules.append(Schedule(sname, sprofile, cron.strip(), tz, calendar, anchor, windows))

    slo_raw = v.mapping(top.get("slo", {}), "slo", allowed=set(Slo.__dataclass_fields__))
    slo = Slo(
        p95_ms=v.number(slo_raw.get("p95_ms", 500), "slo.p95_ms", positive=True),
        error_rate=v.fraction(slo_raw.get("error_rate", 0.01), "slo.error_rate"),
        scale_up_seconds=v.number(
            slo_raw.get("scale_up_seconds", 120), "slo.scale_up_seconds", positive=True
        ),
        recovery_seconds=v.number(
            slo_raw.get("recovery_seconds", 60), "slo.recovery_seconds", positive=True
        ),
    )

    lt_raw = v.mapping(
        top.get("load_test", {}), "load_test", allowed=set(LoadTestDefaults.__dataclass_fields__)
    )
    lt_duration = str(lt_raw.get("duration", "60s"))
    v.duration(lt_duration, "load_test.duration")
    lt_endpoint = v.string(lt_raw.get("endpoint", "/api/health"), "load_test.endpoint")
    if not lt_endpoint.startswith("/"):
        v.fail("load_test.endpoint", lt_endpoint, "a path starting with '/'")
    load_test = LoadTestDefaults(
        duration=lt_duration,
        users=v.integer(lt_raw.get("users", 50), "load_test.users", minimum=1),
        endpoint=lt_endpoint,
        spawn_rate=v.number(lt_raw.get("spawn_rate", 10), "load_test.spawn_rate", positive=True),
    )

    performance_test = _performance_test(v, top.get("performance_test", {}))
    compare, capacity = _evidence(v, top)
    stress = _stress(v, top.get("stress", {}))

    return Config(
        path=source,
        default_environment=aliases.get(default_env, default_env),
        kubernetes_version=k8s_version,
        environments=environments,
        profiles=profiles,
        schedules=tuple(schedules),
        slo=slo,
        load_test=load_test,
        performance_test=performance_test,
        compare=compare,
        capacity=capacity,
        cost=_cost_settings(v, top.get("cost", {})),
        stress=stress,
    )


_TOP_KEYS = {
    "default_environment",
    "kubernetes_version",
    "defaults",
    "environments",
    "profiles",
    "schedules",
    "slo",
    "load_test",
    "performance_test",
    "compare",
    "capacity",
    "cost",  # issue 16: prices and right-sizing margins (core.rightsize)
    "stress",
}
_ENV_KEYS = {
    "namespace",
    "registry",
    "images",
    "secret_name",
    "max_replicas",
    "components",
    "context",
    "domain",
    "tls_secret",
    "url",
    "confirm",
    "require_pinned_tag",
    "local",
    "ingress_class",
    "ingress_namespace",
    "monitoring_namespace",
    "kubernetes",
    "monitoring",  # {labels, prometheus_url}
    "cloud",  # issue 16
    "backups",
    "database_pool",
    "faults",
    "release",
}
_IMAGE_KEYS = {"api", "worker", "postgres", "redis", "maintenance"}
_THIRD_PARTY_IMAGES = {
    "postgres": "postgres:15",
    "redis": "redis:7",
    "maintenance": "nginxinc/nginx-unprivileged:1.27-alpine",
}
_NETWORK_DEFAULTS = {
    "ingress_class": "nginx",
    "ingress_namespace": "ingress-nginx",
    "monitoring_namespace": "monitoring",
}
_CAL_KEYS = {"calendar", "anchor", "windows"}  # schedules by the market's calendar (issue 16)
_COMPONENT_KEYS = {"replicas", "autoscaling", "resources", "storage", "placement", "priority"}
_AUTOSCALING_KEYS = {"min", "max", "cpu_percent", "memory_percent", "p95_ms", "queue_per_worker"}


def _environment(
    v: _Validator, name: str, body: dict[str, Any], key: str, environ: Mapping[str, str]
) -> Environment:
    kind = v.string(body.get("kind"), f"{key}.kind", required=True)
    if kind not in ENV_KINDS:
        v.fail(f"{key}.kind", kind, "one of " + ", ".join(ENV_KINDS))
    namespace = environ.get("TRADEWISE_NAMESPACE") or v.string(
        body.get("namespace", "tradewise-ai"), f"{key}.namespace"
    )
    if not _DNS1123_LABEL.match(namespace) or len(namespace) > 63:
        v.fail(f"{key}.namespace", namespace, "a DNS-1123 label (lower-case letters, digits, '-')")
    images = v.mapping(body.get("images", {}), f"{key}.images", allowed=_IMAGE_KEYS)
    for iname, default_image in _THIRD_PARTY_IMAGES.items():
        image = v.string(images.get(iname, default_image), f"{key}.images.{iname}")
        if not _PINNED_IMAGE.match(image):
            v.fail(
                f"{key}.images.{iname}",
                image,
                "an image pinned by a tag other than latest or by a digest "
                "(postgres:15, redis@sha256:<64 hex>)",
            )
        images[iname] = image
    network: dict[str, str] = {}
    for nkey, ndefault in _NETWORK_DEFAULTS.items():
        value = v.string(body.get(nkey, ndefault), f"{key}.{nkey}")
        if not _DNS1123_LABEL.match(value) or len(value) > 63:
            v.fail(f"{key}.{nkey}", value, "a DNS-1123 label (lower-case letters, digits, '-')")
        network[nkey] = value
    aliases = tuple(str(a) for a in v.sequence(body.get("aliases", []), f"{key}.aliases"))

    max_replicas = v.replicas(body.get("max_replicas", 50), f"{key}.max_replicas", minimum=1)
    components: dict[str, Component] = {}
    comps = v.mapping(body.get("components", {}), f"{key}.components", allowed=set(COMPONENTS))
    for cname in COMPONENTS:
        ckey = f"{key}.components.{cname}"
        craw = v.mapping(comps.get(cname), ckey, allowed=_COMPONENT_KEYS, required=True)
        components[cname] = _component(v, cname, craw, ckey, max_replicas)

    local_raw = v.mapping(
        body.get("local", {}), f"{key}.local", allowed=set(LocalSettings.__dataclass_fields__)
    )
    local = LocalSettings(
        api_port=v.port(local_raw.get("api_port", 8000), f"{key}.local.api_port"),
        api_processes=v.integer(
            local_raw.get("api_processes", 2), f"{key}.local.api_processes", minimum=1
        ),
        worker_processes=v.integer(
            local_raw.get("worker_processes", 1), f"{key}.local.worker_processes", minimum=0
        ),
        redis_port=v.port(local_raw.get("redis_port", 6390), f"{key}.local.redis_port"),
        state_dir=v.string(
            local_raw.get("state_dir", ".tradewise/local"), f"{key}.local.state_dir"
        ),
        broker=_local_broker(v, local_raw.get("broker", "auto"), f"{key}.local.broker", environ),
    )
    backups = _backups(v, body.get("backups", {}), f"{key}.backups")
    url = body.get("url")
    if url is not None:
        url = v.string(url, f"{key}.url")
        if not re.match(r"^https?://[^/\s]+", url):
            v.fail(f"{key}.url", url, "an http:// or https:// URL")
    return Environment(
        name=name,
        kind=kind,
        namespace=namespace,
        registry=_registry(v, body, key, environ),
        api_image=v.string(images.get("api", "tradewise-ai"), f"{key}.images.api"),
        worker_image=v.string(images.get("worker", "tradewise-ai-worker"), f"{key}.images.worker"),
        secret_name=_secret_name(
            v, body.get("secret_name", "tradewise-secrets"), f"{key}.secret_name"
        ),
        max_replicas=max_replicas,
        components=components,
        context=environ.get("TRADEWISE_CONTEXT") or _opt_str(v, body, "context", key),
        domain=_opt_str(v, body, "domain", key),
        tls_secret=None
        if body.get("tls_secret") is None
        else _secret_name(v, body["tls_secret"], f"{key}.tls_secret"),
        url=url,
        confirm=v.boolean(body.get("confirm", False), f"{key}.confirm"),
        require_pinned_tag=v.boolean(
            body.get("require_pinned_tag", False), f"{key}.require_pinned_tag"
        ),
        aliases=aliases,
        local=local,
        postgres_image=images["postgres"],
        redis_image=images["redis"],
        maintenance_image=images["maintenance"],
        ingress_class=network["ingress_class"],
        ingress_namespace=network["ingress_namespace"],
        monitoring_namespace=network["monitoring_namespace"],
        kubernetes=_kube_client(v, body.get("kubernetes"), f"{key}.kubernetes", environ),
        monitoring_labels=_monitoring_labels(v, body.get("monitoring"), f"{key}.monitoring"),
        cloud=_cloud(v, body.get("cloud", "none"), f"{key}.cloud"),
        prometheus_url=_prometheus_url(v, body.get("monitoring", {}), f"{key}.monitoring"),
        backups=backups,
        **_stress_environment(v, body, key),
        release=_release_settings(v, body.get("release"), f"{key}.release"),
    )


def _backups(v: _Validator, raw: Any, key: str) -> Backups:
    body = v.mapping(raw, key, allowed=set(Backups.__dataclass_fields__))
    crons = {}
    for name, default in (("schedule", "0 2 * * *"), ("verify_schedule", "0 3 * * 0")):
        cron = v.string(body.get(name, default), f"{key}.{name}").strip()
        if not _CRON.match(cron):
            v.fail(f"{key}.{name}", cron, "a five-field cron expression like '0 2 * * *'")
        crons[name] = cron
    timezone = v.string(body.get("timezone", "America/New_York"), f"{key}.timezone")
    _check_timezone(v, f"{key}.timezone", timezone)
    return Backups(
        enabled=v.boolean(body.get("enabled", False), f"{key}.enabled"),
        schedule=crons["schedule"],
        verify_schedule=crons["verify_schedule"],
        timezone=timezone,
        keep=v.integer(body.get("keep", 7), f"{key}.keep", minimum=1),
        storage=v.memory(body.get("storage", "10Gi"), f"{key}.storage"),
    )


# -- kubernetes.*: the API client's timeouts (TRADEWISE_KUBE_*_TIMEOUT override the file) ---------
_KUBE_TIMEOUTS = ("connect_timeout", "request_timeout", "total_timeout")


def _kube_client(
    v: _Validator, value: Any, key: str, environ: Mapping[str, str]
) -> KubeClientSettings:
    """``kubernetes.{connect,request,total}_timeout``: seconds (5, 0.5) or durations (20s, 1m)."""
    raw = v.mapping(value, key, allowed=set(_KUBE_TIMEOUTS))
    seconds: dict[str, float] = {}
    for name in _KUBE_TIMEOUTS:
        var = f"TRADEWISE_KUBE_{name.upper()}"
        if environ.get(var, "").strip():
            seconds[name] = _timeout_seconds(v, environ[var].strip(), f"{var} (environment)")
        elif raw.get(name) is not None:
            seconds[name] = _timeout_seconds(v, raw[name], f"{key}.{name}")
    connect = seconds.get("connect_timeout", 5.0)
    request = seconds.get("request_timeout", 20.0)
    total = seconds.get("total_timeout", max(30.0, connect + request))
    return KubeClientSettings(connect_timeout=connect, request_timeout=request, total_timeout=total)


def _timeout_seconds(v: _Validator, value: Any, key: str) -> float:
    allowed = "seconds above 0 (5, 0.5) or a duration like 20s or 1m"
    if isinstance(value, bool):
        v.fail(key, value, allowed)
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            try:
                number = parse_duration(text, what=key)
            except BadInputError:
                number = 0.0
    if not 0 < number <= 3600:
        v.fail(key, value, allowed + ", at most 1h")
    return number


_MONITORING_KEYS = {"labels", "prometheus_url"}


def _monitoring_labels(v: _Validator, value: Any, key: str) -> dict[str, str]:
    """``monitoring.labels``: Kubernetes labels (``release: kube-prometheus-stack``), not ours."""
    raw = v.mapping(v.mapping(value, key, allowed=_MONITORING_KEYS).get("labels"), f"{key}.labels")
    labels: dict[str, str] = {}
    for name, text in raw.items():
        lkey = f"{key}.labels.{name}"
        prefix, _, base = str(name).rpartition("/")
        if not (
            isinstance(name, str)
            and _LABEL_NAME.match(base)
            and len(base) <= 63
            and (not prefix or (_DNS1123_SUBDOMAIN.match(prefix) and len(prefix) <= 253))
        ):
            v.fail(lkey, name, "a label key: [prefix/]name, a name of at most 63 of A-Z a-z 0-9 "
                   "'-' '_' '.'")  # fmt: skip
        if prefix in ("app.kubernetes.io", "tradewise.io"):
            v.fail(lkey, name, "a label of your own: app.kubernetes.io/ and tradewise.io/ are "
                   "tradewise's")  # fmt: skip
        if not isinstance(text, str) or not _LABEL_VALUE.match(text) or len(text) > 63:
            v.fail(lkey, text, "a label value: at most 63 of A-Z a-z 0-9 '-' '_' '.', "
                   "alphanumeric at both ends (quote numbers)")  # fmt: skip
        labels[name] = text
    return labels


def _prometheus_url(v: _Validator, raw: Any, key: str) -> str | None:
    body = v.mapping(raw, key, allowed=_MONITORING_KEYS)
    url = body.get("prometheus_url")
    if url is None:
        return None
    url = v.string(url, f"{key}.prometheus_url")
    if not re.match(r"^https?://[^/\s]+", url):
        v.fail(f"{key}.prometheus_url", url, "an http:// or https:// URL of Prometheus")
    return url.rstrip("/")


def _cost_settings(v: _Validator | None, raw: Any) -> CostSettings:
    """``cost:`` (prices, headroom, margin; all numbers >= 0) as ``core.rightsize.CostSettings``."""
    if v is None:
        return CostSettings()
    names = set(CostSettings.__dataclass_fields__)
    body = v.mapping(raw, "cost", allowed=names)
    values = {}
    for name in sorted(names):
        if name in body:
            values[name] = v.number(body[name], f"cost.{name}")
            if values[name] < 0 or (name == "spot_discount_percent" and values[name] > 100):
                v.fail(f"cost.{name}", body[name], "a number >= 0 (a percentage at most 100)")
    return CostSettings(**values)


def _cloud(v: _Validator, value: Any, key: str) -> str:
    from tradewise_ops.core.placement import CLOUDS

    if value not in CLOUDS:
        v.fail(key, value, "one of " + ", ".join(CLOUDS) + " (whose spot-pool labels to use)")
    return str(value)


def _release_settings(v: _Validator, value: Any, key: str) -> ReleaseSettings:
    """``release``: keep_previous, the preview host, ``verify`` and ``canary``."""
    allowed = {"keep_previous", "preview_host", "preview_tls_secret", "verify", "canary"}
    body = v.mapping(value, key, allowed=allowed)
    base = ReleaseSettings()
    keep = base.keep_previous_seconds
    if body.get("keep_previous") is not None:
        raw_keep = body["keep_previous"]
        keep = 0.0 if raw_keep in (0, "0") else v.duration(raw_keep, f"{key}.keep_previous")
    host = v.string(body.get("preview_host", base.preview_host), f"{key}.preview_host")
    if not _DNS1123_LABEL.match(host) or len(host) > 63:
        v.fail(f"{key}.preview_host", host, "a DNS label (lower-case letters, digits, '-')")
    tls = body.get("preview_tls_secret")
    if tls is not None:
        tls = _secret_name(v, tls, f"{key}.preview_tls_secret")
    return ReleaseSettings(
        keep_previous_seconds=keep,
        preview_host=host,
        preview_tls_secret=tls,
        verify=_verify_settings(v, body.get("verify"), f"{key}.verify"),
        canary=_canary_settings(v, body.get("canary"), f"{key}.canary"),
    )


def _verify_settings(v: _Validator, value: Any, key: str) -> VerifySettings:
    allowed = {
        "duration",
        "users",
        "spawn_rate",
        "endpoints",
        "mix",
        "p95_ms",
        "error_rate",
        "smoke_symbol",
        "image",
    }
    body = v.mapping(value, key, allowed=allowed)
    base = VerifySettings()
    endpoints = tuple(
        v.string(e, f"{key}.endpoints")
        for e in v.sequence(body.get("endpoints", list(base.endpoints)), f"{key}.endpoints")
    )
    for endpoint in endpoints:
        if not endpoint.startswith("/") or any(c.isspace() for c in endpoint):
            v.fail(f"{key}.endpoints", endpoint, "paths starting with '/' without spaces")
    mix = v.boolean(body.get("mix", False), f"{key}.mix")
    if not endpoints and not mix:
        v.fail(f"{key}.endpoints", [], "at least one path (or mix: true)")
    symbol = v.string(body.get("smoke_symbol", base.smoke_symbol), f"{key}.smoke_symbol")
    if not re.match(r"^[A-Z][A-Z0-9.\-]{0,9}$", symbol):
        v.fail(f"{key}.smoke_symbol", symbol, "an upper-case ticker symbol like AAPL")
    return VerifySettings(
        duration_seconds=v.duration(body.get("duration", "20s"), f"{key}.duration"),
        users=v.integer(body.get("users", base.users), f"{key}.users", minimum=1),
        spawn_rate=v.number(
            body.get("spawn_rate", base.spawn_rate), f"{key}.spawn_rate", positive=True
        ),
        endpoints=endpoints,
        mix=mix,
        p95_ms=None
        if body.get("p95_ms") is None
        else v.number(body["p95_ms"], f"{key}.p95_ms", positive=True),
        error_rate=None
        if body.get("error_rate") is None
        else v.fraction(body["error_rate"], f"{key}.error_rate"),
        smoke_symbol=symbol,
        image=None if body.get("image") is None else v.string(body["image"], f"{key}.image"),
    )


def _canary_settings(v: _Validator, value: Any, key: str) -> CanarySettings:
    allowed = {
        "steps",
        "hold",
        "window",
        "queries",
        "p95_percent",
        "p95_floor_ms",
        "error_rate_points",
    }
    body = v.mapping(value, key, allowed=allowed)
    base = CanarySettings()
    steps = tuple(
        v.integer(w, f"{key}.steps", minimum=1, maximum=100)
        for w in v.sequence(body.get("steps", list(base.steps)), f"{key}.steps")
    )
    check_canary_steps(steps, f"{v.source}: {key}.steps")
    hold = v.duration(body.get("hold", "60s"), f"{key}.hold")
    window = v.string(body.get("window", base.window), f"{key}.window")
    if not re.match(r"^\d+[smh]$", window):
        v.fail(f"{key}.window", window, "a Prometheus range like 30s, 1m or 5m")
    queries = dict(base.queries)
    raw_queries = v.mapping(body.get("queries"), f"{key}.queries", allowed=set(CANARY_QUERY_NAMES))
    for name, text in raw_queries.items():
        query = v.string(text, f"{key}.queries.{name}")
        if "$version" not in query:
            v.fail(f"{key}.queries.{name}", query, "a PromQL query with $version in it")
        queries[name] = query
    numbers = {}
    for name in ("p95_percent", "p95_floor_ms", "error_rate_points"):
        numbers[name] = v.number(body.get(name, getattr(base, name)), f"{key}.{name}")
        if numbers[name] < 0:
            v.fail(f"{key}.{name}", numbers[name], "a number >= 0")
    return CanarySettings(steps=steps, hold_seconds=hold, window=window, queries=queries, **numbers)


def check_canary_steps(steps: Sequence[int], where: str = "canary steps") -> tuple[int, ...]:
    """Canary weights in percent: each from 1 to 100, going up, the last 100; else
    ``ConfigError`` (exit 2) naming ``where``."""
    shown = ", ".join(str(w) for w in steps) or "none"
    if not steps:
        raise ConfigError(f"{where} are empty; expected weights in percent ending at 100")
    if any(not 1 <= w <= 100 for w in steps):
        raise ConfigError(f"{where} ({shown}) must be percentages from 1 to 100")
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise ConfigError(f"{where} ({shown}) must go up step by step, like 10, 25, 50, 100")
    if steps[-1] != 100:
        raise ConfigError(f"{where} ({shown}) must end at 100 (all traffic on the new version)")
    return tuple(steps)


def _secret_name(v: _Validator, value: Any, key: str) -> str:
    """The name of an existing Secret: a DNS-1123 subdomain (never a credential itself)."""
    name = v.string(value, key)
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        v.fail(
            key,
            name,
            "the name of an existing Secret: a DNS-1123 subdomain (lower-case letters, digits, "
            "'-' and '.', at most 253 characters); the credentials go into that Secret",
        )
    return name


def _registry(v: _Validator, body: Mapping[str, Any], key: str, environ: Mapping[str, str]) -> str:
    """``registry`` (or ``TRADEWISE_REGISTRY``): a host and path, without scheme or credentials."""
    override = environ.get("TRADEWISE_REGISTRY")
    where = "TRADEWISE_REGISTRY (environment)" if override else f"{key}.registry"
    registry = override or v.string(body.get("registry", "registry.example.com/tradewise"), where)
    if "://" in registry or "@" in registry or any(c.isspace() for c in registry):
        v.fail(
            where,
            registry,
            "a registry host and path like registry.example.com/tradewise (no scheme and no "
            "credentials: `docker login` keeps those)",
        )
    return registry


def _local_broker(v: _Validator, value: Any, key: str, environ: Mapping[str, str]) -> str:
    """``local.broker``, overridden by ``TRADEWISE_LOCAL_BROKER``: auto, redis or sqlite."""
    allowed = "one of " + ", ".join(LOCAL_BROKERS)
    override = environ.get("TRADEWISE_LOCAL_BROKER", "").strip()
    if override:
        if override.lower() not in LOCAL_BROKERS:
            raise ConfigError(
                f"TRADEWISE_LOCAL_BROKER (environment) is {override!r}; expected {allowed}"
            )
        return override.lower()
    if not isinstance(value, str) or value not in LOCAL_BROKERS:
        v.fail(key, value, allowed)
    return str(value)


def _component(
    v: _Validator, name: str, raw: dict[str, Any], key: str, max_replicas: int
) -> Component:
    res = v.mapping(
        raw.get("resources"), f"{key}.resources", allowed={"requests", "limits"}, required=True
    )
    req = v.mapping(
        res.get("requests"), f"{key}.resources.requests", allowed={"cpu", "memory"}, required=True
    )
    lim = v.mapping(
        res.get("limits"), f"{key}.resources.limits", allowed={"cpu", "memory"}, required=True
    )
    resources = Resources(
        cpu_request=v.cpu(req.get("cpu"), f"{key}.resources.requests.cpu"),
        memory_request=v.memory(req.get("memory"), f"{key}.resources.requests.memory"),
        cpu_limit=v.cpu(lim.get("cpu"), f"{key}.resources.limits.cpu"),
        memory_limit=v.memory(lim.get("memory"), f"{key}.resources.limits.memory"),
    )
    for what in ("cpu", "memory"):
        measure = cpu_millicores if what == "cpu" else memory_bytes
        r, li = str(req.get(what)), str(lim.get(what))
        if (measure(r) or 0) > (measure(li) or 0):
            v.fail(f"{key}.resources.requests.{what}", r, f"at most the limit {li}")
    autoscaling = None
    if raw.get("autoscaling") is not None:
        if name not in SCALABLE:
            v.fail(f"{key}.autoscaling", raw["autoscaling"], "autoscaling only on api and worker")
        a = v.mapping(raw["autoscaling"], f"{key}.autoscaling", allowed=_AUTOSCALING_KEYS)
        lo = v.replicas(a.get("min"), f"{key}.autoscaling.min", minimum=1, required=True)
        hi = v.replicas(
            a.get("max"), f"{key}.autoscaling.max", minimum=1, cap=max_replicas, required=True
        )
        if lo > hi:
            v.fail(f"{key}.autoscaling.min", lo, f"at most autoscaling.max ({hi})")
        autoscaling = Autoscaling(
            min_replicas=lo,
            max_replicas=hi,
            cpu_percent=v.integer(
                a.get("cpu_percent", 70), f"{key}.autoscaling.cpu_percent", minimum=1, maximum=100
            ),
            memory_percent=v.integer(
                a.get("memory_percent", 80),
                f"{key}.autoscaling.memory_percent",
                minimum=1,
                maximum=100,
            ),
            p95_ms=None
            if a.get("p95_ms") is None
            else v.integer(a.get("p95_ms"), f"{key}.autoscaling.p95_ms", minimum=1),
            queue_per_worker=None
            if a.get("queue_per_worker") is None
            else v.integer(
                a.get("queue_per_worker"), f"{key}.autoscaling.queue_per_worker", minimum=1
            ),
        )
    storage = None
    if raw.get("storage") is not None:
        storage = v.memory(raw.get("storage"), f"{key}.storage")
    elif name in ("postgres", "redis"):
        v.fail(f"{key}.storage", None, "a storage size like 20Gi")
    replicas = v.replicas(raw.get("replicas", 1), f"{key}.replicas", cap=max_replicas)
    if autoscaling is not None and replicas > autoscaling.max_replicas:
        v.fail(f"{key}.replicas", replicas, f"at most autoscaling.max ({autoscaling.max_replicas})")
    return Component(
        name=name,
        replicas=replicas,
        resources=resources,
        autoscaling=autoscaling,
        storage=storage,
        **_placement_keys(v, name, raw, key),
    )


def _placement_keys(v: _Validator, name: str, raw: Mapping[str, Any], key: str) -> dict[str, str]:
    """``placement`` and ``priority`` of a component, defaults from ``core.placement``."""
    from tradewise_ops.core import placement as pl

    out = {
        "placement": raw.get("placement", pl.DEFAULT_PLACEMENT[name]),
        "priority": raw.get("priority", pl.DEFAULT_PRIORITY[name]),
    }
    for field_name, allowed in (("placement", pl.PLACEMENTS), ("priority", pl.PRIORITIES)):
        if out[field_name] not in allowed:
            v.fail(f"{key}.{field_name}", out[field_name], "one of " + ", ".join(allowed))
    return out


def _performance_test(v: _Validator, raw: Any) -> PerformanceTest:
    key = "performance_test"
    body = v.mapping(raw, key, allowed={"weights", "hot_symbols", "cold_symbols", "stages"})
    weights_raw = v.mapping(
        body.get("weights", {"health": 3, "analysis_hot": 5, "analysis_cold": 2, "stats": 1}),
        f"{key}.weights",
        allowed={"health", "analysis_hot", "analysis_cold", "stats"},
    )
    weights = {k: v.integer(w, f"{key}.weights.{k}", minimum=0) for k, w in weights_raw.items()}
    if not any(weights.values()):
        v.fail(f"{key}.weights", weights_raw, "at least one weight above 0")
    symbol = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")
    hot = tuple(str(s) for s in v.sequence(body.get("hot_symbols", ["AAPL"]), f"{key}.hot_symbols"))
    cold = tuple(
        str(s) for s in v.sequence(body.get("cold_symbols", ["IBM"]), f"{key}.cold_symbols")
    )
    for sym in hot + cold:
        if not symbol.match(sym):
            v.fail(f"{key}.symbols", sym, "upper-case ticker symbols like AAPL or BRK.B")
    stages = []
    default_stages = [{"name": "steady", "duration": "30s", "users": 10, "spawn_rate": 10}]
    for i, sraw in enumerate(v.sequence(body.get("stages", default_stages), f"{key}.stages")):
        skey = f"{key}.stages[{i}]"
        st = v.mapping(sraw, skey, allowed={"name", "duration", "users", "spawn_rate"})
        stages.append(
            Stage(
                name=v.string(st.get("name", f"stage-{i + 1}"), f"{skey}.name"),
                duration_seconds=v.duration(st.get("duration"), f"{skey}.duration"),
                users=v.integer(st.get("users"), f"{skey}.users", minimum=0, required=True),
                spawn_rate=v.number(st.get("spawn_rate", 10), f"{skey}.spawn_rate", positive=True),
            )
        )
    if not stages:
        v.fail(f"{key}.stages", [], "at least one stage")
    return PerformanceTest(
        weights=weights, hot_symbols=hot, cold_symbols=cold, stages=tuple(stages)
    )


def _evidence(v: _Validator, top: Mapping[str, Any]) -> tuple[CompareThresholds, CapacitySettings]:
    """``compare:`` (regression thresholds, null: not judged) and ``capacity:``."""
    fields = CompareThresholds.__dataclass_fields__
    raw = v.mapping(top.get("compare", {}), "compare", allowed=set(fields))
    limits: dict[str, float | None] = {}
    for name in fields:
        value = raw.get(name, getattr(CompareThresholds(), name))
        limits[name] = None if value is None else v.number(value, f"compare.{name}")
        if limits[name] is not None and limits[name] < 0:  # type: ignore[operator]
            v.fail(f"compare.{name}", value, "a number >= 0, or null (shown, not judged)")
    cap = v.mapping(
        top.get("capacity", {}), "capacity", allowed=set(CapacitySettings.__dataclass_fields__)
    )
    headroom = v.number(cap.get("headroom_percent", 30), "capacity.headroom_percent")
    if headroom < 0:
        v.fail("capacity.headroom_percent", headroom, "a percentage >= 0")
    step = v.duration(cap.get("step_seconds", 5), "capacity.step_seconds")
    bound = v.duration(cap.get("max_seconds", 60), "capacity.max_seconds")
    return CompareThresholds(**limits), CapacitySettings(headroom, step, bound)


def _opt_str(v: _Validator, body: Mapping[str, Any], name: str, key: str) -> str | None:
    value = body.get(name)
    return None if value is None else v.string(value, f"{key}.{name}")


def _check_timezone(v: _Validator, key: str, tz: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        v.fail(key, tz, "an IANA time zone like America/New_York")


def _blame_defaults(
    exc: ConfigError, key: str, body: Mapping[str, Any], defaults: Mapping[str, Any]
) -> ConfigError:
    """The error of a merged environment, naming ``defaults.X`` when the value came from there."""
    m = re.search(re.escape(key) + r"\.([A-Za-z0-9_.\-]+)", exc.message)
    if not m:
        return exc
    parts = m.group(1).split(".")

    def has(tree: Any, path: list[str]) -> bool:
        for part in path:
            if not isinstance(tree, Mapping) or part not in tree:
                return False
            tree = tree[part]
        return True

    # the longest prefix of the path that is set: the environment's own value wins over defaults
    for n in range(len(parts), 0, -1):
        if has(body, parts[:n]):
            return exc
        if has(defaults, parts[:n]):
            message = exc.message.replace(f"{key}.", "defaults.", 1)
            return ConfigError(f"{message} (inherited by {key})", hint=exc.hint)
    return exc


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    for k, val in override.items():
        if isinstance(val, Mapping) and isinstance(base.get(k), dict):
            base[k] = _deep_merge(base[k], val)
        else:
            base[k] = copy.deepcopy(val)
    return base


class _Validator:
    """Type checks that raise ``ConfigError`` naming file, key path, value and what is allowed."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, value: Any, allowed: str) -> Any:
        where = f"{self.source}: {key}" if key else self.source
        if value is None:
            shown = "missing"
        elif isinstance(value, str) and looks_like_credential(value):
            shown = "a value that looks like a credential (not shown)"
        else:
            shown = repr(value)
            if len(shown) > 120:
                shown = f"{shown[:60]}... ({len(shown)} characters)"
        raise ConfigError(f"{where} is {shown}; expected {allowed}")

    def mapping(
        self, value: Any, key: str, allowed: set[str] | None = None, required: bool = False
    ) -> dict[str, Any]:
        if value is None:
            if required:
                self.fail(key, None, "a mapping")
            return {}
        if not isinstance(value, dict):
            self.fail(key, value, "a mapping of keys to values")
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    path = f"{key}.{k}" if key else str(k)
                    raise ConfigError(
                        f"{self.source}: unknown key {path!r}; allowed here: "
                        + ", ".join(sorted(allowed))
                    )
        return dict(value)

    def sequence(self, value: Any, key: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(key, value, "a list")
        return list(value)

    def string(self, value: Any, key: str, required: bool = False) -> str:
        if value is None and required:
            self.fail(key, None, "a string")
        if not isinstance(value, str) or not value:
            self.fail(key, value, "a non-empty string")
        return str(value)

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            self.fail(key, value, "true or false")
        return bool(value)

    def integer(
        self,
        value: Any,
        key: str,
        minimum: int | None = None,
        maximum: int | None = None,
        required: bool = False,
    ) -> int:
        if value is None and required:
            self.fail(key, None, "a whole number")
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, value, "a whole number")
        if minimum is not None and value < minimum:
            self.fail(key, value, f"a whole number >= {minimum}")
        if maximum is not None and value > maximum:
            self.fail(key, value, f"a whole number <= {maximum}")
        return int(value)

    def replicas(
        self,
        value: Any,
        key: str,
        minimum: int = 0,
        cap: int | None = None,
        required: bool = False,
    ) -> int:
        """A replica count: ``minimum`` or more, at most ``cap`` (``max_replicas``) and what
        Kubernetes accepts (int32)."""
        count = self.integer(value, key, minimum=minimum, required=required)
        if count > INT32_MAX:
            self.fail(key, count, f"a whole number <= {INT32_MAX} (the most Kubernetes accepts)")
        if cap is not None and count > cap:
            self.fail(key, count, f"at most max_replicas ({cap})")
        return count

    def number(self, value: Any, key: str, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, value, "a number")
        if positive and value <= 0:
            self.fail(key, value, "a number above 0")
        return float(value)

    def fraction(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            self.fail(key, value, "a fraction between 0 and 1 (0.01 is 1%)")
        return float(value)

    def port(self, value: Any, key: str) -> int:
        return self.integer(value, key, minimum=1, maximum=65535)

    def duration(self, value: Any, key: str) -> float:
        try:
            return parse_duration(str(value), what=key)
        except BadInputError:
            return float(self.fail(key, value, "a duration like 30s, 5m or 1h30m"))

    def cpu(self, value: Any, key: str) -> str:
        if value is None or cpu_millicores(value) is None or (cpu_millicores(value) or 0) <= 0:
            self.fail(key, value, "a CPU quantity like 500m or 1")
        return str(value)

    def memory(self, value: Any, key: str) -> str:
        if value is None or memory_bytes(value) is None or (memory_bytes(value) or 0) <= 0:
            self.fail(key, value, "a memory quantity like 512Mi or 2Gi")
        return str(value)


# --------------------------------------------------------------------------------------------
# `tradewise stress`: the database pool and fault knobs of an environment, the scenarios' bounds
# --------------------------------------------------------------------------------------------
FAULT_KNOBS = ("memory", "uncached")  # what the service's TRADEWISE_FAULTS accepts


@dataclass(frozen=True)
class DatabasePool:
    """The database connection pool of each service process (``TRADEWISE_DB_POOL_*``)."""

    size: int = 5
    overflow: int = 5
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class StressSettings:
    """``tradewise stress cpu|memory|db``: each scenario's time bound and how hard it pushes.

    ``step_seconds``/``max_users``: the cpu scenario doubles its users every step until the CPU
    target is crossed; ``db_users``: the db scenario's users (0: twice the pools' capacity);
    ``memory_step_mb``/``memory_step_seconds``: how fast the memory fault grows a process.
    """

    cpu_seconds: float = 300.0
    memory_seconds: float = 120.0
    db_seconds: float = 60.0
    step_seconds: float = 15.0
    max_users: int = 200
    db_users: int = 0
    memory_step_mb: int = 16
    memory_step_seconds: float = 0.25


class _StressEnvironment(TypedDict):
    database_pool: DatabasePool
    faults: tuple[str, ...]


def _stress_environment(v: _Validator, body: Mapping[str, Any], key: str) -> _StressEnvironment:
    """``database_pool: {size, overflow, timeout (seconds)}`` and ``faults: [memory, uncached]``."""
    raw = v.mapping(
        body.get("database_pool", {}), f"{key}.database_pool",
        allowed={"size", "overflow", "timeout"},
    )  # fmt: skip
    pool = DatabasePool(
        size=v.integer(raw.get("size", 5), f"{key}.database_pool.size", minimum=1, maximum=1000),
        overflow=v.integer(
            raw.get("overflow", 5), f"{key}.database_pool.overflow", minimum=0, maximum=1000
        ),
        timeout_seconds=v.number(raw.get("timeout", 5), f"{key}.database_pool.timeout"),
    )
    if not 0.1 <= pool.timeout_seconds <= 300:
        v.fail(f"{key}.database_pool.timeout", raw.get("timeout"), "seconds from 0.1 to 300")
    faults = tuple(str(f) for f in v.sequence(body.get("faults", []), f"{key}.faults"))
    for fault in faults:
        if fault not in FAULT_KNOBS:
            v.fail(f"{key}.faults", fault, "a list of fault knobs: " + ", ".join(FAULT_KNOBS))
    return {"database_pool": pool, "faults": tuple(dict.fromkeys(faults))}


def _stress(v: _Validator, raw: Any) -> StressSettings:
    key = "stress"
    body = v.mapping(
        raw, key,
        allowed={"duration", "step_seconds", "max_users", "db_users", "memory_step_mb",
                 "memory_step_seconds"},
    )  # fmt: skip
    defaults = StressSettings()
    durations = v.mapping(
        body.get("duration", {}), f"{key}.duration", allowed={"cpu", "memory", "db"}
    )
    seconds = {
        name: v.duration(durations.get(name, int(getattr(defaults, f"{name}_seconds"))),
                         f"{key}.duration.{name}")
        for name in ("cpu", "memory", "db")
    }  # fmt: skip
    for name, value in seconds.items():
        if not 5 <= value <= 3600:
            v.fail(f"{key}.duration.{name}", durations.get(name), "a duration from 5s to 1h")
    step = v.duration(body.get("step_seconds", int(defaults.step_seconds)), f"{key}.step_seconds")
    if not 2 <= step <= 600:
        v.fail(f"{key}.step_seconds", body.get("step_seconds"), "a duration from 2s to 10m")
    memory_step = v.number(
        body.get("memory_step_seconds", defaults.memory_step_seconds), f"{key}.memory_step_seconds"
    )
    if not 0.05 <= memory_step <= 60:
        v.fail(f"{key}.memory_step_seconds", memory_step, "seconds from 0.05 to 60")
    return StressSettings(
        cpu_seconds=seconds["cpu"],
        memory_seconds=seconds["memory"],
        db_seconds=seconds["db"],
        step_seconds=step,
        max_users=v.integer(
            body.get("max_users", defaults.max_users), f"{key}.max_users", minimum=1, maximum=5000
        ),
        db_users=v.integer(
            body.get("db_users", defaults.db_users), f"{key}.db_users", minimum=0, maximum=5000
        ),
        memory_step_mb=v.integer(
            body.get("memory_step_mb", defaults.memory_step_mb),
            f"{key}.memory_step_mb",
            minimum=1,
            maximum=1024,
        ),  # fmt: skip
        memory_step_seconds=memory_step,
    )
