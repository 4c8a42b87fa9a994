"""The render caches on disk: compiled templates and schema results, in the user's cache dir.

Either cache only saves time: the output is the same without it. ``core.render`` and
``core.validate`` take the cache objects; this module owns the files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradewise_ops.core.findings import Finding

if TYPE_CHECKING:
    import jinja2


def enable_caches() -> None:
    """Cache compiled templates and schema results in the user's cache dir.

    ``$XDG_CACHE_HOME/tradewise`` (default ``~/.cache/tradewise``); ``TRADEWISE_NO_CACHE=1``
    turns both off.
    """
    from tradewise_ops.core.render import use_template_cache

    if os.environ.get("TRADEWISE_NO_CACHE"):
        use_template_cache(None)
        use_result_cache_dir(None)
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    use_template_cache(template_bytecode_cache(Path(base) / "tradewise" / "templates"))
    use_result_cache_dir(Path(base) / "tradewise")


def use_result_cache_dir(directory: Path | None) -> None:
    """Keep schema results in ``directory`` (None: check every object every time).

    Unwritable or corrupt cache files are ignored.
    """
    from tradewise_ops.core.validate import use_result_cache

    if directory is None:
        use_result_cache(None)
    else:
        use_result_cache(lambda version: SchemaResultCache(directory, version))


def template_bytecode_cache(directory: Path | None) -> jinja2.BytecodeCache | None:
    """A Jinja bytecode cache in ``directory`` that never fails a render (None: no cache)."""
    import jinja2

    if directory is None:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None

    class _QuietCache(jinja2.FileSystemBytecodeCache):
        """A cache that never fails a render: unreadable or unwritable entries are skipped."""

        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except (OSError, ValueError, EOFError):
                bucket.reset()

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            try:
                super().dump_bytecode(bucket)
            except OSError:
                pass

    return _QuietCache(str(directory))


class SchemaResultCache:
    """Schema findings per object hash, in one JSON file per Kubernetes version."""

    _LIMIT = 2000  # entries kept (the newest)

    def __init__(self, directory: Path, version: str) -> None:
        self.path = directory / f"schema-results-{version}.json"
        self.identity = _schema_identity(version)
        self.entries: dict[str, list[dict[str, str]]] = {}
        self.dirty = False
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict) and data.get("identity") == self.identity:
                self.entries = dict(data.get("entries", {}))
        except (OSError, ValueError):
            pass

    @staticmethod
    def key(obj: Mapping[str, Any]) -> str:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def get(self, key: str) -> list[Finding] | None:
        raw = self.entries.get(key)
        if not isinstance(raw, list):
            return None
        try:
            return [Finding(**item) for item in raw]
        except TypeError:
            return None

    def put(self, key: str, findings: list[Finding]) -> None:
        self.entries.pop(key, None)
        self.entries[key] = [f.to_dict() for f in findings]
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        keep = dict(list(self.entries.items())[-self._LIMIT :])
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"identity": self.identity, "entries": keep}, f)
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _schema_identity(version: str) -> str:
    """Size and mtime of every schema file results depend on: a change drops the cache."""
    from tradewise_ops.core.validate import schema_files

    parts = []
    for path in schema_files(version):
        try:
            st = path.stat()
            parts.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{path.name}:missing")
    return "|".join(parts)
