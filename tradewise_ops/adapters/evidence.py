"""Where load results are kept: report files on disk and release records in the cluster.

``read_report_file`` reads a ``report.json`` (``load-test``/``performance-test --report DIR``);
``read_release_load`` reads the ``verification`` load result of one release record through the
Kubernetes gateway. Both return the document as given; ``core.compare.read_run`` checks it.
Anything that is not there or not readable is a ``BadInputError`` (exit 2) in one sentence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from tradewise_ops.core import release as rel
from tradewise_ops.errors import BadInputError


class SecretReader(Protocol):
    """What ``read_release_load`` needs of ``adapters.kube.KubeGateway``."""

    def find(
        self, kind: str, name: str, *, namespace: str | None = None
    ) -> dict[str, Any] | None: ...


def read_report_file(path: str | Path) -> Any:
    """The JSON document in ``path``; a directory means its ``report.json``."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such report file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise BadInputError(f"{path}: cannot read the report ({reason})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadInputError(f"{path} is not a tradewise load report (not JSON: {exc})") from None


def read_release_load(
    gateway: SecretReader, environment: str, namespace: str, revision: int
) -> dict[str, Any]:
    """The ``verification`` load result of revision ``revision`` of ``environment``.

    One GET of the record Secret ``tradewise-release.v{N}``. A missing record, a record of
    another environment and a record without a ``verification`` are each a ``BadInputError``.
    """
    where = f"{environment}@{revision}"
    secret = gateway.find("Secret", rel.secret_name(revision), namespace=namespace)
    if secret is None or secret.get("type") != rel.SECRET_TYPE:
        raise BadInputError(
            f"{where}: {environment} has no release revision {revision} in namespace "
            f"{namespace} (see `tradewise history {environment}`)"
        )
    release = rel.from_secret(secret)
    if release.environment != environment:
        raise BadInputError(
            f"{where}: revision {revision} in namespace {namespace} is a release of "
            f"{release.environment}, not of {environment}"
        )
    verification = release.verification or {}
    if "total" not in verification and not isinstance(verification.get("load"), dict):
        why = f" (verification skipped: {verification.get('reason')})" if verification else ""
        raise BadInputError(
            f"{where}: revision {revision} of {environment} carries no verification load "
            f"result{why}"
        )
    return dict(verification)
