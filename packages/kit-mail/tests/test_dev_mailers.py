"""ConsoleMailer and MemoryMailer, and the BaseMailer behaviour they share."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path
from typing import Any

import pytest

from kit_mail import (
    Attachment,
    BaseMailer,
    BatchDeliveryError,
    ConfigurationError,
    InvalidMessage,
    Mailer,
    Message,
    ProviderRejected,
    ProviderUnavailable,
)
from kit_mail._dev import ConsoleMailer, MemoryMailer


def message(**changes: Any) -> Message:
    fields: dict[str, Any] = {"to": "ada@example.com", "subject": "Hello", "text": "Hi Ada"}
    fields.update(changes)
    return Message(**fields)


# ---------------------------------------------------------------- MemoryMailer


def test_memory_mailer_is_a_mailer() -> None:
    mailer = MemoryMailer()
    assert isinstance(mailer, Mailer)
    assert isinstance(mailer, BaseMailer)
    assert mailer.name == "memory"


def test_memory_mailer_keeps_messages_with_the_sender_applied() -> None:
    mailer = MemoryMailer(default_sender="App <app@example.com>")
    first = mailer.send(message(cc="c@example.com", bcc="b@example.com"))
    second = mailer.send(message(sender="own@example.com", subject="Second"))
    assert (first.message_id, first.provider) == ("memory-1", "memory")
    assert first.accepted == ("ada@example.com", "c@example.com", "b@example.com")
    assert second.message_id == "memory-2"
    assert [m.subject for m in mailer.outbox] == ["Hello", "Second"]
    assert [str(m.sender) for m in mailer.outbox] == [
        "App <app@example.com>",
        "own@example.com",
    ]


def test_memory_mailer_without_a_sender_refuses() -> None:
    mailer = MemoryMailer()
    with pytest.raises(InvalidMessage, match="no sender"):
        mailer.send(message())
    assert mailer.outbox == []


def test_invalid_default_sender_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="default_sender 'app@' is not valid"):
        MemoryMailer(default_sender="app@")


def test_send_takes_only_messages() -> None:
    with pytest.raises(ConfigurationError, match=r"takes a kit_mail\.Message, not dict"):
        MemoryMailer(default_sender="a@example.com").send({"to": "x"})  # type: ignore[arg-type]


def test_clear_empties_the_outbox_but_ids_keep_counting() -> None:
    mailer = MemoryMailer(default_sender="app@example.com")
    mailer.send(message())
    mailer.clear()
    assert mailer.outbox == []
    assert mailer.send(message()).message_id == "memory-2"


def test_same_idempotency_key_is_stored_once() -> None:
    mailer = MemoryMailer(default_sender="app@example.com")
    first = mailer.send(message(idempotency_key="welcome/42"))
    again = mailer.send(message(idempotency_key="welcome/42"))
    other = mailer.send(message(idempotency_key="welcome/43"))
    assert again == first
    assert first.idempotency_key == "welcome/42"
    assert other.message_id == "memory-2"
    assert len(mailer.outbox) == 2


def test_fail_with_an_error_fails_every_send() -> None:
    mailer = MemoryMailer(default_sender="app@example.com", fail_with=ProviderUnavailable("down"))
    with pytest.raises(ProviderUnavailable, match="down"):
        mailer.send(message())
    assert mailer.outbox == []
    mailer.fail_with = None
    assert mailer.send(message()).message_id == "memory-1"


def test_fail_with_a_function_fails_chosen_messages_in_a_batch() -> None:
    def refuse_bob(m: Message) -> ProviderRejected | None:
        if any(a.email == "bob@example.com" for a in m.recipients):
            return ProviderRejected("bob is blocked", provider="memory", provider_code=422)
        return None

    mailer = MemoryMailer(default_sender="app@example.com", fail_with=refuse_bob)
    batch = [message(to="ada@example.com"), message(to="bob@example.com"), message(to="c@x.io")]
    with pytest.raises(BatchDeliveryError) as info:
        mailer.send_many(batch)
    error = info.value
    assert [index for index, _ in error.sent] == [0, 2]
    assert [result.message_id for _, result in error.sent] == ["memory-1", "memory-2"]
    assert [(index, str(exc)) for index, exc in error.failed] == [(1, "bob is blocked")]
    assert isinstance(error.failed[0][1], ProviderRejected)
    assert "1 of 3 messages were not delivered through memory (indexes 1)" in str(error)
    assert [m.to[0].email for m in mailer.outbox] == ["ada@example.com", "c@x.io"]


def test_retrying_a_failed_batch_with_keys_sends_nothing_twice() -> None:
    down = {"bob@example.com"}

    def flaky(m: Message) -> ProviderUnavailable | None:
        return ProviderUnavailable("try later") if m.to[0].email in down else None

    mailer = MemoryMailer(default_sender="app@example.com", fail_with=flaky)
    batch = [
        message(to=f"{name}@example.com", idempotency_key=f"k/{name}")
        for name in ("ada", "bob", "cy")
    ]
    with pytest.raises(BatchDeliveryError):
        mailer.send_many(batch)
    down.clear()
    results = mailer.send_many(batch)
    assert [r.accepted for r in results] == [
        ("ada@example.com",),
        ("bob@example.com",),
        ("cy@example.com",),
    ]
    assert sorted(m.to[0].email for m in mailer.outbox) == [
        "ada@example.com",
        "bob@example.com",
        "cy@example.com",
    ]


def test_fail_with_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="fail_with must be a KitMailError"):
        MemoryMailer(fail_with="boom")  # type: ignore[arg-type]
    mailer = MemoryMailer(default_sender="app@example.com", fail_with=lambda m: "nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="must return a KitMailError or None, not str"):
        mailer.send(message())


def test_memory_mailer_is_thread_safe() -> None:
    mailer = MemoryMailer(default_sender="app@example.com")
    barrier = threading.Barrier(8)
    ids: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(50):
            result = mailer.send(message(subject=f"{n}-{i}"))
            with lock:
                ids.append(result.message_id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(mailer.outbox) == 400
    assert sorted(ids) == sorted(f"memory-{i}" for i in range(1, 401))
    assert len({m.subject for m in mailer.outbox}) == 400


async def test_async_variants() -> None:
    mailer = MemoryMailer(default_sender="app@example.com")
    one = await mailer.asend(message())
    many = await mailer.asend_many(message(subject=f"s{i}") for i in range(3))
    assert one.message_id == "memory-1"
    assert [r.message_id for r in many] == ["memory-2", "memory-3", "memory-4"]
    results = await asyncio.gather(*(mailer.asend(message()) for _ in range(5)))
    assert len({r.message_id for r in results}) == 5


def test_context_manager_closes_and_stays_usable() -> None:
    with MemoryMailer(default_sender="app@example.com") as mailer:
        mailer.send(message())
    assert len(mailer.outbox) == 1


# ---------------------------------------------------------------- ConsoleMailer


def test_console_mailer_prints_a_readable_block(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_bytes(b"x" * 2048)
    stream = io.StringIO()
    mailer = ConsoleMailer(default_sender="App <app@example.com>", stream=stream)
    result = mailer.send(
        message(
            to=["Ada <ada@example.com>", "bob@example.com"],
            cc="cc@example.com",
            bcc="audit@example.com",
            reply_to="support@example.com",
            subject="Grüße",
            text=None,
            html="<h1>Welcome</h1><p>Hi <b>Ada</b></p>",
            headers={"X-Campaign": "spring"},
            tags={"kind": "welcome"},
            idempotency_key="welcome/42",
            attachments=[Attachment("report.pdf", b"%PDF"), Attachment("notes.txt", path=file)],
        )
    )
    assert result.message_id == "console-1"
    assert result.provider == "console"
    assert result.accepted == (
        "ada@example.com",
        "bob@example.com",
        "cc@example.com",
        "audit@example.com",
    )
    assert result.idempotency_key == "welcome/42"
    assert stream.getvalue() == (
        "----- kit-mail console-1 -----\n"
        "From: App <app@example.com>\n"
        "To: Ada <ada@example.com>, bob@example.com\n"
        "Cc: cc@example.com\n"
        "Bcc (not a header): audit@example.com\n"
        "Reply-To: support@example.com\n"
        "Subject: Grüße\n"
        "X-Campaign: spring\n"
        "Tags: kind=welcome\n"
        "Idempotency-Key: welcome/42\n"
        "\n"
        "Welcome\n"
        "\n"
        "Hi Ada\n"
        "\n"
        "Attachment: report.pdf (application/pdf, 4 bytes)\n"
        "Attachment: notes.txt (text/plain, 2.0 KiB)\n"
        "----- end console-1 -----\n"
    )


def test_console_mailer_shows_html_on_request() -> None:
    stream = io.StringIO()
    mailer = ConsoleMailer(default_sender="app@example.com", stream=stream, show_html=True)
    mailer.send(message(text="Plain", html="<p>Rich</p>"))
    mailer.send(message(text="Only text"))
    out = stream.getvalue()
    assert "Plain\n\n--- html ---\n<p>Rich</p>\n----- end console-1 -----" in out
    assert out.count("--- html ---") == 1
    assert "----- kit-mail console-2 -----" in out


def test_console_mailer_writes_to_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    mailer = ConsoleMailer(default_sender="app@example.com")
    mailer.send_many([message(subject="One"), message(subject="Two")])
    out = capsys.readouterr().out
    assert "Subject: One" in out
    assert "Subject: Two" in out
    assert out.index("console-1") < out.index("console-2")


def test_console_mailer_reports_an_attachment_removed_since(tmp_path: Path) -> None:
    file = tmp_path / "gone.txt"
    file.write_text("x")
    m = message(attachments=[Attachment("gone.txt", path=file)])
    file.unlink()
    stream = io.StringIO()
    ConsoleMailer(default_sender="app@example.com", stream=stream).send(m)
    assert "Attachment: gone.txt (text/plain, file no longer readable)" in stream.getvalue()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stream": "stdout"}, "stream must be a text stream"),
        ({"show_html": "yes"}, "show_html must be True or False"),
        ({"default_sender": "nobody@"}, "default_sender 'nobody@' is not valid"),
    ],
)
def test_console_mailer_arguments_are_validated(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        ConsoleMailer(**kwargs)


def test_console_mailer_without_a_sender_refuses() -> None:
    stream = io.StringIO()
    with pytest.raises(InvalidMessage, match="no sender"):
        ConsoleMailer(stream=stream).send(message())
    assert stream.getvalue() == ""
