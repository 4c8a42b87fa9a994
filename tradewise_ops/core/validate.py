"""Validation of rendered objects: strict OpenAPI schemas, CRD schemas, and the project's policy.

Built-in kinds are checked against the official Kubernetes schemas that ``kubernetes-validate``
ships (its strict variant: unknown fields are errors) for one Kubernetes version; the custom
resources tradewise renders (ServiceMonitor, PrometheusRule) against the schemas in
``tradewise_ops/core/schemas``. A kind with no schema is a finding, never silently passed. The
policy checks in ``tradewise_ops.core.policy`` add what schemas cannot see. Both report
``Finding``s (``tradewise_ops.core.findings``; importable from here too).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from tradewise_ops.core.caches import Caches, ResultCache
from tradewise_ops.core.findings import Finding
from tradewise_ops.core.policy import check_policy
from tradewise_ops.errors import BadInputError, TradewiseError

# The oldest Kubernetes version tradewise supports: CronJob.spec.timeZone is GA from 1.27.
OLDEST_SUPPORTED = (1, 27)
_VERSION = re.compile(r"^v?1\.(\d+)(?:\.\d+)?$")
_SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"
_MAX_MESSAGE = 240


def validate(
    objects: Sequence[Mapping[str, Any]],
    k8s_version: str,
    require_pinned: bool = True,
    caches: Caches | None = None,
) -> list[Finding]:
    """Every finding of schema and policy checks on ``objects`` for Kubernetes ``k8s_version``.

    ``require_pinned`` makes an image tag ``latest`` a finding (untagged images always are).
    ``caches`` may keep schema results between runs (None: every object is checked).
    Raises ``BadInputError`` when ``k8s_version`` is not supported.
    """
    version = check_version(k8s_version)
    results = caches.schema_results(version) if caches is not None else None
    findings = schema_findings(objects, version, results)
    findings.extend(check_policy(objects, require_pinned=require_pinned))
    return findings


def supported_versions() -> list[str]:
    """The Kubernetes versions (``1.27`` ...) there are schemas for, oldest first."""
    return [f"1.{minor}" for minor in _shipped_minors() if (1, minor) >= OLDEST_SUPPORTED]


def check_version(version: str) -> str:
    """``version`` as ``1.NN`` when supported; else ``BadInputError`` naming the range."""
    supported = supported_versions()
    span = f"{supported[0]} to {supported[-1]}" if supported else "none (schemas missing)"
    m = _VERSION.match(str(version).strip())
    normal = f"1.{int(m.group(1))}" if m else None
    if normal is None or normal not in supported:
        raise BadInputError(
            f"Kubernetes version {version!r} is not supported: use one of {span} "
            "(like 1.30; the schemas of these versions ship with kubernetes-validate)"
        )
    return normal


def newest_version() -> str:
    """The newest supported Kubernetes version."""
    return supported_versions()[-1]


def schema_findings(
    objects: Iterable[Mapping[str, Any]], version: str, results: ResultCache | None = None
) -> list[Finding]:
    """Findings of the strict schema check of each object (rules ``schema``, ``schema-missing``).

    With a result cache (``results``), an object checked before against the same schema files is
    not checked again: its findings come from the cache. Importing jsonschema and checking ~35
    objects is most of the time ``render`` takes; the results are a pure function of the object
    and the schema files, so they can be kept.
    """
    findings: list[Finding] = []
    for obj in objects:
        shape = schema_shape(obj)
        key = results.key(shape) if results else ""
        cached = results.get(key) if results else None
        found = cached if cached is not None else _check_schema(shape, version)
        if results is not None and cached is None:
            results.put(key, found)
        findings.extend(found)
    if results is not None:
        results.save()
    return findings


_IMAGE_PLACEHOLDER = "registry.invalid/image:tag"
_VERSION_LABEL = "app.kubernetes.io/version"


def schema_shape(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """``obj`` as the schema check sees it: every string ``image`` field (a container's image)
    and the ``app.kubernetes.io/version`` label's value replaced by placeholders.

    The schemas require only that an image or a label value is a string, so a new tag or digest
    cannot change the schema findings; with them left out of the cache key, a deploy of a new tag
    reuses the results of the last one. Whether an image is pinned is policy (``image-pinned``),
    checked on the real object every time. A non-string value is kept, so its type error is still
    found.
    """

    def walk(value: Any) -> Any:
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, v in value.items():
                if k == "image" and isinstance(v, str):
                    out[k] = _IMAGE_PLACEHOLDER
                elif (
                    k == "labels"
                    and isinstance(v, Mapping)
                    and isinstance(v.get(_VERSION_LABEL), str)
                ):
                    out[k] = {**v, _VERSION_LABEL: "v0"}
                else:
                    out[k] = walk(v)
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(obj)


def schema_files(version: str) -> list[Path]:
    """Every schema file the findings for ``version`` depend on (a cache's identity)."""
    return [_schema_dir(version) / "_definitions.json", *sorted(_SCHEMAS_DIR.glob("*.json"))]


def _check_schema(obj: Mapping[str, Any], version: str) -> list[Finding]:
    kind = str(obj.get("kind", "?"))
    name = _name(obj)
    api_version = str(obj.get("apiVersion", ""))
    validator = _validator(version, kind, api_version)
    if validator is None:
        return [
            Finding(
                kind,
                name,
                "apiVersion",
                "schema-missing",
                f"no schema for {kind} {api_version} in Kubernetes {version} or in the "
                "CRD schemas tradewise carries: it cannot be checked",
            )
        ]
    errors = sorted(validator.iter_errors(obj), key=lambda e: _path(e.absolute_path))
    return [Finding(kind, name, _path(e.absolute_path), "schema", _message(e)) for e in errors]


# ------------------------------------------------------------------------------------------
# internals
# ------------------------------------------------------------------------------------------
def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name", "?")) if isinstance(meta, Mapping) else "?"


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "."


def _message(error: Any) -> str:
    message = str(error.message)
    if error.validator in ("oneOf", "anyOf") and error.context:
        best = sorted(error.context, key=lambda e: len(e.message))[0]
        message = f"{message.split(' is not valid under')[0]} is not valid: {best.message}"
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return message


def _kubernetes_schema_root() -> Path:
    spec = find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise TradewiseError(
            "the package kubernetes-validate is not installed: reinstall tradewise"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "kubernetes-json-schema"


@lru_cache(maxsize=1)
def _shipped_minors() -> tuple[int, ...]:
    minors = set()
    root = _kubernetes_schema_root()
    for child in root.iterdir() if root.is_dir() else ():
        m = re.match(r"^v1\.(\d+)\.\d+-local-strict$", child.name)
        if m:
            minors.add(int(m.group(1)))
    return tuple(sorted(minors))


def _schema_dir(version: str) -> Path:
    return _kubernetes_schema_root() / f"v{version}.0-local-strict"


def _schema_file_name(kind: str, api_version: str) -> str:
    # apps/v1 -> apps-v1; rbac.authorization.k8s.io/v1 -> rbac-v1; v1 -> v1
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{group_version}.json"


@lru_cache(maxsize=8)
def _registry(version: str) -> Any:
    from referencing import Registry, Resource

    with open(_schema_dir(version) / "_definitions.json", encoding="utf-8") as f:
        definitions = json.load(f)
    return Registry().with_resource(_DEFINITIONS_ID, Resource.from_contents(definitions))


@lru_cache(maxsize=256)
def _validator(version: str, kind: str, api_version: str) -> Any | None:
    if not kind or not api_version or "/" in kind:
        return None
    file_name = _schema_file_name(kind, api_version)
    crd = api_version.startswith(("monitoring.coreos.com/", "autoscaling.k8s.io/"))
    path = (_SCHEMAS_DIR if crd else _schema_dir(version)) / file_name
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema, registry=_registry(version))
