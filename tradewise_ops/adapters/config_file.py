"""Writing the configuration file back (``tradewise rightsize --write``)."""

from __future__ import annotations

import os
from pathlib import Path

from tradewise_ops.errors import BadInputError


def write_config(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (a temporary file beside it, then rename).

    ``BadInputError`` for the configuration shipped inside the package: copy it first.
    """
    from tradewise_ops.core.config import embedded_config_path

    if path.resolve() == embedded_config_path().resolve() and "site-packages" in str(path):
        raise BadInputError(
            f"{path} is the configuration shipped with tradewise: copy it to ./tradewise.yaml "
            "and pass --config"
        )
    tmp = path.with_name(f".{path.name}.tradewise-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
