"""Message bodies from Jinja2 templates, html autoescaped (the ``templates`` extra).

The convention, for a template called ``welcome``:

- ``welcome.html`` (or ``welcome.html.j2``) is the html body; it is required and rendered
  with autoescaping on, so a ``<script>`` in the context comes out as ``&lt;script&gt;``;
- ``welcome.txt`` (or ``welcome.txt.j2``) is the optional plain-text body, rendered
  without escaping; without it the text part is derived from the html;
- the subject is the ``{% block subject %}`` of the html template. Put it in ``<title>``,
  where it is also valid html: ``<title>{% block subject %}Welcome, {{ name }}{% endblock
  %}</title>``. Its html escaping is undone and its whitespace (line breaks included)
  collapsed to single spaces, since a subject is one line of plain text.

Undefined variables are errors (``StrictUndefined``). A missing template, a syntax error
or a failed render raises :class:`~kit_mail.TemplateError` naming the template.

Jinja2 is imported when :class:`Templates` is created: without it, that raises an
``ImportError`` naming the extra, ``pip install "kit-mail[templates]"``.
"""

from __future__ import annotations

import html as _html
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit_mail._message import Address, Attachment, Message
from kit_mail.exceptions import ConfigurationError, KitMailError, TemplateError

if TYPE_CHECKING:
    import jinja2

__all__ = ["Rendered", "Templates"]

_HTML_SUFFIXES = (".html", ".html.j2")
_TEXT_SUFFIXES = (".txt", ".txt.j2")
_ESCAPED = ("html", "htm", "xml", "html.j2", "htm.j2", "xml.j2")
_NOT_ESCAPED = ("txt", "text", "txt.j2")

AddressesArg = str | Address | Iterable[str | Address] | None


def _import_jinja2() -> Any:
    try:
        import jinja2
    except ImportError as exc:
        raise ImportError(
            'kit_mail.templates needs Jinja2: pip install "kit-mail[templates]"'
        ) from exc
    return jinja2


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered template: the ``subject``, the ``html`` body and the ``text`` body
    (``None`` when there is no text template; the message then derives it from html)."""

    subject: str
    html: str
    text: str | None


class Templates:
    """Renders message templates from ``source``: a directory (``str`` or ``Path``) or a
    ``jinja2`` loader (``PackageLoader``, ``DictLoader``, ...). See the module docstring
    for the naming convention.

    ``globals`` and ``filters`` are added to the Jinja2 environment, which is available
    as :attr:`environment` for anything else.

    Example::

        >>> import jinja2
        >>> templates = Templates(jinja2.DictLoader({
        ...     "welcome.html": "<title>{% block subject %}Welcome, {{ name }}{% endblock %}</title>"
        ...                     "<p>Hi <b>{{ name }}</b></p>",
        ... }))
        >>> r = templates.render("welcome", name="Tom & <Jerry>")
        >>> r.subject
        'Welcome, Tom & <Jerry>'
        >>> r.html.endswith("<p>Hi <b>Tom &amp; &lt;Jerry&gt;</b></p>")
        True
        >>> m = templates.message("welcome", to="ada@example.com", name="Ada")
        >>> m.subject, m.text_body
        ('Welcome, Ada', 'Hi Ada')
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | jinja2.BaseLoader,
        *,
        globals: Mapping[str, Any] | None = None,  # Jinja2's own name
        filters: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        jinja = _import_jinja2()
        loader: jinja2.BaseLoader
        if isinstance(source, str | os.PathLike):
            directory = Path(source)
            if not directory.is_dir():
                raise ConfigurationError(
                    f"template directory {str(directory)!r} does not exist or is not a "
                    "directory; pass the folder holding the .html and .txt templates."
                )
            loader = jinja.FileSystemLoader(directory)
        elif isinstance(source, jinja.BaseLoader):
            loader = source
        else:
            raise ConfigurationError(
                "Templates() takes a directory path or a jinja2 loader, not "
                f"{type(source).__name__}."
            )
        self.environment: jinja2.Environment = jinja.Environment(
            loader=loader,
            autoescape=jinja.select_autoescape(
                enabled_extensions=_ESCAPED,
                disabled_extensions=_NOT_ESCAPED,
                default_for_string=True,
                default=True,
            ),
            undefined=jinja.StrictUndefined,
            keep_trailing_newline=False,
        )
        for label, extra in (("globals", globals), ("filters", filters)):
            if extra is not None and not isinstance(extra, Mapping):
                raise ConfigurationError(f"{label} must be a mapping of names to values.")
        self.environment.globals.update(globals or {})
        self.environment.filters.update(filters or {})
        self._jinja = jinja

    def _find(self, name: str, suffixes: tuple[str, ...]) -> jinja2.Template | None:
        for suffix in suffixes:
            full = name + suffix
            try:
                template: jinja2.Template = self.environment.get_template(full)
            except self._jinja.TemplateNotFound as exc:
                if exc.name != full:  # raised for something else than this file
                    raise TemplateError(f"template {full!r}: {exc}") from exc
                continue
            except self._jinja.TemplateSyntaxError as exc:
                raise TemplateError(
                    f"template {full!r} has a syntax error on line {exc.lineno}: {exc.message}"
                ) from exc
            except Exception as exc:
                raise TemplateError(f"template {full!r} could not be loaded: {exc}") from exc
            return template
        return None

    def render(self, name: str, /, **context: Any) -> Rendered:
        """Render template ``name`` (``<name>.html`` and optional ``<name>.txt``) with
        ``context``; raises :class:`TemplateError` naming the template that failed."""
        if not isinstance(name, str) or not name.strip() or "\x00" in name:
            raise TemplateError(
                f"template name must be a non-empty string such as 'welcome', not {name!r}."
            )
        html_template = self._find(name, _HTML_SUFFIXES)
        if html_template is None:
            raise TemplateError(
                f"template {name!r} not found: add {name}.html (or {name}.html.j2) to the "
                "template directory."
            )
        text_template = self._find(name, _TEXT_SUFFIXES)
        html_name = html_template.name or name
        if "subject" not in html_template.blocks:
            raise TemplateError(
                f"template {html_name!r} has no subject: add "
                "<title>{% block subject %}...{% endblock %}</title>."
            )
        subject_block = html_template.blocks["subject"]
        try:
            subject_html = "".join(subject_block(html_template.new_context(dict(context))))
        except KitMailError:
            raise
        except Exception as exc:
            raise TemplateError(f"template {html_name!r}: the subject failed: {exc}") from exc
        subject = " ".join(_html.unescape(subject_html).split())
        if not subject:
            raise TemplateError(f"template {html_name!r}: the subject block renders empty.")
        html_body = _render(html_template, html_name, context)
        text_body = None
        if text_template is not None:
            text_body = _render(text_template, text_template.name or name, context)
        return Rendered(subject=subject, html=html_body, text=text_body)

    def message(
        self,
        name: str,
        /,
        *,
        to: str | Address | Iterable[str | Address],
        cc: AddressesArg = None,
        bcc: AddressesArg = None,
        reply_to: AddressesArg = None,
        sender: str | Address | None = None,
        attachments: Iterable[Attachment] = (),
        headers: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        **context: Any,
    ) -> Message:
        """A :class:`~kit_mail.Message` whose subject and bodies come from
        :meth:`render` (``name``, ``context``); the other keywords are the message's own
        fields, so they cannot be used as template variables."""
        rendered = self.render(name, **context)
        return Message(
            to=to,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            sender=sender,
            attachments=attachments,
            headers=headers,
            tags=tags,
            idempotency_key=idempotency_key,
        )


def _render(template: jinja2.Template, name: str, context: Mapping[str, Any]) -> str:
    try:
        return template.render(context)
    except KitMailError:
        raise
    except Exception as exc:
        raise TemplateError(f"template {name!r} failed to render: {exc}") from exc
