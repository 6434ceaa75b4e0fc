"""Jinja2 templates: the naming convention, autoescaping, the subject block, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import jinja2
import pytest

from kit_mail import Attachment, ConfigurationError, Message, TemplateError
from kit_mail._dev import MemoryMailer
from kit_mail.templates import Rendered, Templates

WELCOME_HTML = """\
<html><head><title>{% block subject %}Welcome, {{ name }}{% endblock %}</title></head>
<body><h1>Hello {{ name }}</h1><p>{{ note }}</p></body></html>
"""
WELCOME_TXT = "Hello {{ name }}\n{{ note }}\n"


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    (tmp_path / "welcome.html").write_text(WELCOME_HTML)
    (tmp_path / "welcome.txt").write_text(WELCOME_TXT)
    (tmp_path / "reset.html.j2").write_text(
        "<title>{% block subject %}Reset your password{% endblock %}</title>"
        '<p><a href="{{ link }}">Reset</a></p>'
    )
    (tmp_path / "reset.txt.j2").write_text("Reset: {{ link }}")
    (tmp_path / "htmlonly.html").write_text(
        "<title>{% block subject %}Report{% endblock %}</title><p>{{ body }}</p>"
    )
    return tmp_path


@pytest.fixture
def templates(directory: Path) -> Templates:
    return Templates(directory)


def test_render_html_and_text(templates: Templates) -> None:
    rendered = templates.render("welcome", name="Ada", note="See you")
    assert isinstance(rendered, Rendered)
    assert rendered.subject == "Welcome, Ada"
    assert "<h1>Hello Ada</h1><p>See you</p>" in rendered.html
    assert rendered.text == "Hello Ada\nSee you"


def test_j2_suffixes(templates: Templates) -> None:
    rendered = templates.render("reset", link="https://x.io/r?a=1&b=2")
    assert rendered.subject == "Reset your password"
    assert '<a href="https://x.io/r?a=1&amp;b=2">' in rendered.html
    assert rendered.text == "Reset: https://x.io/r?a=1&b=2"


def test_context_is_escaped_in_html_not_in_text(templates: Templates) -> None:
    evil = "<script>alert('x')</script> & co"
    rendered = templates.render("welcome", name="Ada", note=evil)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co" in rendered.html
    assert rendered.text is not None and evil in rendered.text


def test_subject_is_unescaped_and_one_line(directory: Path) -> None:
    (directory / "multi.html").write_text(
        "<title>{% block subject %}\n  Order {{ number }}\n  for {{ name }}\n{% endblock %}</title>"
        "<p>x</p>"
    )
    rendered = Templates(directory).render("multi", number=7, name="Tom & <Jerry>\r\nBcc: x")
    assert rendered.subject == "Order 7 for Tom & <Jerry> Bcc: x"
    assert "<title>" in rendered.html and "Tom &amp; &lt;Jerry&gt;" in rendered.html


def test_text_is_derived_when_there_is_no_text_template(templates: Templates) -> None:
    rendered = templates.render("htmlonly", body="Numbers <1>")
    assert rendered.text is None
    m = templates.message("htmlonly", to="ada@example.com", body="Numbers <1>")
    assert m.text is None
    assert m.text_body == "Numbers <1>"  # the <title> is not part of the text


def test_message_builds_a_validated_message(templates: Templates, tmp_path: Path) -> None:
    m = templates.message(
        "welcome",
        to="Ada <ada@example.com>",
        cc="c@example.com",
        bcc="b@example.com",
        reply_to="r@example.com",
        sender="app@example.com",
        attachments=[Attachment("a.txt", b"x")],
        headers={"X-Campaign": "spring"},
        tags={"kind": "welcome"},
        idempotency_key="welcome/1",
        name="Ada",
        note="hi",
    )
    assert isinstance(m, Message)
    assert (m.subject, m.text) == ("Welcome, Ada", "Hello Ada\nhi")
    assert m.html is not None and "<h1>Hello Ada</h1>" in m.html
    assert [str(a) for a in m.to] == ["Ada <ada@example.com>"]
    assert (m.cc[0].email, m.bcc[0].email, m.reply_to[0].email) == (
        "c@example.com",
        "b@example.com",
        "r@example.com",
    )
    assert (m.headers["X-Campaign"], m.tags["kind"], m.idempotency_key) == (
        "spring",
        "welcome",
        "welcome/1",
    )
    mailer = MemoryMailer()
    mailer.send(m)
    assert mailer.outbox == [m]


def test_name_may_be_a_context_variable(templates: Templates, directory: Path) -> None:
    (directory / "hello.html").write_text(
        "<title>{% block subject %}Hi {{ name }}{% endblock %}</title>"
    )
    assert Templates(directory).render("hello", name="Ada").subject == "Hi Ada"


def test_missing_template_names_it(templates: Templates) -> None:
    with pytest.raises(TemplateError, match=r"template 'nope' not found: add nope\.html"):
        templates.render("nope")
    with pytest.raises(TemplateError, match="template 'nope' not found"):
        templates.message("nope", to="ada@example.com")


def test_text_template_alone_is_not_enough(directory: Path) -> None:
    (directory / "textonly.txt").write_text("Hi")
    with pytest.raises(TemplateError, match="template 'textonly' not found"):
        Templates(directory).render("textonly")


def test_undefined_variable_is_an_error_naming_the_template(templates: Templates) -> None:
    with pytest.raises(TemplateError, match=r"template 'welcome\.html'.*'note' is undefined"):
        templates.render("welcome", name="Ada")


def test_undefined_variable_in_the_subject(templates: Templates) -> None:
    with pytest.raises(TemplateError, match=r"'welcome\.html': the subject failed.*'name'"):
        templates.render("welcome", note="x")


def test_undefined_variable_in_the_text_template(directory: Path) -> None:
    (directory / "welcome.txt").write_text("{{ missing }}")
    with pytest.raises(TemplateError, match=r"template 'welcome\.txt'.*'missing' is undefined"):
        Templates(directory).render("welcome", name="Ada", note="x")


def test_syntax_error_names_template_and_line(directory: Path) -> None:
    (directory / "broken.html").write_text("<p>ok</p>\n{% if %}")
    with pytest.raises(TemplateError, match=r"'broken\.html' has a syntax error on line 2"):
        Templates(directory).render("broken")


def test_no_subject_block(directory: Path) -> None:
    (directory / "nosubject.html").write_text("<p>x</p>")
    with pytest.raises(TemplateError, match=r"'nosubject\.html' has no subject"):
        Templates(directory).render("nosubject")


def test_empty_subject(directory: Path) -> None:
    (directory / "blank.html").write_text("{% block subject %}  {{ s }} {% endblock %}<p>x</p>")
    with pytest.raises(TemplateError, match="subject block renders empty"):
        Templates(directory).render("blank", s="")


def test_error_raised_by_the_template_code(directory: Path) -> None:
    (directory / "div.html").write_text("{% block subject %}s{% endblock %}{{ 1 // n }}")
    with pytest.raises(TemplateError, match=r"'div\.html' failed to render") as info:
        Templates(directory).render("div", n=0)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_missing_included_template(directory: Path) -> None:
    (directory / "incl.html").write_text(
        '{% block subject %}s{% endblock %}{% include "partial.html" %}'
    )
    # Jinja2's own wording differs between versions; the template names are what matter
    with pytest.raises(TemplateError, match=r"'incl\.html' failed to render: .*partial\.html"):
        Templates(directory).render("incl")


@pytest.mark.parametrize("name", ["../welcome", "/etc/passwd"])
def test_names_cannot_escape_the_directory(templates: Templates, name: str) -> None:
    with pytest.raises(TemplateError, match="not found"):
        templates.render(name)


@pytest.mark.parametrize("name", ["", "  ", None, "a\x00b"])
def test_invalid_names(templates: Templates, name: object) -> None:
    with pytest.raises(TemplateError, match="template name must be a non-empty string"):
        templates.render(name)  # type: ignore[arg-type]


def test_inheritance_and_includes(directory: Path) -> None:
    (directory / "layout.html").write_text(
        "<html><head><title>{% block subject %}{% endblock %}</title></head>"
        "<body>{% block body %}{% endblock %}{% include 'footer.html' %}</body></html>"
    )
    (directory / "footer.html").write_text("<footer>{{ company }}</footer>")
    (directory / "invoice.html").write_text(
        '{% extends "layout.html" %}{% block subject %}Invoice {{ n }}{% endblock %}'
        "{% block body %}<p>Total: {{ total }}</p>{% endblock %}"
    )
    rendered = Templates(directory).render("invoice", n=3, total="<b>5</b>", company="A&B")
    assert rendered.subject == "Invoice 3"
    assert rendered.html == (
        "<html><head><title>Invoice 3</title></head><body><p>Total: &lt;b&gt;5&lt;/b&gt;</p>"
        "<footer>A&amp;B</footer></body></html>"
    )


def test_loader_globals_and_filters() -> None:
    templates = Templates(
        jinja2.DictLoader(
            {
                "hi.html": "{% block subject %}{{ brand }}: hi{% endblock %}<p>{{ n|money }}</p>",
                "hi.txt": "{{ n|money }} from {{ brand }}",
            }
        ),
        globals={"brand": "Kit"},
        filters={"money": lambda v: f"${v:.2f}"},
    )
    rendered = templates.render("hi", n=3)
    assert rendered == Rendered(
        subject="Kit: hi", html="Kit: hi<p>$3.00</p>", text="$3.00 from Kit"
    )
    assert templates.environment.undefined is jinja2.StrictUndefined


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("x.html", True),
        ("x.HTM", True),
        ("x.xml", True),
        ("x.html.j2", True),
        ("x.txt", False),
        ("x.txt.j2", False),
        ("x.jinja", True),  # unknown: escaped, the safe side
    ],
)
def test_autoescape_by_extension(name: str, escaped: bool) -> None:
    templates = Templates(jinja2.DictLoader({name: "{{ v }}"}))
    out = templates.environment.get_template(name).render(v="<i>")
    assert out == ("&lt;i&gt;" if escaped else "<i>")


def test_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"template directory .* does not exist"):
        Templates(tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="does not exist or is not a directory"):
        Templates(str(Path(__file__)))


def test_source_type_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="takes a directory path or a jinja2 loader"):
        Templates(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="globals must be a mapping"):
        Templates(jinja2.DictLoader({}), globals=[("a", 1)])  # type: ignore[arg-type]


def test_missing_jinja2_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)  # makes `import jinja2` fail
    with pytest.raises(ImportError, match=r'pip install "kit-mail\[templates\]"'):
        Templates(tmp_path)
