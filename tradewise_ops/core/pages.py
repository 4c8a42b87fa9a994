"""The HTML report pages: the Jinja templates of ``templates/reports``, rendered to a string.

Pure (reads the templates only). The values come from the pages' data functions
(``loadreport.load_page``, ``monitor_report.combined_page``); the templates only lay them out.
Every value is escaped the way ``html.escape`` does it (``&#x27;`` for ``'``, ``&quot;`` for
``"``), as the pages always were; what a macro returns (a chart, a table) is markup already and
is not escaped twice.
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tradewise_ops.errors import TradewiseError

if TYPE_CHECKING:
    import jinja2


def render_page(name: str, **context: Any) -> str:
    """The page ``name`` (``load.html.j2``, ``monitor.html.j2``) with ``context`` filled in."""
    import jinja2

    try:
        return _environment().get_template(name).render(context)
    except jinja2.TemplateError as exc:
        raise TradewiseError(f"report template {name} failed to render: {exc}") from None


def _escape(value: Any) -> Any:
    from markupsafe import Markup

    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value)))


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2

    from tradewise_ops.resources import report_templates_dir

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(report_templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        finalize=_escape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
