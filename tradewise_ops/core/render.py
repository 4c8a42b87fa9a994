"""Rendering of every Kubernetes object of an environment from ``templates/k8s`` (Jinja2).

The templates produce YAML; this module gives them the values (images, labels, resources,
security contexts) and returns plain dicts in apply order. Output is deterministic: the same
config, environment and tag give byte-identical YAML. Rendering does not validate: call
``tradewise_ops.core.validate.validate`` on the result (the CLI always does).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tradewise_ops.core.backup import BACKUP_RESOURCES, BACKUP_SCRIPT, VERIFY_SCRIPT
from tradewise_ops.core.config import Config, Environment
from tradewise_ops.errors import BadInputError, TradewiseError

if TYPE_CHECKING:
    import jinja2

    from tradewise_ops.core.caches import Caches

# The order objects are applied in, and why:
# - the Namespace holds everything else;
# - ServiceAccounts and RBAC before the pods that run as them;
# - ConfigMaps before pods that read them (else CreateContainerConfigError);
# - Services before workloads: DNS names exist and StatefulSets' governing Services too;
# - StatefulSets (PostgreSQL, Redis) before the Deployments that connect to them;
# - HPAs after the Deployments they scale, PDBs and NetworkPolicies after the pods they select;
# - the Ingress once its backends exist;
# - monitoring CRs late: they need prometheus-operator's CRDs, and a cluster without them fails
#   after the service itself is up, not before;
# - CronJobs last, so no scheduled scaling fires against a half-applied release.
APPLY_ORDER: tuple[str, ...] = (
    "Namespace",
    "PriorityClass",  # before the pods that name one (issue 16)
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Service",
    "StatefulSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "VerticalPodAutoscaler",  # recommendation mode only (issue 16)
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Ingress",
    "ServiceMonitor",
    "PrometheusRule",
    "CronJob",
)

# Templates rendered for every environment, in no particular order (objects are sorted after).
_TEMPLATES: tuple[str, ...] = (
    "namespace.yaml.j2",
    "rbac.yaml.j2",
    "configmap.yaml.j2",
    "api.yaml.j2",
    "worker.yaml.j2",
    "precompute.yaml.j2",
    "postgres.yaml.j2",
    "redis.yaml.j2",
    "maintenance.yaml.j2",
    "networkpolicy.yaml.j2",
    "ingress.yaml.j2",
    "monitoring.yaml.j2",
    "dashboards.yaml.j2",
    "cronjobs.yaml.j2",
    "priorityclasses.yaml.j2",
    "vpa.yaml.j2",
    "backups.yaml.j2",  # only when backups.enabled
)
_DASHBOARDS: tuple[str, ...] = (
    "application-performance",
    "resource-utilization",
    "scaling-behavior",
    "business-metrics",
)

# The uid the app containers run as (the images' `tradewise` user, the guide's tradewise:1000),
# and the uid of the official postgres/redis images' own users.
APP_UID = 1000
DATA_UID = 999

P95_METRIC = "http_request_duration_seconds_p95"
QUEUE_METRIC = "tradewise_task_queue_length"

HPA_BEHAVIOR: dict[str, Any] = {
    "scaleUp": {
        "stabilizationWindowSeconds": 60,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": 50, "periodSeconds": 60},
            {"type": "Pods", "value": 5, "periodSeconds": 60},
        ],
    },
    "scaleDown": {
        "stabilizationWindowSeconds": 300,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
    },
}

_MAINTENANCE = {
    "replicas": 1,
    "resources": {
        "requests": {"cpu": "10m", "memory": "32Mi"},
        "limits": {"cpu": "100m", "memory": "64Mi"},
    },
}
_SCALER_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def render_environment(
    config: Config,
    env: Environment | str,
    tag: str | None = None,
    k8s_version: str | None = None,
    image_digests: Mapping[str, str] | None = None,
    maintenance: bool = False,
    caches: Caches | None = None,
) -> list[dict[str, Any]]:
    """Every object of a Kubernetes environment, as plain dicts in apply order.

    ``tag`` is the image tag of the API and worker images; ``image_digests`` (``{"api":
    "sha256:...", "worker": ...}``) pins them by digest instead. An environment with
    ``require_pinned_tag`` refuses a missing or ``latest`` tag unless both digests are given
    (``BadInputError``). ``maintenance=True`` points the Ingress at the maintenance page.
    ``k8s_version`` is checked to be supported (the templates target 1.27 and later).
    ``caches`` may keep compiled templates between runs (None: compile them in memory).
    """
    environment = _kubernetes_environment(config, env)
    if k8s_version is not None:
        from tradewise_ops.core.validate import check_version

        check_version(k8s_version)
    jinja = _jinja(caches.templates if caches is not None else None)
    context = _context(config, environment, tag, image_digests, maintenance, jinja)
    objects: list[dict[str, Any]] = []
    for name in _TEMPLATES:
        objects.extend(_render_template(name, context, jinja))
    return sort_objects(objects)


def version_label(tag: str | None) -> str | None:
    """The pods' ``app.kubernetes.io/version`` for ``tag`` (None when the tag cannot be a label
    value); the app reports it as the ``version`` of its request metrics."""
    return tag if tag and _LABEL_VALUE.match(tag) and len(tag) <= 63 else None


def render_ingress(config: Config, env: Environment | str, maintenance: bool) -> dict[str, Any]:
    """The ``tradewise-ingress`` object alone, pointing at the API or the maintenance page.

    What ``tradewise maintenance on|off`` applies: the Ingress does not depend on the tag.
    Its annotation ``tradewise.io/maintenance`` says ``on`` or ``off``.
    """
    environment = _kubernetes_environment(config, env)
    jinja = _jinja(None)
    context = _context(config, environment, None, None, maintenance, jinja, check_tag=False)
    (ingress,) = _render_template("ingress.yaml.j2", context, jinja)
    return ingress


def render_objects(template: str, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The objects one template of ``templates/k8s`` makes from ``context``, in its order.

    For templates outside an environment's set, such as ``loadtest/locust-jobs.yaml.j2`` (the
    in-cluster load test, see ``core.loadplan``). The context also offers what every workload
    shares: ``app_uid``, ``pod_security(uid)`` and ``container_security()``.
    """
    shared = {
        "app_uid": APP_UID,
        "pod_security": _pod_security,
        "container_security": _container_security,
    }
    return _render_template(template, {**shared, **context}, _jinja(None))


def sort_objects(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``objects`` in apply order: by kind (``APPLY_ORDER``), then by name."""

    def key(obj: dict[str, Any]) -> tuple[int, str]:
        kind = obj.get("kind", "")
        rank = APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER)
        return rank, str(obj.get("metadata", {}).get("name", ""))

    return sorted(objects, key=key)


def to_yaml_stream(objects: Sequence[Mapping[str, Any]]) -> str:
    """One YAML stream, each object a ``---`` document with sorted keys; byte-identical per input.

    Multi-line strings (dashboards, nginx config, PromQL) are written as ``|`` blocks.
    """
    import yaml

    return "".join(
        "---\n"
        + yaml.dump(
            obj,
            Dumper=_dumper(),
            sort_keys=True,
            default_flow_style=False,
            allow_unicode=True,
            width=100,
        )
        for obj in objects
    )


def manifest_files(objects: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``(file name, YAML text)`` per object: ``NN-kind-name.yaml``, numbered in apply order."""
    width = max(2, len(str(len(objects))))
    files = []
    for i, obj in enumerate(objects, start=1):
        kind = str(obj.get("kind", "object")).lower()
        name = str(obj.get("metadata", {}).get("name", "unnamed"))
        files.append((f"{i:0{width}d}-{kind}-{name}.yaml", to_yaml_stream([obj])))
    return files


def image_reference(
    env: Environment, which: str, tag: str | None, digest: str | None = None
) -> str:
    """``{registry}/{image}:{tag}``, or ``{registry}/{image}@sha256:...`` when a digest is given."""
    name = env.api_image if which == "api" else env.worker_image
    base = f"{env.registry.rstrip('/')}/{name}"
    if digest:
        return f"{base}@{digest}"
    return f"{base}:{tag or 'latest'}"


def kubernetes_environment_names(config: Config) -> list[str]:
    """The names of the environments of kind ``kubernetes``."""
    return [e.name for e in config.environments.values() if e.is_kubernetes]


# ------------------------------------------------------------------------------------------
# internals
# ------------------------------------------------------------------------------------------
def _kubernetes_environment(config: Config, env: Environment | str) -> Environment:
    environment = config.environment(env) if isinstance(env, str) else env
    if not environment.is_kubernetes:
        names = ", ".join(kubernetes_environment_names(config)) or "none in this config"
        raise BadInputError(
            f"environment {environment.name!r} is of kind {environment.kind!r}: there are no "
            f"Kubernetes manifests for it; Kubernetes environments: {names}"
        )
    return environment


def _check_tag(env: Environment, tag: str | None, digests: Mapping[str, str]) -> None:
    if tag is not None and not _TAG.match(tag):
        raise BadInputError(
            f"image tag {tag!r} is not valid: letters, digits, '_', '.', '-', at most 128, "
            "not starting with '.' or '-'"
        )
    for which, digest in digests.items():
        if which not in ("api", "worker"):
            raise BadInputError(f"image digest for {which!r}: only api and worker have digests")
        if not _DIGEST.match(digest):
            raise BadInputError(
                f"image digest {digest!r} for {which} is not valid: sha256:<64 hex digits>"
            )
    pinned_by_digest = {"api", "worker"} <= set(digests)
    if env.require_pinned_tag and not pinned_by_digest and (tag is None or tag == "latest"):
        shown = "no tag" if tag is None else "the tag 'latest'"
        raise BadInputError(
            f"environment {env.name!r} requires a pinned image tag, got {shown}: "
            "pass --tag with a release tag such as v1.2.3"
        )


def _context(
    config: Config,
    env: Environment,
    tag: str | None,
    image_digests: Mapping[str, str] | None,
    maintenance: bool,
    jinja: jinja2.Environment,
    check_tag: bool = True,
) -> dict[str, Any]:
    digests = dict(image_digests or {})
    if check_tag:
        _check_tag(env, tag, digests)
    common = {
        "app.kubernetes.io/name": "tradewise",
        "app.kubernetes.io/part-of": "tradewise",
        "app.kubernetes.io/managed-by": "tradewise",
        "tradewise.io/environment": env.name,
    }
    version = version_label(tag)

    def meta(
        name: str,
        component: str,
        namespaced: bool = True,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name}
        if namespaced:
            out["namespace"] = env.namespace
        out["labels"] = {**common, "app.kubernetes.io/component": component, **(labels or {})}
        if annotations:
            out["annotations"] = dict(annotations)
        return out

    def selector(component: str) -> dict[str, str]:
        return {"app.kubernetes.io/name": "tradewise", "app.kubernetes.io/component": component}

    def pod_labels(component: str, versioned: bool = True) -> dict[str, str]:
        labels = {**common, "app.kubernetes.io/component": component}
        if versioned and version:
            labels["app.kubernetes.io/version"] = version
        return labels

    def resources(component: str) -> dict[str, Any]:
        r = env.components[component].resources
        return {
            "requests": {"cpu": r.cpu_request, "memory": r.memory_request},
            "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit},
        }

    def image(which: str) -> str:
        return image_reference(env, which, tag, digests.get(which))

    ingress_annotations = {"tradewise.io/maintenance": "on" if maintenance else "off"}
    if env.domain and env.tls_secret:
        ingress_annotations["nginx.ingress.kubernetes.io/ssl-redirect"] = "true"

    context: dict[str, Any] = {
        "env": env.name,
        "env_config": env,
        "namespace": env.namespace,
        "components": env.components,
        "secret_name": env.secret_name,
        "schedules": config.schedules,
        "schedule_jobs": _schedule_jobs(config, env),
        "priority_classes": _priority_classes(),
        "vpa_targets": _VPA_TARGETS,
        "placement": lambda name: _placement(env, name),
        "maintenance": maintenance,
        "maintenance_component": _MAINTENANCE,
        "scaler_resources": _SCALER_RESOURCES,
        "ingress_annotations": ingress_annotations,
        "hpa_behavior": HPA_BEHAVIOR,
        "p95_metric": P95_METRIC,
        "queue_metric": QUEUE_METRIC,
        "app_uid": APP_UID,
        "data_uid": DATA_UID,
        "meta": meta,
        "selector": selector,
        "pod_labels": pod_labels,
        "resources": resources,
        "image": image,
        "pod_security": _pod_security,
        "container_security": _container_security,
        "panel": _panel,
        "layout": _layout,
        "backup_script": BACKUP_SCRIPT,
        "verify_script": VERIFY_SCRIPT,
        "backup_resources": BACKUP_RESOURCES,
    }
    context["dashboards"] = _dashboards(context, jinja)
    return context


def _schedule_jobs(config: Config, env: Environment) -> list[Any]:
    """The predictive-scaling CronJobs (issue 16: calendar-aware, see core.schedule_runs)."""
    from tradewise_ops.core.schedule_runs import scheduled_jobs

    return scheduled_jobs(config.schedules, env.name)


# issue 16: the Deployments a VerticalPodAutoscaler recommends for: component, Deployment, container
_VPA_TARGETS = (
    ("api", "tradewise-api-deployment", "tradewise-api"),
    ("worker", "tradewise-worker-deployment", "tradewise-worker"),
    ("precompute", "tradewise-precompute-deployment", "tradewise-precompute"),
)


def _priority_classes() -> list[dict[str, Any]]:
    from tradewise_ops.core.placement import priority_classes

    return priority_classes()


def _placement(env: Environment, component: str) -> dict[str, Any]:
    """Pod-spec fields placing ``component`` by price (issue 16, core.placement)."""
    from tradewise_ops.core.placement import pod_placement

    c = env.components[component]
    return pod_placement(env.cloud, c.placement, c.priority)


def _pod_security(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _panel(
    title: str,
    targets: Sequence[Sequence[str]],
    unit: str = "short",
    thresholds: Sequence[float] = (),
    kind: str = "timeseries",
) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    colors = ("orange", "red")
    for i, value in enumerate(thresholds):
        steps.append({"color": colors[min(i, len(colors) - 1)], "value": value})
    return {
        "type": kind,
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def _layout(rows: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    panels = []
    next_id = 1
    for y, row in enumerate(rows):
        width = 24 // max(1, len(row))
        for x, panel in enumerate(row):
            placed = dict(panel)
            placed["id"] = next_id
            placed["gridPos"] = {"h": 8, "w": width, "x": x * width, "y": y * 8}
            panels.append(placed)
            next_id += 1
    return panels


def _dashboards(context: Mapping[str, Any], jinja: jinja2.Environment) -> dict[str, str]:
    out = {}
    for name in _DASHBOARDS:
        template = f"dashboards/{name}.json.j2"
        text = jinja.get_template(template).render(context)
        try:
            board = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TradewiseError(f"template {template} made invalid JSON: {exc}") from None
        out[f"tradewise-{name}.json"] = json.dumps(board, indent=2, sort_keys=True) + "\n"
    return out


def _render_template(
    name: str, context: Mapping[str, Any], jinja: jinja2.Environment
) -> list[dict[str, Any]]:
    import jinja2
    import yaml

    try:
        text = jinja.get_template(name).render(context)
    except jinja2.TemplateError as exc:
        raise TradewiseError(f"template {name} failed to render: {exc}") from None
    try:
        docs = list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError as exc:
        raise TradewiseError(f"template {name} made invalid YAML: {exc}") from None
    objects = [d for d in docs if d is not None]
    for obj in objects:
        if not isinstance(obj, dict) or "kind" not in obj:
            raise TradewiseError(f"template {name} made a document that is not an object")
    return objects


@lru_cache(maxsize=4)
def _jinja(bytecode_cache: jinja2.BytecodeCache | None) -> jinja2.Environment:
    """The template environment, one per bytecode cache (None: templates compile in memory).

    A Jinja bytecode cache is keyed by each template's source, so an edited template is
    recompiled; the environment also keeps the templates it compiled for later renders.
    """
    import jinja2

    from tradewise_ops.resources import templates_dir

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        bytecode_cache=bytecode_cache,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


@lru_cache(maxsize=1)
def _dumper() -> type:
    import yaml

    base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class _BlockDumper(base):  # type: ignore[misc, valid-type]
        pass

    def _str(dumper: Any, data: str) -> Any:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    _BlockDumper.add_representer(str, _str)
    return _BlockDumper
