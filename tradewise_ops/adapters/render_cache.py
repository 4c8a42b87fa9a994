"""The render caches on disk: compiled templates and schema results, in the user's cache dir.

Either cache only saves time: the output is the same without it. ``core.render`` and
``core.validate`` take a ``RenderCaches`` object as a parameter; this module owns the files.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradewise_ops.core.findings import Finding

if TYPE_CHECKING:
    import jinja2


class RenderCaches:
    """The render caches of one run, kept in files under ``directory`` (None: nothing is kept).

    Compiled templates in ``directory/templates``, schema results in
    ``directory/schema-results-<version>.json``. What ``render_environment`` and ``validate``
    take as ``caches`` (``core.caches.Caches``); the CLI builds one per run
    (``State.render_caches``). ``hits`` and ``misses`` count the objects whose schema findings came
    from the cache, or had to be checked.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._results: dict[str, SchemaResultCache] = {}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RenderCaches:
        """The caches in the user's cache dir: ``$XDG_CACHE_HOME/tradewise``.

        The default is ``~/.cache/tradewise``; ``TRADEWISE_NO_CACHE=1`` turns both caches off.
        """
        env = os.environ if environ is None else environ
        if env.get("TRADEWISE_NO_CACHE"):
            return cls(None)
        base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return cls(Path(base) / "tradewise")

    @functools.cached_property
    def templates(self) -> jinja2.BytecodeCache | None:
        """The compiled-template cache (made on first use; None when it cannot be)."""
        if self.directory is None:
            return None
        return template_bytecode_cache(self.directory / "templates")

    def schema_results(self, version: str) -> SchemaResultCache | None:
        """The schema result cache of Kubernetes ``version`` (one per version and run)."""
        if self.directory is None:
            return None
        cache = self._results.get(version)
        if cache is None:
            cache = self._results[version] = SchemaResultCache(self.directory, version)
        return cache

    @property
    def hits(self) -> int:
        """Objects whose schema findings came from the cache, in this run."""
        return sum(c.hits for c in self._results.values())

    @property
    def misses(self) -> int:
        """Objects the cache did not know, checked against the schemas in this run."""
        return sum(c.misses for c in self._results.values())


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
        self.hits = 0
        self.misses = 0
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
        """The findings stored for ``key`` (None when there are none, or they are unreadable)."""
        raw = self.entries.get(key)
        found = None
        if isinstance(raw, list):
            try:
                found = [Finding(**item) for item in raw]
            except TypeError:
                found = None
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

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
            self.dirty = False
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
