"""What rendering and validation may keep between runs: compiled templates and schema results.

Either cache only saves time: the output is the same without it. ``render_environment`` and
``validate`` take a ``Caches`` object as a parameter (None: nothing is cached); the file-backed
one is ``tradewise_ops.adapters.render_cache.RenderCaches``, which the CLI hands to them.
Nothing here is process-wide: two renders with different caches do not see each other's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from tradewise_ops.core.findings import Finding

if TYPE_CHECKING:
    import jinja2


class ResultCache(Protocol):
    """Schema findings per object, for one Kubernetes version's schema files."""

    def key(self, obj: Mapping[str, Any]) -> str: ...

    def get(self, key: str) -> list[Finding] | None: ...

    def put(self, key: str, findings: list[Finding]) -> None: ...

    def save(self) -> None: ...


class Caches(Protocol):
    """The caches one render-and-validate may use."""

    @property
    def templates(self) -> jinja2.BytecodeCache | None:
        """Compiled templates (a Jinja bytecode cache), None for none."""
        ...

    def schema_results(self, version: str) -> ResultCache | None:
        """The schema result cache for Kubernetes ``version``, None for none."""
        ...
