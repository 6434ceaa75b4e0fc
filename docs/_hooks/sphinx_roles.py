"""mkdocs hook: render the reST markup kit's docstrings use on the API reference pages.

kit's docstrings follow Flask and structlog: reST roles (``:class:`MemoryCache```) and
literal blocks introduced by ``::``. mkdocstrings renders docstrings as Markdown, so on
``api/<distribution>.md`` pages this hook turns each role into a cross-reference resolved
by mkdocs-autorefs (plain code when the target is not rendered, and for
``:meth:``/``:attr:`` names relative to the documented class), and ``Example::`` into
``Example:``. It runs on rendered HTML only; the sources stay as they are.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(
    r":(?:py:)?(class|func|meth|attr|data|exc|mod|obj|const):<code>~?([A-Za-z_][\w.]*)(\(\))?</code>"
)
_LITERAL_INTRO = re.compile(r"::</p>")


def on_page_content(html: str, page: Any, **_: Any) -> str:
    src = page.file.src_uri
    if not (src.startswith("api/") and src.endswith(".md")):
        return html
    module = src.removeprefix("api/").removesuffix(".md").replace("-", "_")

    def link(match: re.Match[str]) -> str:
        role, name, call = match.group(1), match.group(2), match.group(3) or ""
        if role in ("meth", "attr") and "." not in name:
            return f"<code>{name}{call}</code>"  # relative to the class being documented
        identifier = name if name.startswith(f"{module}.") else f"{module}.{name}"
        title = f"<code>{name.rsplit('.', 1)[-1]}{call}</code>"
        return f'<autoref identifier="{identifier}" optional>{title}</autoref>'

    return _LITERAL_INTRO.sub(":</p>", _ROLE.sub(link, html))
