"""The documentation site builds strictly (no broken link, no page missing from the nav) and its
generated pages hold what the CLI and the config model say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest
import typer.main

from tradewise_ops.cli import helpdocs
from tradewise_ops.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
MKDOCS = Path(sys.executable).parent / "mkdocs"
sys.path.insert(0, str(ROOT / "docs" / "hooks"))
import generate  # noqa: E402  (the mkdocs hook, docs/hooks/generate.py)


def _text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", html))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.mark.slow
def test_the_site_builds_strictly_with_every_page(site: Path) -> None:
    pages = {p.relative_to(ROOT / "docs").with_suffix("") for p in (ROOT / "docs").rglob("*.md")}
    for page in pages:
        index = site / ("" if page.name == "index" else str(page)) / "index.html"
        assert index.is_file(), page
    assert (site / "search" / "search_index.json").is_file()


@pytest.mark.slow
def test_the_command_reference_is_the_clis_own_help(site: Path) -> None:
    text = _text((site / "reference" / "commands" / "index.html").read_text(encoding="utf-8"))
    for key, _ in helpdocs.walk(typer.main.get_command(app)):
        assert f"tradewise {key}" in text, key
        assert helpdocs.DOCS[key].summary in text, key
        for line, _what in helpdocs.DOCS[key].examples:
            assert line in text, line  # the examples of its --help, as printed


@pytest.mark.slow
def test_the_configuration_reference_lists_every_accepted_key(site: Path) -> None:
    text = _text((site / "reference" / "configuration" / "index.html").read_text(encoding="utf-8"))
    for section, keys in generate.accepted_keys().items():
        for key in keys:
            meaning = generate.KEY_DOCS[f"{section}.{key}" if section else key]
            assert meaning.replace("`", "") in text, key
    for name in generate.ENV_DOCS:
        assert name in text


def test_a_key_the_model_accepts_without_a_description_fails_the_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The control: the generator refuses to publish a reference that misses a key."""
    docs = dict(generate.KEY_DOCS)
    del docs["slo.p95_ms"]
    monkeypatch.setattr(generate, "KEY_DOCS", docs)
    with pytest.raises(generate.GenerationError, match=r"undocumented keys \['slo.p95_ms'\]"):
        generate.config_reference()
    docs["slo.p95_ms"] = "x"
    docs["slo.p99_ms"] = "a key the model does not have"
    with pytest.raises(
        generate.GenerationError, match=r"the model does not accept \['slo.p99_ms'\]"
    ):
        generate.config_reference()
