"""The image digests ``tradewise push`` recorded, which ``render`` and ``deploy`` pin images by.

``.tradewise/images.json`` (or ``TRADEWISE_IMAGES_FILE``) maps environment -> tag -> component ->
``sha256:...``, and, per component, the registry it was pushed to (``registries``). A digest is
only good for the registry that holds it: ``pinnable_digests`` leaves out one recorded for another
registry (or for no registry, from before registries were recorded) and says why.

Kept apart from ``adapters.images`` so that reading it costs ``render`` no Docker-side imports.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from tradewise_ops.errors import BadInputError

COMPONENTS = ("api", "worker")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def images_file() -> Path:
    """The digest record: ``TRADEWISE_IMAGES_FILE``, else ``./.tradewise/images.json``."""
    return Path(os.environ.get("TRADEWISE_IMAGES_FILE") or Path.cwd() / ".tradewise/images.json")


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path} is not a readable image digest record: {exc}") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path} is not a readable image digest record: not a JSON object")
    return data


def _registry(name: str) -> str:
    return name.rstrip("/")


def record_digests(
    env_name: str,
    tag: str,
    digests: dict[str, str],
    path: Path | None = None,
    registry: str | None = None,
) -> Path:
    """Merge ``digests`` (component -> ``sha256:…``) into the record under ``env_name``/``tag``,
    with the ``registry`` they were pushed to."""
    target = path or images_file()
    for component, digest in digests.items():
        if component not in COMPONENTS or not _DIGEST.match(digest):
            raise BadInputError(f"not an image digest for {component!r}: {digest!r}")
    data = _load(target)
    entry = data.setdefault(env_name, {}).setdefault(tag, {})
    entry.update(digests)
    if registry is not None:
        entry.setdefault("registries", {}).update(dict.fromkeys(digests, _registry(registry)))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".json.partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(target)
    return target


def read_image_digests(env_name: str, tag: str, path: Path | None = None) -> dict[str, str]:
    """The digests pushed for ``env_name`` at ``tag`` (component -> digest); empty when none.

    The result is what ``render_environment(..., image_digests=...)`` takes. Whatever registry
    they went to: ``pinnable_digests`` checks that.
    """
    entry = _load(path or images_file()).get(env_name, {}).get(tag, {})
    return {str(k): str(v) for k, v in entry.items() if k in COMPONENTS}


def pinnable_digests(
    env_name: str, tag: str, registry: str, path: Path | None = None
) -> tuple[dict[str, str], list[str]]:
    """The digests recorded for ``env_name`` at ``tag`` that were pushed to ``registry``, and a
    sentence for each one left out (recorded for another registry, or for an unknown one)."""
    target = path or images_file()
    if not target.is_file():
        return {}, []
    entry = _load(target).get(env_name, {}).get(tag, {})
    registries = entry.get("registries") or {}
    usable: dict[str, str] = {}
    left_out: list[str] = []
    for component in COMPONENTS:
        digest = entry.get(component)
        if not isinstance(digest, str):
            continue
        pushed_to = registries.get(component)
        if pushed_to == _registry(registry):
            usable[component] = digest
        elif pushed_to is None:
            left_out.append(
                f"not pinning {component} by the digest recorded for {env_name} {tag} in "
                f"{target}: it does not say which registry holds it (push again to record it)"
            )
        else:
            left_out.append(
                f"not pinning {component} by the digest recorded for {env_name} {tag}: it was "
                f"pushed to {pushed_to}, not {_registry(registry)}"
            )
    return usable, left_out
