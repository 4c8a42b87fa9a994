"""Findings: what the schema check (``validate``) and the policy check (``policy``) report.

Its own module so that neither check imports the other for it: ``validate`` runs both, ``policy``
only builds findings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    """One problem in one object: which object, which field, which rule, what is wrong."""

    kind: str
    name: str
    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name} {self.path}: {self.message} [{self.rule}]"

    def to_dict(self) -> dict[str, str]:
        """The finding as a JSON-ready dict."""
        return asdict(self)
