"""One failing case per validation rule: a bad object makes exactly that rule fire."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tradewise_ops.core.config import load_config
from tradewise_ops.core.policy import RULES, label_selector_matches
from tradewise_ops.core.render import render_environment
from tradewise_ops.core.validate import (
    Finding,
    check_version,
    schema_findings,
    supported_versions,
    validate,
)
from tradewise_ops.errors import BadInputError
from tradewise_ops.resources import data_path

Objects = list[dict[str, Any]]


@pytest.fixture(scope="module")
def good() -> Objects:
    config = load_config(data_path("tradewise.yaml"), environ={})
    return render_environment(config, "prod", tag="v1.2.3")


def by(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def api(objects: Objects) -> dict[str, Any]:
    return by(objects, "Deployment", "tradewise-api-deployment")


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def first(obj: dict[str, Any]) -> dict[str, Any]:
    return pod(obj)["containers"][0]


def _schema(o: Objects) -> None:
    first(api(o))["bogus"] = 1


def _schema_missing(o: Objects) -> None:
    widget = copy.deepcopy(by(o, "ConfigMap", "tradewise-config"))
    widget.update(apiVersion="example.com/v1", kind="Widget")
    o.append(widget)


def _labels(o: Objects) -> None:
    del by(o, "ConfigMap", "tradewise-config")["metadata"]["labels"]["tradewise.io/environment"]


def _namespace(o: Objects) -> None:
    by(o, "ConfigMap", "tradewise-config")["metadata"]["namespace"] = "elsewhere"


def _dns(o: Objects) -> None:
    by(o, "PrometheusRule", "tradewise-alerts")["metadata"]["name"] = "Tradewise_Alerts"


def _enum(o: Objects) -> None:
    first(api(o))["imagePullPolicy"] = "Sometimes"


def _quantity(o: Objects) -> None:
    first(api(o))["resources"]["requests"]["memory"] = "512 MB"


def _min_max(o: Objects) -> None:
    by(o, "HorizontalPodAutoscaler", "tradewise-api-hpa")["spec"]["minReplicas"] = 30


def _selector(o: Objects) -> None:
    pdb = by(o, "PodDisruptionBudget", "tradewise-api-pdb")
    pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "apii"


def _reference(o: Objects) -> None:
    ingress = by(o, "Ingress", "tradewise-ingress")
    ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "nope"


def _probes(o: Objects) -> None:
    del first(api(o))["livenessProbe"]


def _resources(o: Objects) -> None:
    del first(by(o, "Deployment", "tradewise-worker-deployment"))["resources"]["limits"]["cpu"]


def _non_root(o: Objects) -> None:
    first(api(o))["securityContext"]["runAsNonRoot"] = False


def _security(o: Objects) -> None:
    first(api(o))["securityContext"]["allowPrivilegeEscalation"] = True


def _tmp(o: Objects) -> None:
    redis = first(by(o, "StatefulSet", "redis"))
    redis["volumeMounts"] = [m for m in redis["volumeMounts"] if m["mountPath"] != "/tmp"]


def _hpa_replicas(o: Objects) -> None:
    api(o)["spec"]["replicas"] = 3


def _image(o: Objects) -> None:
    first(by(o, "Deployment", "tradewise-worker-deployment"))["image"] = "worker:latest"


def _qos(o: Objects) -> None:
    first(by(o, "StatefulSet", "postgres"))["resources"]["limits"]["memory"] = "2Gi"


def _secret(o: Objects) -> None:
    first(api(o))["env"].append({"name": "DATABASE_PASSWORD", "value": "hunter2"})


def _ingress_public(o: Objects) -> None:
    path = by(o, "Ingress", "tradewise-ingress")["spec"]["rules"][0]["http"]["paths"][0]
    path.update(path="/", pathType="Prefix")


def _spot(o: Objects) -> None:  # issue 16: a StatefulSet tolerating GKE's spot taint
    by(o, "StatefulSet", "redis")["spec"]["template"]["spec"]["tolerations"] = [
        {"key": "cloud.google.com/gke-spot", "operator": "Exists", "effect": "NoSchedule"}
    ]


CASES: dict[str, tuple[Callable[[Objects], None], str]] = {
    "schema": (_schema, "spec.template.spec.containers[0]"),
    "schema-missing": (_schema_missing, "apiVersion"),
    "labels": (_labels, "metadata.labels"),
    "namespace": (_namespace, "metadata.namespace"),
    "dns1123-name": (_dns, "metadata.name"),
    "enum": (_enum, "spec.template.spec.containers[0].imagePullPolicy"),
    "quantity": (_quantity, "spec.template.spec.containers[0].resources.requests.memory"),
    "min-max": (_min_max, "spec.minReplicas"),
    "selector-match": (_selector, "spec.selector"),
    "reference": (_reference, "spec.rules[0].http.paths[0].backend.service.name"),
    "probes": (_probes, "spec.template.spec.containers[0].livenessProbe"),
    "resources": (_resources, "spec.template.spec.containers[0].resources.limits.cpu"),
    "non-root": (_non_root, "spec.template.spec.containers[0].securityContext.runAsNonRoot"),
    "security-context": (
        _security,
        "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation",
    ),
    "writable-tmp": (_tmp, "spec.template.spec.containers[0].volumeMounts"),
    "hpa-replicas": (_hpa_replicas, "spec.replicas"),
    "image-pinned": (_image, "spec.template.spec.containers[0].image"),
    "qos": (_qos, "spec.template.spec.containers[0].resources"),
    "no-secret-values": (_secret, "spec.template.spec.containers[0].env[2].value"),
    "ingress-public-paths": (_ingress_public, "spec.rules[0].http.paths[0].path"),
    "spot-placement": (_spot, "spec.template.spec"),
}


def test_every_rule_has_a_failing_case() -> None:
    assert set(CASES) == set(RULES)


def test_the_rendered_environment_is_clean(good: Objects) -> None:
    assert validate(good, "1.37") == []


@pytest.mark.parametrize("rule", sorted(CASES))
def test_a_bad_object_fires_exactly_its_rule(good: Objects, rule: str) -> None:
    objects = copy.deepcopy(good)
    mutate, path = CASES[rule]
    mutate(objects)
    findings = validate(objects, "1.37")
    assert {f.rule for f in findings} == {rule}, [str(f) for f in findings]
    assert path in {f.path for f in findings}, [str(f) for f in findings]


@pytest.mark.parametrize(
    ("path", "path_type", "flagged"),
    [
        ("/", "Prefix", True),
        ("/", "ImplementationSpecific", True),
        ("/metrics", "Exact", True),
        ("/metrics", "Prefix", True),
        ("/api", "Prefix", True),  # reaches /api/performance/stats
        ("/api/performance/", "Prefix", True),
        ("/api/performance/stats", "Exact", True),
        ("/", "Exact", False),  # only "/" itself
        ("/api", "Exact", False),
        ("/met", "Prefix", False),  # prefixes match whole path elements
        ("/api/health", "Prefix", False),
        ("/api/stock-analysis", "Exact", False),
    ],
)
def test_ingress_paths_that_publish_operator_endpoints(
    good: Objects, path: str, path_type: str, flagged: bool
) -> None:
    objects = copy.deepcopy(good)
    ingress = by(objects, "Ingress", "tradewise-ingress")
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    paths.append({**copy.deepcopy(paths[0]), "path": path, "pathType": path_type})
    findings = validate(objects, "1.37")
    assert [f.rule for f in findings] == (["ingress-public-paths"] if flagged else [])
    # the same path to the maintenance page is fine: it is not the API
    paths[-1]["backend"]["service"]["name"] = "tradewise-maintenance-service"
    assert validate(objects, "1.37") == []


def test_the_rendered_ingress_publishes_only_public_api_paths(good: Objects) -> None:
    ingress = by(good, "Ingress", "tradewise-ingress")
    routed = {
        (p["path"], p["pathType"], p["backend"]["service"]["name"])
        for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert routed == {
        ("/api/stock-analysis", "Exact", "tradewise-api-service"),
        ("/api/health", "Exact", "tradewise-api-service"),
        ("/api/openapi.json", "Exact", "tradewise-api-service"),
    }


def test_latest_is_allowed_where_pinning_is_not_required(good: Objects) -> None:
    objects = copy.deepcopy(good)
    first(api(objects))["image"] = "registry.example.com/tradewise/tradewise-ai:latest"
    assert validate(objects, "1.37", require_pinned=False) == []
    first(api(objects))["image"] = "registry.example.com/tradewise/tradewise-ai"
    (finding,) = validate(objects, "1.37", require_pinned=False)
    assert finding.rule == "image-pinned"
    assert "has no tag" in finding.message


def test_finding_format_names_object_path_and_rule() -> None:
    finding = Finding("Deployment", "web", "spec.replicas", "hpa-replicas", "remove it")
    assert str(finding) == "Deployment/web spec.replicas: remove it [hpa-replicas]"
    assert finding.to_dict() == {
        "kind": "Deployment",
        "name": "web",
        "path": "spec.replicas",
        "rule": "hpa-replicas",
        "message": "remove it",
    }


def test_crd_schemas_refuse_unknown_fields_and_bad_durations(good: Objects) -> None:
    monitor = copy.deepcopy(by(good, "ServiceMonitor", "tradewise-api"))
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    monitor["spec"]["endpoint"] = []
    rule = copy.deepcopy(by(good, "PrometheusRule", "tradewise-alerts"))
    rule["spec"]["groups"][0]["rules"][0]["record"] = "both_alert_and_record"
    findings = schema_findings([monitor, rule], "1.37")
    shown = [str(f) for f in findings]
    assert {(f.kind, f.path) for f in findings} == {
        ("ServiceMonitor", "spec"),
        ("ServiceMonitor", "spec.endpoints[0].interval"),
        ("PrometheusRule", "spec.groups[0].rules[0]"),
    }, shown
    assert any("'endpoint' was unexpected" in s for s in shown)


def test_schema_version_matters() -> None:
    # HPA autoscaling/v2beta2 exists in no supported version: a kind/apiVersion with no schema
    hpa = {"apiVersion": "autoscaling/v2beta2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "x"}}  # fmt: skip
    (finding,) = schema_findings([hpa], "1.27")
    assert finding.rule == "schema-missing"


@pytest.mark.parametrize("given", ["1.27", "v1.30", "1.37.2"])
def test_supported_versions(given: str) -> None:
    assert check_version(given) in supported_versions()
    assert supported_versions()[0] == "1.27"


@pytest.mark.parametrize("given", ["1.26", "1.99", "2.0", "latest"])
def test_unsupported_versions_name_the_range(given: str) -> None:
    with pytest.raises(BadInputError, match=r"use one of 1\.27 to 1\.\d+"):
        check_version(given)


def test_label_selectors() -> None:
    labels = {"app": "tradewise", "component": "api"}
    assert label_selector_matches({}, labels)
    assert label_selector_matches({"matchLabels": {"app": "tradewise"}}, labels)
    assert not label_selector_matches({"matchLabels": {"app": "other"}}, labels)
    expr = {"key": "component", "operator": "In", "values": ["api", "worker"]}
    assert label_selector_matches({"matchExpressions": [expr]}, labels)
    assert not label_selector_matches({"matchExpressions": [{**expr, "operator": "NotIn"}]}, labels)
    assert not label_selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, labels
    )
    assert label_selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, labels
    )


@pytest.mark.parametrize("version", ["1.27", "1.37"])
def test_schema_check_agrees_with_kubernetes_validate(good: Objects, version: str) -> None:
    """Our use of kubernetes-validate's strict schemas gives its own verdict, object by object."""
    import kubernetes_validate

    crds = ("monitoring.coreos.com/", "autoscaling.k8s.io/")  # CRDs: schemas of our own
    builtin = [o for o in good if not o["apiVersion"].startswith(crds)]
    assert len(builtin) >= 30
    for obj in builtin:
        kubernetes_validate.validate(obj, version, strict=True)  # raises on an invalid object
    assert schema_findings(builtin, version) == []
    bad = copy.deepcopy(api(good))
    first(bad)["bogus"] = 1
    first(bad)["ports"][0]["containerPort"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, version, strict=True)
    assert {f.path for f in schema_findings([bad], version)} == {
        "spec.template.spec.containers[0]",
        "spec.template.spec.containers[0].ports[0].containerPort",
    }


def test_the_crd_schemas_are_valid_json_schemas() -> None:
    import json
    from pathlib import Path

    from jsonschema import Draft202012Validator

    import tradewise_ops.core.schemas as schemas

    files = sorted(Path(schemas.__file__).parent.glob("*.json"))
    assert [f.name for f in files] == [
        "prometheusrule-monitoring-v1.json",
        "servicemonitor-monitoring-v1.json",
        "verticalpodautoscaler-autoscaling-v1.json",  # issue 16
    ]
    for path in files:
        Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))
