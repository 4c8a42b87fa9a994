"""Edits of ``tradewise.yaml`` as text that keep its comments, order and layout (ruamel.yaml).

``set_resources`` is what ``tradewise rightsize --write`` changes: the requests and limits of
components of one environment, written under ``environments.<env>.components.<name>.resources``
(so the other environments keep what they inherit from ``defaults``), as flow mappings like the
file's own ``{cpu: 500m, memory: 512Mi}``. Everything else is left byte for byte.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from tradewise_ops.core.config import Resources
from tradewise_ops.errors import ConfigError


def set_resources(text: str, environment: str, resources: Mapping[str, Resources]) -> str:
    """``text`` with ``resources`` (component -> Resources) set for ``environment``."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML()  # round-trip
    yaml.preserve_quotes = True
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    doc = yaml.load(text)
    envs = doc.get("environments") if isinstance(doc, Mapping) else None
    if not isinstance(envs, Mapping) or environment not in envs:
        raise ConfigError(f"the config has no environments.{environment} to write into")
    env = envs[environment]
    components = env.get("components")
    if components is None:
        components = CommentedMap()
        env["components"] = components
    for name, res in resources.items():
        comp = components.get(name)
        if comp is None:
            comp = CommentedMap()
            components[name] = comp
        block = comp.get("resources")
        if block is None:
            block = CommentedMap()
            comp["resources"] = block
        block["requests"] = _flow({"cpu": res.cpu_request, "memory": res.memory_request})
        block["limits"] = _flow({"cpu": res.cpu_limit, "memory": res.memory_limit})
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _flow(values: Mapping[str, Any]) -> Any:
    from ruamel.yaml.comments import CommentedMap

    m = CommentedMap(values)
    m.fa.set_flow_style()
    return m
