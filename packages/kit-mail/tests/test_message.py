"""The message model: addresses, header injection, bodies, attachments, copies."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit_mail import Address, Attachment, InvalidMessage, KitMailError, Message

# Every character str.splitlines() breaks on: none may reach a header.
LINE_BREAKS = "\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

#: strings with a CR, an LF or a CRLF somewhere (the header-injection shapes)
with_crlf = st.tuples(
    st.text(max_size=20), st.sampled_from(["\r", "\n", "\r\n", "\n\r"]), st.text(max_size=20)
).map("".join)

#: one-line strings with something visible in them
one_line = st.text(
    alphabet=st.characters(blacklist_characters=LINE_BREAKS, blacklist_categories=["Cs"]),
    min_size=1,
    max_size=80,
).filter(lambda s: s.strip())


def message(**changes: Any) -> Message:
    fields: dict[str, Any] = {
        "to": "ada@example.com",
        "subject": "Hello",
        "text": "Hi Ada",
        "sender": "App <app@example.com>",
    }
    fields.update(changes)
    return Message(**fields)


def parsed(m: Message) -> EmailMessage:
    result = email.message_from_bytes(m.to_email_message().as_bytes(), policy=email.policy.default)
    assert isinstance(result, EmailMessage)
    return result


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("raw", "email_", "name", "text"),
    [
        ("ada@example.com", "ada@example.com", "", "ada@example.com"),
        ("  ada@example.com ", "ada@example.com", "", "ada@example.com"),
        ("ada@EXAMPLE.com", "ada@example.com", "", "ada@example.com"),
        ("<ada@example.com>", "ada@example.com", "", "ada@example.com"),
        ("Ada Lovelace <ada@example.com>", "ada@example.com", "Ada Lovelace", None),
        ('"Lovelace, Ada" <ada@example.com>', "ada@example.com", "Lovelace, Ada", None),
        (
            '"Ada \\"the first\\" L" <ada@example.com>',
            "ada@example.com",
            'Ada "the first" L',
            None,
        ),
        ("Zoë Ødegård <zoe@example.com>", "zoe@example.com", "Zoë Ødegård", None),
        ("用户 <user@example.com>", "user@example.com", "用户", None),
        # internationalized domains are kept in their ASCII (IDNA) form
        ("user@bücher.de", "user@xn--bcher-kva.de", "", "user@xn--bcher-kva.de"),
        ("Jürgen <j@münchen.example>", "j@xn--mnchen-3ya.example", "Jürgen", None),
        ("józef@example.com", "józef@example.com", "", "józef@example.com"),
    ],
)
def test_valid_addresses_parse(raw: str, email_: str, name: str, text: str | None) -> None:
    address = Address.parse(raw)
    assert (address.email, address.name) == (email_, name)
    if text is not None:
        assert str(address) == text
    # parsing the string form again gives the same address
    assert Address.parse(str(address)) == address


def test_display_names_are_quoted_and_encoded_in_mime() -> None:
    m = message(to=['"Lovelace, Ada" <ada@example.com>', "Zoë <zoe@example.com>"])
    raw = m.to_email_message().as_string()
    assert "Zo=C3=AB" in raw or "=?utf-8?" in raw  # RFC 2047 encoded, not raw UTF-8
    to = parsed(m)["To"]
    assert [(a.display_name, a.addr_spec) for a in to.addresses] == [
        ("Lovelace, Ada", "ada@example.com"),
        ("Zoë", "zoe@example.com"),
    ]


@pytest.mark.parametrize(
    "raw",
    [
        "ada@",
        "@example.com",
        "ada",
        "ada@example",
        "ada..x@example.com",
        "ada@@example.com",
        "a b@example.com",
        "Ada <ada@>",
        "ada@exa mple.com",
        "ada@-example.com",
        "",
        "   ",
    ],
)
def test_invalid_addresses_are_refused(raw: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        message(to=raw)
    assert "to" in str(info.value)


@pytest.mark.parametrize("field", ["to", "cc", "bcc", "reply_to", "sender"])
def test_every_address_field_is_validated_and_named(field: str) -> None:
    with pytest.raises(InvalidMessage, match=f"^{field} 'nobody@' is not valid"):
        message(**{field: "nobody@"})


def test_address_fields_take_strings_lists_and_addresses() -> None:
    m = message(
        to=["a@example.com", Address.parse("B <b@example.com>")],
        cc="c@example.com",
        bcc=("d@example.com",),
        reply_to=Address("r@example.com"),
    )
    assert [a.email for a in m.to] == ["a@example.com", "b@example.com"]
    assert m.cc == (Address("c@example.com"),)
    assert m.bcc == (Address("d@example.com"),)
    assert m.reply_to == (Address("r@example.com"),)


def test_address_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidMessage, match="to must be a non-empty string"):
        message(to=[42])


def test_recipients_are_deduplicated_in_order() -> None:
    m = message(
        to=["a@example.com", "b@example.com"],
        cc=["A <a@example.com>", "c@example.com"],
        bcc=["b@example.com", "d@example.com"],
    )
    assert [a.email for a in m.recipients] == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ]


# ---------------------------------------------------------------- header injection

INJECTABLE: dict[str, Callable[[str], object]] = {
    "subject": lambda s: message(subject=s),
    "display name in to": lambda s: message(to=f"{s} <ada@example.com>"),
    "display name in cc": lambda s: message(cc=f"{s} <c@example.com>"),
    "display name in bcc": lambda s: message(bcc=f"{s} <b@example.com>"),
    "display name in reply_to": lambda s: message(reply_to=f"{s} <r@example.com>"),
    "sender name": lambda s: message(sender=f"{s} <app@example.com>"),
    "custom header value": lambda s: message(headers={"X-Campaign": s}),
    "tag value": lambda s: message(tags={"kind": s}),
    "tag name": lambda s: message(tags={s: "welcome"}),
    "attachment filename": lambda s: Attachment(s, b"data"),
    "attachment content type": lambda s: Attachment("a.txt", b"x", content_type=f"text/{s}"),
    "idempotency key": lambda s: message(idempotency_key=s),
    "address": lambda s: Address.parse(f"ada@example.com{s}"),
    "with_sender default": lambda s: message(sender=None).with_sender(f"{s} <a@example.com>"),
}


@pytest.mark.parametrize("field", sorted(INJECTABLE))
@given(value=with_crlf)
def test_crlf_in_any_header_value_is_refused(field: str, value: str) -> None:
    with pytest.raises(InvalidMessage):
        INJECTABLE[field](value)


@pytest.mark.parametrize(
    "field", ["subject", "custom header value", "tag value", "tag name", "idempotency key"]
)
def test_crlf_error_names_the_field_and_the_reason(field: str) -> None:
    with pytest.raises(InvalidMessage, match="line break") as info:
        INJECTABLE[field]("x\r\nBcc: everyone@example.com")
    assert "header injection" in str(info.value)


@given(subject=one_line, value=one_line, tag=one_line)
def test_one_line_values_are_accepted_and_survive_mime(subject: str, value: str, tag: str) -> None:
    m = message(subject=subject, headers={"X-Campaign": value}, tags={"t": tag})
    assert m.subject == subject
    assert m.headers["X-Campaign"] == value
    assert m.tags == {"t": tag}
    mime = parsed(m)
    # header folding may change whitespace, never the words or the header set
    assert " ".join(mime["Subject"].split()) == " ".join(subject.split())
    assert " ".join(mime["X-Campaign"].split()) == " ".join(value.split())
    assert sorted(mime.keys()) == sorted(
        [
            *("From", "To", "Subject", "Message-ID", "Date", "X-Campaign"),
            *("Content-Type", "Content-Transfer-Encoding", "MIME-Version"),
        ]
    )


@given(name=one_line.filter(lambda s: '"' not in s and "\\" not in s and "<" not in s))
def test_one_line_display_names_are_accepted(name: str) -> None:
    m = message(to=f'"{name}" <ada@example.com>')
    assert m.to[0].name == name.strip()
    assert parsed(m)["To"].addresses[0].addr_spec == "ada@example.com"


@pytest.mark.parametrize(
    "header",
    [
        *("From", "to", "CC", "Bcc", "Reply-To", "subject", "Content-Type", "MIME-Version"),
        *("Message-ID", "Content-Transfer-Encoding"),
    ],
)
def test_reserved_headers_are_refused(header: str) -> None:
    with pytest.raises(InvalidMessage, match="set from the message's own fields"):
        message(headers={header: "x@example.com"})


@pytest.mark.parametrize("name", ["", "X Campaign", "X:Campaign", "Résumé", "X-" + "a" * 80])
def test_invalid_header_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidMessage, match="not a valid header field name"):
        message(headers={name: "value"})


def test_custom_headers_reach_mime() -> None:
    m = message(headers={"X-Campaign": "spring", "List-Unsubscribe": "<https://x.io/u>"})
    mime = parsed(m)
    assert mime["X-Campaign"] == "spring"
    assert mime["List-Unsubscribe"] == "<https://x.io/u>"


def test_bcc_is_in_recipients_but_never_a_mime_header() -> None:
    m = message(to="ada@example.com", bcc=["audit@example.com", "Boss <boss@example.com>"])
    raw = m.to_email_message().as_bytes()
    assert b"audit@example.com" not in raw
    assert b"boss@example.com" not in raw
    assert parsed(m)["Bcc"] is None
    assert [a.email for a in m.recipients] == [
        "ada@example.com",
        "audit@example.com",
        "boss@example.com",
    ]


def test_message_id_uses_the_sender_domain_or_the_given_one() -> None:
    assert message().to_email_message()["Message-ID"].endswith("@example.com>")
    assert message().to_email_message(domain="mail.test")["Message-ID"].endswith("@mail.test>")


def test_date_is_added_unless_given() -> None:
    assert parsed(message())["Date"].datetime.tzinfo is not None
    given = parsed(message(headers={"Date": "Tue, 01 Jul 2025 10:00:00 +0000"}))
    assert given.get_all("Date") == ["Tue, 01 Jul 2025 10:00:00 +0000"]


def test_mime_needs_a_sender() -> None:
    with pytest.raises(InvalidMessage, match="no sender"):
        message(sender=None).to_email_message()


# ---------------------------------------------------------------- subject and bodies


@pytest.mark.parametrize("subject", ["", "   ", "x" * 999])
def test_subject_must_be_present_and_one_line_long_at_most(subject: str) -> None:
    with pytest.raises(InvalidMessage, match="subject must be 1 to 998 characters"):
        message(subject=subject)


def test_subject_must_be_a_string() -> None:
    with pytest.raises(InvalidMessage, match="subject must be a string"):
        message(subject=None)


def test_a_recipient_is_required() -> None:
    with pytest.raises(InvalidMessage, match="at least one recipient"):
        message(to=[])


def test_bcc_alone_is_enough() -> None:
    m = message(to=[], bcc="hidden@example.com")
    assert m.to == ()
    assert parsed(m)["To"] is None


def test_too_many_recipients_are_refused() -> None:
    with pytest.raises(InvalidMessage, match="at most 1000"):
        message(to=[f"u{i}@example.com" for i in range(1001)])


@pytest.mark.parametrize(("text", "html"), [(None, None), ("", None), (None, ""), ("", "")])
def test_a_body_is_required(text: str | None, html: str | None) -> None:
    with pytest.raises(InvalidMessage, match="needs a body"):
        message(text=text, html=html)


def test_bodies_must_be_strings() -> None:
    with pytest.raises(InvalidMessage, match="html must be a string"):
        message(html=b"<p>x</p>")


def test_text_is_derived_from_html_when_missing() -> None:
    m = message(
        text=None,
        html=(
            "<html><head><title>T</title><style>p{color:red}</style></head><body>"
            "<h1>Welcome</h1><p>Hi <b>Ada</b> &amp; co,</p><ul><li>one</li><li>two</li></ul>"
            '<p><a href="https://x.io/start">Start</a></p><script>alert(1)</script></body></html>'
        ),
    )
    assert m.text_body == "Welcome\n\nHi Ada & co,\n\n- one\n- two\n\nStart (https://x.io/start)"
    mime = parsed(m)
    assert mime.get_content_type() == "multipart/alternative"
    plain = mime.get_body(("plain",))
    html = mime.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().strip() == m.text_body
    assert "<h1>Welcome</h1>" in html.get_content()


def test_given_text_wins_over_html() -> None:
    m = message(text="Plain words", html="<p>Rich words</p>")
    assert m.text_body == "Plain words"
    plain = parsed(m).get_body(("plain",))
    assert plain is not None and plain.get_content().strip() == "Plain words"


def test_text_only_message_is_a_single_part() -> None:
    mime = parsed(message(text="Just text", html=None))
    assert mime.get_content_type() == "text/plain"
    assert mime.get_content().strip() == "Just text"


# ---------------------------------------------------------------- attachments


def test_attachment_from_bytes(tmp_path: Path) -> None:
    a = Attachment("report.csv", b"a,b\n1,2\n")
    assert (a.content_type, a.size, a.read(), a.path) == ("text/csv", 8, b"a,b\n1,2\n", None)


def test_attachment_from_path_is_read_at_send_time(tmp_path: Path) -> None:
    file = tmp_path / "data.bin"
    file.write_bytes(b"first")
    a = Attachment("data.bin", path=file)
    assert a.content_type == "application/octet-stream"
    file.write_bytes(b"second version")
    assert (a.read(), a.size) == (b"second version", 14)


def test_attachment_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pdf"
    with pytest.raises(InvalidMessage, match=r"attachment 'nope.pdf': no file at .*nope\.pdf"):
        Attachment("nope.pdf", path=missing)


def test_attachment_path_removed_before_sending(tmp_path: Path) -> None:
    file = tmp_path / "gone.txt"
    file.write_text("x")
    m = message(attachments=[Attachment("gone.txt", path=file)])
    file.unlink()
    with pytest.raises(InvalidMessage, match=r"attachment 'gone\.txt': cannot read"):
        m.to_email_message()


def test_attachment_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidMessage, match="no file at"):
        Attachment("dir", path=tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"content": None}, "exactly one of content or path"),
        ({"content": b"x", "path": "/etc/hostname"}, "exactly one of content or path"),
        ({"content": "text, not bytes"}, "content must be bytes"),
        ({"content": b"x", "content_type": "pdf"}, "is not type/subtype"),
    ],
)
def test_attachment_arguments_are_validated(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidMessage, match=match):
        Attachment("file.pdf", **kwargs)


@pytest.mark.parametrize("filename", ["", "../etc/passwd", "dir/file.txt", "a\\b.txt", "x" * 256])
def test_attachment_filename_must_be_a_plain_name(filename: str) -> None:
    with pytest.raises(InvalidMessage, match="must be a plain file name"):
        Attachment(filename, b"x")


def test_attachments_must_be_attachment_objects() -> None:
    with pytest.raises(InvalidMessage, match=r"kit_mail\.Attachment"):
        message(attachments=[("a.txt", b"x")])


def test_attachments_reach_mime(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_bytes(b"from disk")
    m = message(
        html="<p>See attached</p>",
        attachments=[
            Attachment("report.pdf", b"%PDF-1.4 fake"),
            Attachment("notes.txt", path=file),
            Attachment("Grüße.bin", b"\x00\x01", content_type="application/x-custom"),
        ],
    )
    mime = parsed(m)
    assert mime.get_content_type() == "multipart/mixed"
    parts = [
        (p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
        for p in mime.iter_attachments()
    ]
    assert parts == [
        ("report.pdf", "application/pdf", b"%PDF-1.4 fake"),
        ("notes.txt", "text/plain", b"from disk"),
        ("Grüße.bin", "application/x-custom", b"\x00\x01"),
    ]


# ---------------------------------------------------------------- idempotency keys and tags


@pytest.mark.parametrize("key", ["", "k" * 257])
def test_idempotency_key_length(key: str) -> None:
    with pytest.raises(InvalidMessage, match="idempotency_key must be 1 to 256 characters"):
        message(idempotency_key=key)


def test_idempotency_key_and_tags_are_kept() -> None:
    m = message(idempotency_key="welcome/user-42", tags={"kind": "welcome"})
    assert m.idempotency_key == "welcome/user-42"
    assert dict(m.tags) == {"kind": "welcome"}


def test_headers_and_tags_are_read_only_copies() -> None:
    headers = {"X-A": "1"}
    m = message(headers=headers)
    headers["X-A"] = "changed"
    assert m.headers["X-A"] == "1"
    with pytest.raises(TypeError):
        m.headers["X-B"] = "2"  # type: ignore[index]


# ---------------------------------------------------------------- copies


def test_message_is_frozen() -> None:
    m = message()
    with pytest.raises(AttributeError):
        m.subject = "changed"  # type: ignore[misc]


def test_replace_returns_a_validated_copy() -> None:
    m = message(idempotency_key="a", headers={"X-A": "1"}, tags={"t": "v"})
    copy = m.replace(subject="Changed", idempotency_key="b")
    assert (copy.subject, copy.idempotency_key) == ("Changed", "b")
    assert (m.subject, m.idempotency_key) == ("Hello", "a")
    assert (copy.to, copy.sender, dict(copy.headers), dict(copy.tags)) == (
        m.to,
        m.sender,
        {"X-A": "1"},
        {"t": "v"},
    )
    with pytest.raises(InvalidMessage, match="line break"):
        m.replace(subject="a\nb")
    with pytest.raises(TypeError):
        m.replace(colour="red")


def test_with_sender_fills_only_a_missing_sender() -> None:
    without = message(sender=None)
    assert without.sender is None
    filled = without.with_sender("Default <default@example.com>")
    assert filled.sender == Address("default@example.com", "Default")
    own = message(sender="own@example.com")
    assert own.with_sender("default@example.com") is own


def test_with_sender_without_any_sender_is_an_error() -> None:
    with pytest.raises(InvalidMessage, match="no sender"):
        message(sender=None).with_sender(None)
    with pytest.raises(InvalidMessage, match="default_sender 'bad@' is not valid"):
        message(sender=None).with_sender("bad@")


def test_errors_are_kit_mail_errors_with_a_public_problem() -> None:
    with pytest.raises(KitMailError) as info:
        message(to="nobody@")
    problem = info.value.problem()
    assert problem["status"] == 422
    assert "nobody@" in problem["detail"]


@pytest.mark.parametrize("field", sorted(INJECTABLE))
@pytest.mark.parametrize("ch", list("\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"))
def test_every_line_break_python_email_knows_is_refused(field: str, ch: str) -> None:
    # Python's email package splits header lines on these too, so they inject as well
    with pytest.raises(InvalidMessage):
        INJECTABLE[field](f"a{ch}Bcc: x@example.com")


def test_an_address_built_directly_is_validated_like_a_parsed_one() -> None:
    with pytest.raises(InvalidMessage, match="line break"):
        message(to=Address("a@example.com", "E\r\nBcc: x@example.com"))
    with pytest.raises(InvalidMessage, match="not valid"):
        message(to=Address("not an email"))
    assert message(to=Address("Ada@Example.com", "Ada")).to[0].email == "Ada@example.com"
