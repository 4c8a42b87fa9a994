"""Where the shipped data lives: ``templates/k8s``, ``templates/reports`` and ``tradewise.yaml``.

In a wheel they are package data under ``tradewise_ops/_data``; in a checkout (or an editable
install) they are read from the repository root.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE_DIR.parent
_CHECKOUT_PATHS = {
    "k8s": _REPO_ROOT / "templates" / "k8s",
    "reports": _REPO_ROOT / "templates" / "reports",
    "tradewise.yaml": _REPO_ROOT / "tradewise.yaml",
}


def data_path(name: str) -> Path:
    """Path of shipped data ``name`` (``k8s``, ``reports`` or ``tradewise.yaml``): package first."""
    packaged = _PACKAGE_DIR / "_data" / name
    if packaged.exists():
        return packaged
    return _CHECKOUT_PATHS.get(name, _REPO_ROOT / name)


def templates_dir() -> Path:
    """The directory of the Kubernetes templates."""
    return data_path("k8s")


def report_templates_dir() -> Path:
    """The directory of the HTML report templates (the load-test and monitor pages)."""
    return data_path("reports")


def repo_root() -> Path | None:
    """The checkout this package runs from, or None when installed from a wheel."""
    return _REPO_ROOT if (_REPO_ROOT / "pyproject.toml").is_file() else None
