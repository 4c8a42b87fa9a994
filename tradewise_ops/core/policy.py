"""The project's own checks of rendered objects: what the OpenAPI schemas cannot see.

Schemas check structure and types; they accept ``imagePullPolicy: Sometimes``, ``cpu: lots``,
a selector that matches nothing, ``minReplicas`` above ``maxReplicas`` or a container running
as root. Each rule here has a name (``RULES``) that every finding carries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tradewise_ops.core.findings import Finding
from tradewise_ops.core.units import cpu_millicores, memory_bytes, parse_quantity

RULES: dict[str, str] = {
    "schema": "the object matches the strict OpenAPI schema of its kind (unknown fields, types)",
    "schema-missing": "every kind has a schema to check it against (none is passed unchecked)",
    "labels": "every object carries the contract labels; label keys and values are valid",
    "namespace": "every namespaced object lives in the rendered Namespace",
    "dns1123-name": "names of objects, containers, volumes and ports are valid DNS-1123 names",
    "enum": "fields with a fixed set of values hold one of them",
    "quantity": "resource quantities parse and are above zero",
    "min-max": "HPA minReplicas <= maxReplicas, resource requests <= limits",
    "selector-match": "selectors match the pod template labels of a rendered workload",
    "reference": "names that point at other objects or ports point at rendered ones",
    "probes": "every long-running container has startup, readiness and liveness probes",
    "resources": "every container has CPU and memory requests and limits",
    "non-root": "every container runs as non-root (runAsNonRoot, uid not 0)",
    "security-context": "no privilege escalation, all capabilities dropped, read-only root "
    "filesystem, seccomp RuntimeDefault, no host namespaces",
    "writable-tmp": "a container with a read-only root filesystem mounts a volume at /tmp",
    "hpa-replicas": "a Deployment managed by an HPA has no spec.replicas (an apply would reset "
    "the count the HPA chose)",
    "image-pinned": "images carry a tag or a digest; no 'latest' where pinning is required",
    "qos": "the database's pods are QoS Guaranteed (requests equal limits)",
    "no-secret-values": "no Secret object and no literal secret value is rendered",
    "ingress-public-paths": "an Ingress routes only public paths to the API: not '/', not "
    "the operator paths /metrics and /api/performance/stats",
}
# what Prometheus and operators read inside the cluster; never published through an Ingress
OPERATOR_PATHS = ("/metrics", "/api/performance/stats")

REQUIRED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
    "tradewise.io/environment",
)
GUARANTEED_COMPONENTS = frozenset({"postgres"})

_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
_LONG_RUNNING = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod")
_CLUSTER_SCOPED = ("Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|DATABASE_URL)", re.I)

_ENUMS: dict[str, tuple[str, ...]] = {
    "imagePullPolicy": ("Always", "IfNotPresent", "Never"),
    "restartPolicy": ("Always", "OnFailure", "Never"),
    "jobRestartPolicy": ("OnFailure", "Never"),
    "protocol": ("TCP", "UDP", "SCTP"),
    "serviceType": ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"),
    "deploymentStrategy": ("RollingUpdate", "Recreate"),
    "podManagementPolicy": ("OrderedReady", "Parallel"),
    "statefulSetStrategy": ("RollingUpdate", "OnDelete"),
    "seccomp": ("RuntimeDefault", "Localhost", "Unconfined"),
    "metricType": ("Resource", "Pods", "Object", "External", "ContainerResource"),
    "targetType": ("Utilization", "AverageValue", "Value"),
    "scalingPolicyType": ("Pods", "Percent"),
    "selectPolicy": ("Max", "Min", "Disabled"),
    "concurrencyPolicy": ("Allow", "Forbid", "Replace"),
    "pathType": ("Exact", "Prefix", "ImplementationSpecific"),
    "policyType": ("Ingress", "Egress"),
    "accessMode": ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"),
    "selectorOperator": ("In", "NotIn", "Exists", "DoesNotExist"),
    "severity": ("critical", "warning", "info"),
    "resourceName": ("cpu", "memory", "ephemeral-storage"),
    "hpaResource": ("cpu", "memory"),
    "whenUnsatisfiable": ("DoNotSchedule", "ScheduleAnyway"),
}


def check_policy(
    objects: Sequence[Mapping[str, Any]], require_pinned: bool = True
) -> list[Finding]:
    """Every policy finding of ``objects`` (a whole environment: references are checked
    against the other objects of the set). ``require_pinned`` flags ``latest`` image tags."""
    checker = _Checker(objects, require_pinned)
    checker.run()
    return checker.findings


def label_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector (``matchLabels``/``matchExpressions``) selects ``labels``.

    An empty selector matches everything, as Kubernetes defines it.
    """
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _get(obj: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(obj, Mapping):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and key < len(obj):
            obj = obj[key]
        else:
            return None
    return obj


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class _Pod:
    """A pod template inside a workload: its spec, its labels, where it is."""

    def __init__(self, spec: Mapping[str, Any], labels: Mapping[str, str], path: str) -> None:
        self.spec = spec
        self.labels = labels
        self.path = path  # path of the pod spec, e.g. spec.template.spec

    def containers(self) -> Iterator[tuple[Mapping[str, Any], str, bool]]:
        for field, init in (("initContainers", True), ("containers", False)):
            for i, container in enumerate(_list(self.spec.get(field))):
                if isinstance(container, Mapping):
                    yield container, f"{self.path}.{field}[{i}]", init


def _pod_of(obj: Mapping[str, Any]) -> _Pod | None:
    kind = obj.get("kind")
    if kind not in _WORKLOADS:
        return None
    if kind == "Pod":
        return _Pod(_map(obj.get("spec")), _map(_get(obj, "metadata", "labels")), "spec")
    prefix: tuple[str, ...] = ("spec", "jobTemplate", "spec") if kind == "CronJob" else ("spec",)
    template = _map(_get(obj, *prefix, "template"))
    base = ".".join(prefix) + ".template"
    return _Pod(
        _map(template.get("spec")), _map(_get(template, "metadata", "labels")), base + ".spec"
    )


class _Checker:
    def __init__(self, objects: Sequence[Mapping[str, Any]], require_pinned: bool) -> None:
        self.objects = [o for o in objects if isinstance(o, Mapping)]
        self.require_pinned = require_pinned
        self.findings: list[Finding] = []
        self.obj: Mapping[str, Any] = {}

    # -- reporting -------------------------------------------------------------------------
    def add(self, path: str, rule: str, message: str) -> None:
        self.findings.append(
            Finding(
                str(self.obj.get("kind", "?")),
                str(_get(self.obj, "metadata", "name") or "?"),
                path,
                rule,
                message,
            )
        )

    def enum(self, value: Any, allowed_key: str, path: str) -> None:
        allowed = _ENUMS[allowed_key]
        if value is not None and value not in allowed:
            self.add(path, "enum", f"{value!r} is not one of {', '.join(allowed)}")

    # -- the set as a whole ----------------------------------------------------------------
    def of_kind(self, *kinds: str) -> list[Mapping[str, Any]]:
        return [o for o in self.objects if o.get("kind") in kinds]

    def named(self, kind: str, name: str) -> Mapping[str, Any] | None:
        for o in self.objects:
            if o.get("kind") == kind and _get(o, "metadata", "name") == name:
                return o
        return None

    def pods(self) -> list[tuple[Mapping[str, Any], _Pod]]:
        out = []
        for o in self.objects:
            pod = _pod_of(o)
            if pod is not None:
                out.append((o, pod))
        return out

    def hpa_targets(self) -> set[tuple[str, str]]:
        targets = set()
        for hpa in self.of_kind("HorizontalPodAutoscaler"):
            ref = _map(_get(hpa, "spec", "scaleTargetRef"))
            targets.add((str(ref.get("kind")), str(ref.get("name"))))
        return targets

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> None:
        namespaces = [_get(o, "metadata", "name") for o in self.of_kind("Namespace")]
        hpa_targets = self.hpa_targets()
        workload_pods = self.pods()
        for obj in self.objects:
            self.obj = obj
            kind = obj.get("kind")
            self.check_labels(obj)
            self.check_namespace(obj, namespaces)
            self.check_name(obj)
            pod = _pod_of(obj)
            if pod is not None:
                self.check_pod(obj, pod)
            if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
                self.check_workload_selector(obj, pod)
            if kind == "Deployment":
                self.check_deployment(obj, hpa_targets)
            elif kind == "StatefulSet":
                self.check_statefulset(obj)
            elif kind == "Service":
                self.check_service(obj, workload_pods)
            elif kind == "HorizontalPodAutoscaler":
                self.check_hpa(obj)
            elif kind == "PodDisruptionBudget":
                self.check_selects_pods(obj, _get(obj, "spec", "selector"), "spec.selector")
            elif kind == "NetworkPolicy":
                self.check_network_policy(obj)
            elif kind == "Ingress":
                self.check_ingress(obj)
            elif kind == "CronJob":
                self.enum(
                    _get(obj, "spec", "concurrencyPolicy"),
                    "concurrencyPolicy",
                    "spec.concurrencyPolicy",
                )
            elif kind == "ServiceMonitor":
                self.check_service_monitor(obj)
            elif kind == "PrometheusRule":
                self.check_prometheus_rule(obj)
            elif kind == "ConfigMap":
                for key in _map(obj.get("data")):
                    if _SECRET_NAME.search(str(key)):
                        self.add(
                            f"data.{key}",
                            "no-secret-values",
                            f"{key} looks like a secret: keep it in the Secret, not a ConfigMap",
                        )
            elif kind == "Secret":
                self.add(
                    "kind",
                    "no-secret-values",
                    "Secrets are never rendered: reference an existing Secret instead",
                )

    # -- every object ----------------------------------------------------------------------
    def check_labels(self, obj: Mapping[str, Any]) -> None:
        labels = _map(_get(obj, "metadata", "labels"))
        for key in REQUIRED_LABELS:
            if key not in labels:
                self.add("metadata.labels", "labels", f"missing the label {key}")
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/part-of",
            "app.kubernetes.io/managed-by",
        ):
            if key in labels and labels[key] != "tradewise":
                self.add(
                    f"metadata.labels.{key}", "labels", f"is {labels[key]!r}; expected 'tradewise'"
                )
        self.check_label_syntax(labels, "metadata.labels")
        pod = _pod_of(obj)
        if pod is not None and obj.get("kind") != "Pod":
            self.check_label_syntax(pod.labels, pod.path[: -len(".spec")] + ".metadata.labels")

    def check_label_syntax(self, labels: Mapping[str, Any], path: str) -> None:
        for key, value in labels.items():
            prefix, _, name = str(key).rpartition("/")
            good_key = bool(_LABEL_NAME.match(name)) and len(name) <= 63
            if prefix and (not _DNS_SUBDOMAIN.match(prefix) or len(prefix) > 253):
                good_key = False
            if not good_key:
                self.add(f"{path}.{key}", "labels", f"{key!r} is not a valid label key")
            if not isinstance(value, str) or not _LABEL_VALUE.match(value) or len(value) > 63:
                self.add(
                    f"{path}.{key}",
                    "labels",
                    f"{value!r} is not a valid label value (at most 63 of A-Z a-z 0-9 "
                    "'-' '_' '.', alphanumeric at both ends)",
                )

    def check_namespace(self, obj: Mapping[str, Any], namespaces: list[Any]) -> None:
        if obj.get("kind") in _CLUSTER_SCOPED or not namespaces:
            return
        ns = _get(obj, "metadata", "namespace")
        if ns not in namespaces:
            self.add(
                "metadata.namespace",
                "namespace",
                f"is {ns!r}; the rendered Namespace is {namespaces[0]!r}",
            )

    def check_name(self, obj: Mapping[str, Any]) -> None:
        name = _get(obj, "metadata", "name")
        kind = obj.get("kind")
        if not isinstance(name, str):
            self.add("metadata.name", "dns1123-name", "missing")
            return
        if kind in ("Namespace", "Service"):
            if not _DNS_LABEL.match(name) or len(name) > 63:
                self.add(
                    "metadata.name",
                    "dns1123-name",
                    f"{name!r} is not a DNS-1123 label (at most 63 of a-z 0-9 '-', "
                    "alphanumeric at both ends)",
                )
            return
        limit = 52 if kind == "CronJob" else 253
        if not _DNS_SUBDOMAIN.match(name) or len(name) > limit:
            self.add(
                "metadata.name",
                "dns1123-name",
                f"{name!r} is not a DNS-1123 subdomain of at most {limit} characters",
            )

    # -- pods ------------------------------------------------------------------------------
    def check_pod(self, obj: Mapping[str, Any], pod: _Pod) -> None:
        kind = obj.get("kind")
        spec = pod.spec
        restart_enum = "jobRestartPolicy" if kind in ("Job", "CronJob") else "restartPolicy"
        self.enum(spec.get("restartPolicy"), restart_enum, f"{pod.path}.restartPolicy")
        pod_sc = _map(spec.get("securityContext"))
        self.enum(
            _get(pod_sc, "seccompProfile", "type"),
            "seccomp",
            f"{pod.path}.securityContext.seccompProfile.type",
        )
        for i, spread in enumerate(_list(spec.get("topologySpreadConstraints"))):
            spath = f"{pod.path}.topologySpreadConstraints[{i}]"
            self.enum(
                _get(spread, "whenUnsatisfiable"), "whenUnsatisfiable", f"{spath}.whenUnsatisfiable"
            )
            selector = _get(spread, "labelSelector")
            if selector and not label_selector_matches(selector, pod.labels):
                self.add(
                    f"{spath}.labelSelector",
                    "selector-match",
                    "the spread selector does not match the pod's own labels",
                )
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(host) is True:
                self.add(f"{pod.path}.{host}", "security-context", f"{host} must not be true")
        volumes = {v.get("name"): v for v in _list(spec.get("volumes")) if isinstance(v, Mapping)}
        for i, volume in enumerate(_list(spec.get("volumes"))):
            vpath = f"{pod.path}.volumes[{i}]"
            self.dns_label(_get(volume, "name"), f"{vpath}.name", "volume name")
            size = _get(volume, "emptyDir", "sizeLimit")
            if size is not None:
                self.memory_quantity(size, f"{vpath}.emptyDir.sizeLimit")
            cm = _get(volume, "configMap", "name")
            if cm is not None and self.named("ConfigMap", cm) is None:
                self.add(f"{vpath}.configMap.name", "reference", f"no ConfigMap {cm!r} is rendered")
        claim_names = {
            _get(t, "metadata", "name") for t in _list(_get(obj, "spec", "volumeClaimTemplates"))
        }
        sa = spec.get("serviceAccountName")
        if sa and sa != "default" and self.named("ServiceAccount", sa) is None:
            self.add(
                f"{pod.path}.serviceAccountName",
                "reference",
                f"no ServiceAccount {sa!r} is rendered",
            )
        for container, cpath, init in pod.containers():
            self.check_container(obj, pod, container, cpath, init, set(volumes) | claim_names)

    def check_container(
        self,
        obj: Mapping[str, Any],
        pod: _Pod,
        container: Mapping[str, Any],
        path: str,
        init: bool,
        volume_names: set[Any],
    ) -> None:
        kind = obj.get("kind")
        self.dns_label(container.get("name"), f"{path}.name", "container name")
        self.enum(container.get("imagePullPolicy"), "imagePullPolicy", f"{path}.imagePullPolicy")
        port_names = set()
        for i, port in enumerate(_list(container.get("ports"))):
            self.enum(_get(port, "protocol"), "protocol", f"{path}.ports[{i}].protocol")
            if _get(port, "name") is not None:
                port_names.add(port["name"])
                self.port_name(port["name"], f"{path}.ports[{i}].name")
        self.check_image(container.get("image"), f"{path}.image")
        self.check_resources(container, path, pod)
        # probes
        if kind in _LONG_RUNNING and not init:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if not isinstance(container.get(probe), Mapping):
                    self.add(f"{path}.{probe}", "probes", f"container has no {probe}")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            for action in ("httpGet", "tcpSocket", "grpc"):
                port = _get(container, probe, action, "port")
                if isinstance(port, str) and port not in port_names:
                    self.add(
                        f"{path}.{probe}.{action}.port",
                        "reference",
                        f"the container has no port named {port!r}",
                    )
        # security
        pod_sc = _map(pod.spec.get("securityContext"))
        sc = _map(container.get("securityContext"))
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if non_root is not True:
            self.add(
                f"{path}.securityContext.runAsNonRoot",
                "non-root",
                "runAsNonRoot is not true (in the container or the pod)",
            )
        if uid == 0:
            self.add(f"{path}.securityContext.runAsUser", "non-root", "runs as uid 0 (root)")
        if sc.get("allowPrivilegeEscalation") is not False:
            self.add(
                f"{path}.securityContext.allowPrivilegeEscalation",
                "security-context",
                "allowPrivilegeEscalation must be false",
            )
        if sc.get("privileged") is True:
            self.add(
                f"{path}.securityContext.privileged",
                "security-context",
                "privileged must not be true",
            )
        if sc.get("readOnlyRootFilesystem") is not True:
            self.add(
                f"{path}.securityContext.readOnlyRootFilesystem",
                "security-context",
                "readOnlyRootFilesystem must be true",
            )
        drop = _list(_get(sc, "capabilities", "drop"))
        if "ALL" not in drop:
            self.add(
                f"{path}.securityContext.capabilities.drop",
                "security-context",
                "capabilities must drop ALL",
            )
        if _list(_get(sc, "capabilities", "add")):
            self.add(
                f"{path}.securityContext.capabilities.add",
                "security-context",
                "no capability may be added",
            )
        self.enum(
            _get(sc, "seccompProfile", "type"),
            "seccomp",
            f"{path}.securityContext.seccompProfile.type",
        )
        seccomp = _get(sc, "seccompProfile", "type") or _get(pod_sc, "seccompProfile", "type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            self.add(
                f"{path}.securityContext.seccompProfile",
                "security-context",
                f"seccomp profile is {seccomp!r}; expected RuntimeDefault",
            )
        mounts = _list(container.get("volumeMounts"))
        for i, mount in enumerate(mounts):
            if _get(mount, "name") not in volume_names:
                self.add(
                    f"{path}.volumeMounts[{i}].name",
                    "reference",
                    f"the pod has no volume {_get(mount, 'name')!r}",
                )
        if sc.get("readOnlyRootFilesystem") is True and not any(
            _get(m, "mountPath") == "/tmp" for m in mounts
        ):
            self.add(
                f"{path}.volumeMounts",
                "writable-tmp",
                "read-only root filesystem but nothing is mounted at /tmp",
            )
        # secrets
        for i, env in enumerate(_list(container.get("env"))):
            name = str(_get(env, "name") or "")
            if "value" in _map(env) and _SECRET_NAME.search(name):
                self.add(
                    f"{path}.env[{i}].value",
                    "no-secret-values",
                    f"{name} looks like a secret: use valueFrom.secretKeyRef",
                )
        for i, src in enumerate(_list(container.get("envFrom"))):
            cm = _get(src, "configMapRef", "name")
            if cm is not None and self.named("ConfigMap", cm) is None:
                self.add(
                    f"{path}.envFrom[{i}].configMapRef.name",
                    "reference",
                    f"no ConfigMap {cm!r} is rendered",
                )

    def check_resources(self, container: Mapping[str, Any], path: str, pod: _Pod) -> None:
        res = _map(container.get("resources"))
        values: dict[tuple[str, str], int | None] = {}
        for section in ("requests", "limits"):
            block = _map(res.get(section))
            for resource in ("cpu", "memory"):
                if resource not in block:
                    self.add(
                        f"{path}.resources.{section}.{resource}",
                        "resources",
                        f"no {resource} {section[:-1]}",
                    )
            for resource, quantity in block.items():
                qpath = f"{path}.resources.{section}.{resource}"
                if resource not in _ENUMS["resourceName"] and not resource.startswith("hugepages-"):
                    self.enum(resource, "resourceName", qpath)
                    continue
                measure = cpu_millicores if resource == "cpu" else memory_bytes
                amount = measure(quantity)
                if amount is None or amount <= 0:
                    self.add(qpath, "quantity", f"{quantity!r} is not a valid {resource} quantity")
                values[(section, resource)] = amount
        for resource in ("cpu", "memory"):
            req, lim = values.get(("requests", resource)), values.get(("limits", resource))
            if req is not None and lim is not None and req > lim:
                self.add(
                    f"{path}.resources.requests.{resource}",
                    "min-max",
                    f"request {_get(res, 'requests', resource)} is above the limit "
                    f"{_get(res, 'limits', resource)}",
                )
        component = pod.labels.get("app.kubernetes.io/component")
        if component in GUARANTEED_COMPONENTS:
            for resource in ("cpu", "memory"):
                req, lim = values.get(("requests", resource)), values.get(("limits", resource))
                if req != lim:
                    self.add(
                        f"{path}.resources",
                        "qos",
                        f"{component} must be QoS Guaranteed: {resource} request "
                        f"{_get(res, 'requests', resource)} differs from limit "
                        f"{_get(res, 'limits', resource)}",
                    )

    def check_image(self, image: Any, path: str) -> None:
        if not isinstance(image, str) or not image:
            self.add(path, "image-pinned", "no image")
            return
        name, _, digest = image.partition("@")
        last = name.rsplit("/", 1)[-1]
        tag = last.partition(":")[2] if ":" in last else None
        if digest:
            if not re.match(r"^sha256:[0-9a-f]{64}$", digest):
                self.add(path, "image-pinned", f"{image!r}: the digest is not sha256:<64 hex>")
            return
        if tag is None:
            self.add(path, "image-pinned", f"{image!r} has no tag (it means 'latest')")
        elif tag == "latest" and self.require_pinned:
            self.add(path, "image-pinned", f"{image!r} uses 'latest': pin a release tag")

    # -- workloads -------------------------------------------------------------------------
    def check_workload_selector(self, obj: Mapping[str, Any], pod: _Pod | None) -> None:
        selector = _get(obj, "spec", "selector")
        if not _map(selector).get("matchLabels") and not _map(selector).get("matchExpressions"):
            self.add("spec.selector", "selector-match", "the selector is empty")
            return
        self.check_selector_syntax(selector, "spec.selector")
        if pod is not None and not label_selector_matches(selector, pod.labels):
            self.add(
                "spec.selector",
                "selector-match",
                "the selector does not match the pod template's labels",
            )

    def check_deployment(self, obj: Mapping[str, Any], hpa_targets: set[tuple[str, str]]) -> None:
        name = str(_get(obj, "metadata", "name"))
        self.enum(_get(obj, "spec", "strategy", "type"), "deploymentStrategy", "spec.strategy.type")
        if ("Deployment", name) in hpa_targets and "replicas" in _map(obj.get("spec")):
            self.add(
                "spec.replicas",
                "hpa-replicas",
                "managed by an HPA: remove spec.replicas, or every apply resets the "
                "replica count the HPA chose",
            )

    def check_statefulset(self, obj: Mapping[str, Any]) -> None:
        spec = _map(obj.get("spec"))
        self.enum(
            spec.get("podManagementPolicy"), "podManagementPolicy", "spec.podManagementPolicy"
        )
        self.enum(
            _get(spec, "updateStrategy", "type"), "statefulSetStrategy", "spec.updateStrategy.type"
        )
        service = spec.get("serviceName")
        if service:
            target = self.named("Service", service)
            if target is None:
                self.add("spec.serviceName", "reference", f"no Service {service!r} is rendered")
            elif _get(target, "spec", "clusterIP") != "None":
                self.add(
                    "spec.serviceName",
                    "reference",
                    f"Service {service!r} is not headless (clusterIP: None)",
                )
        for i, claim in enumerate(_list(spec.get("volumeClaimTemplates"))):
            cpath = f"spec.volumeClaimTemplates[{i}]"
            for j, mode in enumerate(_list(_get(claim, "spec", "accessModes"))):
                self.enum(mode, "accessMode", f"{cpath}.spec.accessModes[{j}]")
            storage = _get(claim, "spec", "resources", "requests", "storage")
            if storage is None:
                self.add(
                    f"{cpath}.spec.resources.requests.storage",
                    "resources",
                    "the claim requests no storage",
                )
            else:
                self.memory_quantity(storage, f"{cpath}.spec.resources.requests.storage")

    # -- services and selectors ------------------------------------------------------------
    def check_service(
        self, obj: Mapping[str, Any], workload_pods: list[tuple[Mapping[str, Any], _Pod]]
    ) -> None:
        spec = _map(obj.get("spec"))
        self.enum(spec.get("type"), "serviceType", "spec.type")
        selector = _map(spec.get("selector"))
        selected = [
            pod
            for _, pod in workload_pods
            if selector and all(pod.labels.get(k) == v for k, v in selector.items())
        ]
        if selector and not selected:
            self.add(
                "spec.selector",
                "selector-match",
                "the selector matches no rendered workload's pod labels",
            )
        container_ports = set()
        for pod in selected:
            for container, _, _ in pod.containers():
                container_ports |= {p.get("name") for p in _list(container.get("ports"))}
        for i, port in enumerate(_list(spec.get("ports"))):
            self.enum(_get(port, "protocol"), "protocol", f"spec.ports[{i}].protocol")
            if _get(port, "name") is not None:
                self.port_name(port["name"], f"spec.ports[{i}].name")
            target = _get(port, "targetPort")
            if isinstance(target, str) and selected and target not in container_ports:
                self.add(
                    f"spec.ports[{i}].targetPort",
                    "reference",
                    f"no selected container has a port named {target!r}",
                )

    def check_selects_pods(self, obj: Mapping[str, Any], selector: Any, path: str) -> None:
        selector = _map(selector)
        self.check_selector_syntax(selector, path)
        if not selector:
            return
        if not any(label_selector_matches(selector, pod.labels) for _, pod in self.pods()):
            self.add(path, "selector-match", "the selector matches no rendered workload's pods")

    def check_selector_syntax(self, selector: Any, path: str) -> None:
        for i, expr in enumerate(_list(_get(selector, "matchExpressions"))):
            self.enum(
                _get(expr, "operator"), "selectorOperator", f"{path}.matchExpressions[{i}].operator"
            )

    def check_network_policy(self, obj: Mapping[str, Any]) -> None:
        spec = _map(obj.get("spec"))
        for i, ptype in enumerate(_list(spec.get("policyTypes"))):
            self.enum(ptype, "policyType", f"spec.policyTypes[{i}]")
        self.check_selects_pods(obj, spec.get("podSelector"), "spec.podSelector")
        for i, rule in enumerate(_list(spec.get("ingress"))):
            for j, peer in enumerate(_list(_get(rule, "from"))):
                if _get(peer, "podSelector") and not _get(peer, "namespaceSelector"):
                    self.check_selects_pods(
                        obj, peer["podSelector"], f"spec.ingress[{i}].from[{j}].podSelector"
                    )

    def check_hpa(self, obj: Mapping[str, Any]) -> None:
        spec = _map(obj.get("spec"))
        ref = _map(spec.get("scaleTargetRef"))
        if self.named(str(ref.get("kind")), str(ref.get("name"))) is None:
            self.add(
                "spec.scaleTargetRef",
                "reference",
                f"no {ref.get('kind')} {ref.get('name')!r} is rendered",
            )
        lo, hi = spec.get("minReplicas", 1), spec.get("maxReplicas")
        if isinstance(lo, int) and lo < 1:
            self.add("spec.minReplicas", "min-max", f"minReplicas {lo} is below 1")
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            self.add("spec.minReplicas", "min-max", f"minReplicas {lo} is above maxReplicas {hi}")
        for i, metric in enumerate(_list(spec.get("metrics"))):
            mpath = f"spec.metrics[{i}]"
            mtype = _get(metric, "type")
            self.enum(mtype, "metricType", f"{mpath}.type")
            body_key = {
                "Resource": "resource",
                "Pods": "pods",
                "Object": "object",
                "External": "external",
                "ContainerResource": "containerResource",
            }.get(str(mtype))
            if body_key is None:
                continue
            body = _map(_get(metric, body_key))
            if body_key in ("resource", "containerResource"):
                self.enum(body.get("name"), "hpaResource", f"{mpath}.{body_key}.name")
            target = _map(body.get("target"))
            self.enum(target.get("type"), "targetType", f"{mpath}.{body_key}.target.type")
            for field in ("averageValue", "value"):
                if field in target:
                    self.quantity(target[field], f"{mpath}.{body_key}.target.{field}")
            util = target.get("averageUtilization")
            if util is not None and (not isinstance(util, int) or util <= 0):
                self.add(
                    f"{mpath}.{body_key}.target.averageUtilization",
                    "quantity",
                    f"{util!r} is not a percentage above 0",
                )
        for direction in ("scaleUp", "scaleDown"):
            rules = _map(_get(spec, "behavior", direction))
            bpath = f"spec.behavior.{direction}"
            self.enum(rules.get("selectPolicy"), "selectPolicy", f"{bpath}.selectPolicy")
            for i, policy in enumerate(_list(rules.get("policies"))):
                self.enum(_get(policy, "type"), "scalingPolicyType", f"{bpath}.policies[{i}].type")

    def check_public_path(
        self, path: Mapping[str, Any], service: Mapping[str, Any], ppath: str
    ) -> None:
        """An Ingress path that reaches an operator path of the API (``/`` reaches them all)."""
        if _get(service, "spec", "selector", "app.kubernetes.io/component") != "api":
            return
        value = str(_get(path, "path") or "/")
        prefix = value.rstrip("/")
        exact = _get(path, "pathType") == "Exact"
        for target in OPERATOR_PATHS:
            if target == prefix or (not exact and target.startswith(prefix + "/")):
                self.add(
                    f"{ppath}.path",
                    "ingress-public-paths",
                    f"{value!r} publishes {target} of the API: route only its public paths",
                )
                return

    def check_ingress(self, obj: Mapping[str, Any]) -> None:
        for i, tls in enumerate(_list(_get(obj, "spec", "tls"))):
            for j, host in enumerate(_list(_get(tls, "hosts"))):
                self.host(host, f"spec.tls[{i}].hosts[{j}]")
        for i, rule in enumerate(_list(_get(obj, "spec", "rules"))):
            if _get(rule, "host") is not None:
                self.host(rule["host"], f"spec.rules[{i}].host")
            for j, p in enumerate(_list(_get(rule, "http", "paths"))):
                ppath = f"spec.rules[{i}].http.paths[{j}]"
                self.enum(_get(p, "pathType"), "pathType", f"{ppath}.pathType")
                name = _get(p, "backend", "service", "name")
                if name is None:
                    continue
                service = self.named("Service", name)
                if service is not None:
                    self.check_public_path(p, service, ppath)
                if service is None:
                    self.add(
                        f"{ppath}.backend.service.name",
                        "reference",
                        f"no Service {name!r} is rendered",
                    )
                    continue
                port = _map(_get(p, "backend", "service", "port"))
                ports = _list(_get(service, "spec", "ports"))
                if "name" in port and port["name"] not in {_get(x, "name") for x in ports}:
                    self.add(
                        f"{ppath}.backend.service.port.name",
                        "reference",
                        f"Service {name!r} has no port named {port['name']!r}",
                    )
                if "number" in port and port["number"] not in {_get(x, "port") for x in ports}:
                    self.add(
                        f"{ppath}.backend.service.port.number",
                        "reference",
                        f"Service {name!r} has no port {port['number']}",
                    )

    def check_service_monitor(self, obj: Mapping[str, Any]) -> None:
        selector = _map(_get(obj, "spec", "selector"))
        self.check_selector_syntax(selector, "spec.selector")
        services = [
            s
            for s in self.of_kind("Service")
            if label_selector_matches(selector, _map(_get(s, "metadata", "labels")))
        ]
        if not services:
            self.add("spec.selector", "selector-match", "the selector matches no rendered Service")
            return
        port_names = {_get(p, "name") for s in services for p in _list(_get(s, "spec", "ports"))}
        for i, endpoint in enumerate(_list(_get(obj, "spec", "endpoints"))):
            port = _get(endpoint, "port")
            if port is not None and port not in port_names:
                self.add(
                    f"spec.endpoints[{i}].port",
                    "reference",
                    f"no selected Service has a port named {port!r}",
                )

    def check_prometheus_rule(self, obj: Mapping[str, Any]) -> None:
        for i, group in enumerate(_list(_get(obj, "spec", "groups"))):
            for j, rule in enumerate(_list(_get(group, "rules"))):
                severity = _get(rule, "labels", "severity")
                if _get(rule, "alert") is not None:
                    if severity is None:
                        self.add(
                            f"spec.groups[{i}].rules[{j}].labels",
                            "enum",
                            "an alert needs a severity label",
                        )
                    self.enum(severity, "severity", f"spec.groups[{i}].rules[{j}].labels.severity")

    # -- small checks ----------------------------------------------------------------------
    def dns_label(self, value: Any, path: str, what: str) -> None:
        if not isinstance(value, str) or not _DNS_LABEL.match(value) or len(value) > 63:
            self.add(path, "dns1123-name", f"{what} {value!r} is not a DNS-1123 label")

    def host(self, value: Any, path: str) -> None:
        name = value[2:] if isinstance(value, str) and value.startswith("*.") else value
        if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
            self.add(
                path,
                "dns1123-name",
                f"host {value!r} is not a lower-case DNS name (a wildcard only as '*.')",
            )

    def port_name(self, value: Any, path: str) -> None:
        ok = (
            isinstance(value, str)
            and len(value) <= 15
            and bool(_DNS_LABEL.match(value))
            and "--" not in value
            and any(c.isalpha() for c in value)
        )
        if not ok:
            self.add(
                path,
                "dns1123-name",
                f"port name {value!r} is not valid (at most 15 of a-z 0-9 '-', a letter)",
            )

    def quantity(self, value: Any, path: str) -> None:
        parsed = parse_quantity(value)
        if parsed is None or parsed.amount <= 0:
            self.add(path, "quantity", f"{value!r} is not a quantity above zero")

    def memory_quantity(self, value: Any, path: str) -> None:
        amount = memory_bytes(value)
        if amount is None or amount <= 0:
            self.add(path, "quantity", f"{value!r} is not a valid size (like 5Gi)")
