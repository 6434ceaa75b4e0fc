"""ResendMailer with the real resend SDK over real HTTP, against a local Resend stand-in
(tests/resend_server.py) that records every request and honors idempotency keys."""

from __future__ import annotations

import base64
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import resend
from resend_server import FakeResend, Scripted, resend_server_fixture  # noqa: F401

from kit_mail._message import Attachment, Message
from kit_mail.exceptions import (
    BatchDeliveryError,
    ConfigurationError,
    DeliveryError,
    InvalidMessage,
    ProviderRejected,
    ProviderUnavailable,
)
from kit_mail.resend import ResendMailer

SENDER = "App <app@example.com>"


def make_mailer(server: FakeResend, **kwargs: Any) -> ResendMailer:
    options: dict[str, Any] = {
        "default_sender": SENDER,
        "api_url": server.url,
        "backoff": 0,
        "max_retries": 2,
    }
    options.update(kwargs)
    api_key = options.pop("api_key", "re_test_key")
    return ResendMailer(api_key, **options)


def message(n: int = 0, **kwargs: Any) -> Message:
    fields: dict[str, Any] = {"to": f"user{n}@example.com", "subject": f"m{n}", "text": f"body {n}"}
    fields.update(kwargs)
    return Message(**fields)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- send


def test_send_posts_every_field_with_the_key_and_idempotency_key(
    resend_server: FakeResend, tmp_path: Path
) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 fake")
    mailer = make_mailer(resend_server)
    result = mailer.send(
        Message(
            to=["Ada Lovelace <ada@example.com>", "bob@example.com"],
            cc="carol@example.com",
            bcc="audit@example.com",
            reply_to="Support <support@example.com>",
            subject="Your report",
            html="<p>Hello <b>Ada</b></p>",
            headers={"X-Entity-Ref-ID": "42"},
            tags={"category": "report", "user_id": "u-42"},
            attachments=[
                Attachment("notes.txt", b"hello"),
                Attachment("report.pdf", path=report),
            ],
            idempotency_key="report/42",
        )
    )

    (request,) = resend_server.requests
    assert (request.method, request.path) == ("POST", "/emails")
    assert request.authorization == "Bearer re_test_key"
    assert request.idempotency_key == "report/42"
    assert request.user_agent is not None
    assert request.user_agent.startswith("resend-python:")
    body = request.body
    assert body["from"] == "App <app@example.com>"
    assert body["to"] == ["Ada Lovelace <ada@example.com>", "bob@example.com"]
    assert body["cc"] == ["carol@example.com"]
    assert body["bcc"] == ["audit@example.com"]
    assert body["reply_to"] == ["Support <support@example.com>"]
    assert body["subject"] == "Your report"
    assert body["html"] == "<p>Hello <b>Ada</b></p>"
    assert body["text"] == "Hello Ada"
    assert body["headers"] == {"X-Entity-Ref-ID": "42"}
    assert body["tags"] == [
        {"name": "category", "value": "report"},
        {"name": "user_id", "value": "u-42"},
    ]
    assert body["attachments"] == [
        {
            "filename": "notes.txt",
            "content": base64.b64encode(b"hello").decode(),
            "content_type": "text/plain",
        },
        {
            "filename": "report.pdf",
            "content": base64.b64encode(b"%PDF-1.4 fake").decode(),
            "content_type": "application/pdf",
        },
    ]
    assert result.message_id == resend_server.sent[0]["id"]
    assert result.provider == "resend"
    assert result.accepted == (
        "ada@example.com",
        "bob@example.com",
        "carol@example.com",
        "audit@example.com",
    )
    assert result.idempotency_key == "report/42"


def test_a_message_without_a_key_gets_a_generated_one_returned_in_the_result(
    resend_server: FakeResend,
) -> None:
    result = make_mailer(resend_server).send(message())
    (request,) = resend_server.requests
    assert request.idempotency_key is not None
    assert request.idempotency_key.startswith("kit-mail/")
    assert result.idempotency_key == request.idempotency_key


def test_sending_again_with_the_same_key_sends_nothing_twice(resend_server: FakeResend) -> None:
    mailer = make_mailer(resend_server)
    first = mailer.send(message(idempotency_key="welcome/7"))
    second = mailer.send(message(idempotency_key="welcome/7"))
    assert second.message_id == first.message_id
    assert len(resend_server.requests) == 2
    assert len(resend_server.sent) == 1


def test_the_same_key_with_another_message_is_rejected_quoting_resend(
    resend_server: FakeResend,
) -> None:
    mailer = make_mailer(resend_server)
    mailer.send(message(1, idempotency_key="welcome/7"))
    with pytest.raises(ProviderRejected, match="409 invalid_idempotent_request") as info:
        mailer.send(message(2, idempotency_key="welcome/7"))
    assert info.value.provider_code == 409
    assert len(resend_server.sent) == 1


def test_api_url_defaults_to_the_resend_api_url_environment_variable(
    resend_server: FakeResend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESEND_API_URL", resend_server.url + "/")
    mailer = ResendMailer("re_env", default_sender=SENDER, max_retries=0)
    assert mailer.api_url == resend_server.url
    mailer.send(message())
    assert resend_server.requests[0].authorization == "Bearer re_env"


def test_a_sender_name_with_non_ascii_and_specials_is_kept_readable(
    resend_server: FakeResend,
) -> None:
    make_mailer(resend_server).send(message(sender="Zoë, Support <zoe@example.com>"))
    assert resend_server.requests[0].body["from"] == '"Zoë, Support" <zoe@example.com>'


# ----------------------------------------------------------------------------- bad input


def test_a_message_without_sender_and_no_default_is_refused(resend_server: FakeResend) -> None:
    mailer = make_mailer(resend_server, default_sender=None)
    with pytest.raises(InvalidMessage, match="no sender"):
        mailer.send(message())
    assert resend_server.requests == []


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"has space": "x"}, "tag name 'has space'"),
        ({"kind": "a.b"}, "tag 'kind' value 'a.b'"),
        ({"x" * 257: "v"}, "tag name"),
    ],
)
def test_tags_resend_would_refuse_are_refused_before_sending(
    resend_server: FakeResend, tags: dict[str, str], expected: str
) -> None:
    with pytest.raises(InvalidMessage, match=expected):
        make_mailer(resend_server).send(message(tags=tags))
    assert resend_server.requests == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"to": [], "bcc": "audit@example.com"}, "at least one 'to' recipient"),
        ({"to": [f"u{i}@example.com" for i in range(51)]}, "at most 50"),
    ],
)
def test_recipients_resend_would_refuse_are_refused_before_sending(
    resend_server: FakeResend, kwargs: dict[str, Any], expected: str
) -> None:
    with pytest.raises(InvalidMessage, match=expected):
        make_mailer(resend_server).send(message(**kwargs))
    assert resend_server.requests == []


def test_an_attachment_file_removed_before_sending_is_a_clear_error(
    resend_server: FakeResend, tmp_path: Path
) -> None:
    path = tmp_path / "gone.csv"
    path.write_text("a,b\n")
    msg = message(attachments=[Attachment("gone.csv", path=path)])
    path.unlink()
    with pytest.raises(InvalidMessage, match=r"attachment 'gone.csv': cannot read"):
        make_mailer(resend_server).send(msg)
    assert resend_server.requests == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"api_key": ""}, "api_key must be your Resend API key"),
        ({"api_key": "re_ key"}, "api_key must be your Resend API key"),
        ({"api_url": "ftp://example.com"}, "api_url 'ftp://example.com' must be an http"),
        ({"api_url": 8080}, "api_url 8080 must be an http"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"max_retries": -1}, "max_retries must be an integer >= 0"),
        ({"max_retries": True}, "max_retries must be an integer"),
        ({"backoff": float("nan")}, "backoff must be a finite number"),
        ({"max_retry_after": -1}, "max_retry_after must be >= 0"),
        ({"http_client": object()}, "http_client must be a resend.HTTPClient"),
        ({"default_sender": "not an address"}, "default_sender"),
    ],
)
def test_invalid_options_raise_configuration_error(kwargs: dict[str, Any], expected: str) -> None:
    options: dict[str, Any] = {"api_url": "http://127.0.0.1:9"}
    options.update(kwargs)
    api_key = options.pop("api_key", "re_secret_value")
    with pytest.raises(ConfigurationError, match=expected) as info:
        ResendMailer(api_key, **options)
    assert "re_secret_value" not in str(info.value)


def test_repr_does_not_show_the_api_key() -> None:
    mailer = ResendMailer("re_secret_value", api_url="http://127.0.0.1:9")
    assert "re_secret_value" not in repr(mailer)


# ----------------------------------------------------------------------------- failures


def test_429_is_retried_honoring_retry_after_with_the_same_key(
    resend_server: FakeResend,
) -> None:
    resend_server.script(Scripted.rate_limited("0", times=2))
    result = make_mailer(resend_server).send(message(idempotency_key="k/1"))
    requests = resend_server.requests_to("/emails")
    assert len(requests) == 3
    assert {r.idempotency_key for r in requests} == {"k/1"}
    assert len(resend_server.sent) == 1
    assert result.message_id == resend_server.sent[0]["id"]


def test_retry_after_as_an_http_date_is_honored(resend_server: FakeResend) -> None:
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=5), usegmt=True)
    resend_server.script(Scripted.rate_limited(past))
    make_mailer(resend_server).send(message())
    assert len(resend_server.requests) == 2
    assert len(resend_server.sent) == 1


def test_a_retry_after_beyond_the_cap_gives_up_at_once(resend_server: FakeResend) -> None:
    resend_server.script(Scripted.rate_limited("3600"))
    with pytest.raises(ProviderUnavailable, match=r"retry after 3600 s.*max_retry_after") as info:
        make_mailer(resend_server, max_retry_after=60).send(message())
    assert info.value.provider_code == 429
    assert len(resend_server.requests) == 1
    assert resend_server.sent == []


def test_a_quota_429_is_not_retried(resend_server: FakeResend) -> None:
    resend_server.script(
        Scripted.error(429, "daily_quota_exceeded", "You have reached your daily quota.")
    )
    with pytest.raises(ProviderUnavailable, match="daily_quota_exceeded: You have reached"):
        make_mailer(resend_server).send(message())
    assert len(resend_server.requests) == 1


def test_a_503_then_success_sends_once(resend_server: FakeResend) -> None:
    resend_server.script(Scripted.server_error(503))
    result = make_mailer(resend_server).send(message())
    assert len(resend_server.requests) == 2
    assert [s["id"] for s in resend_server.sent] == [result.message_id]


def test_a_provider_that_keeps_answering_500_gives_provider_unavailable(
    resend_server: FakeResend,
) -> None:
    resend_server.script(Scripted.server_error(500, times=None))
    with pytest.raises(ProviderUnavailable) as info:
        make_mailer(resend_server, max_retries=3).send(message())
    assert len(resend_server.requests) == 4
    error = info.value
    assert "Resend answered 500 application_error: Something went wrong" in str(error)
    assert "after 4 attempts" in str(error)
    assert (error.provider, error.provider_code) == ("resend", 500)
    assert error.provider_message == "application_error: Something went wrong on our side."


def test_an_html_error_page_from_a_proxy_is_retried_and_reported(
    resend_server: FakeResend,
) -> None:
    resend_server.script(
        Scripted(502, "<html>Bad gateway</html>", {"content-type": "text/html"}, times=None)
    )
    with pytest.raises(ProviderUnavailable, match="Resend answered 502") as info:
        make_mailer(resend_server, max_retries=1).send(message())
    assert info.value.provider_code == 502
    assert len(resend_server.requests) == 2


def test_422_is_rejected_without_retry_quoting_resend(resend_server: FakeResend) -> None:
    resend_server.script(
        Scripted.error(422, "validation_error", "Invalid `to` field. Use `email@example.com`.")
    )
    with pytest.raises(ProviderRejected) as info:
        make_mailer(resend_server).send(message())
    assert len(resend_server.requests) == 1
    assert "422 validation_error: Invalid `to` field" in str(info.value)
    assert info.value.provider_code == 422


def test_401_is_rejected_without_retry(resend_server: FakeResend) -> None:
    resend_server.script(Scripted.error(401, "restricted_api_key", "This key can only send."))
    with pytest.raises(ProviderRejected, match="401 restricted_api_key"):
        make_mailer(resend_server).send(message())
    assert len(resend_server.requests) == 1


def test_a_wrong_key_is_rejected_and_never_quoted() -> None:
    server = FakeResend(api_keys={"re_good"}).start()
    try:
        with pytest.raises(ProviderRejected, match="403 invalid_api_key") as info:
            make_mailer(server, api_key="re_wrong_secret").send(message())
    finally:
        server.stop()
    assert "re_wrong_secret" not in str(info.value)
    assert len(server.requests) == 1


def test_connection_refused_gives_provider_unavailable_after_the_retries() -> None:
    mailer = ResendMailer(
        "re_x",
        default_sender=SENDER,
        api_url=f"http://127.0.0.1:{closed_port()}",
        backoff=0,
        max_retries=1,
    )
    with pytest.raises(ProviderUnavailable, match="could not reach Resend") as info:
        mailer.send(message())
    assert info.value.provider_code == "network"
    assert "after 2 attempts" in str(info.value)


# ----------------------------------------------------------------------------- send_many


def test_send_many_splits_batches_of_100_and_sends_attachments_one_by_one(
    resend_server: FakeResend,
) -> None:
    messages = [message(i) for i in range(250)]
    messages[5] = message(5, attachments=[Attachment("a.txt", b"a")])
    messages[200] = message(200, attachments=[Attachment("b.txt", b"b")])
    results = make_mailer(resend_server).send_many(messages)

    batches = resend_server.requests_to("/emails/batch")
    assert [len(r.body) for r in batches] == [100, 100, 48]
    keys = [r.idempotency_key for r in batches]
    assert all(k is not None and k.startswith("batch/") for k in keys)
    assert len(set(keys)) == 3
    assert all("attachments" not in item for r in batches for item in r.body)
    singles = resend_server.requests_to("/emails")
    assert [r.body["subject"] for r in singles] == ["m5", "m200"]
    assert [r.idempotency_key for r in singles] == [
        results[5].idempotency_key,
        results[200].idempotency_key,
    ]
    # Results keep the input order and carry the ids the server gave each message.
    assert len(results) == 250
    ids_by_subject = {s["subject"]: s["id"] for s in resend_server.sent}
    assert [r.message_id for r in results] == [ids_by_subject[f"m{i}"] for i in range(250)]
    assert results[7].accepted == ("user7@example.com",)
    assert len({r.idempotency_key for r in results}) == 250


def test_a_failed_batch_is_reported_and_retrying_sends_nothing_twice(
    resend_server: FakeResend,
) -> None:
    messages = [message(i, idempotency_key=f"order/{i}") for i in range(150)]
    resend_server.script(
        Scripted.server_error(
            503, times=None, path="/emails/batch", match=lambda r: r.body[0]["subject"] == "m100"
        )
    )
    mailer = make_mailer(resend_server, max_retries=1)
    with pytest.raises(BatchDeliveryError) as info:
        mailer.send_many(messages)
    error = info.value
    assert [index for index, _ in error.sent] == list(range(100))
    assert [index for index, _ in error.failed] == list(range(100, 150))
    assert all(isinstance(e, ProviderUnavailable) for _, e in error.failed)
    assert "503" in str(error.failed[0][1])
    assert len(resend_server.sent) == 100
    first_ids = [result.message_id for _, result in error.sent]

    # The provider recovers; the caller retries the whole list with the same keys.
    resend_server.clear_scripts()
    results = mailer.send_many(messages)
    assert [r.message_id for r in results[:100]] == first_ids
    assert len(resend_server.sent) == 150
    assert sorted(s["subject"] for s in resend_server.sent) == sorted(f"m{i}" for i in range(150))


def test_send_many_keeps_going_past_an_invalid_message(resend_server: FakeResend) -> None:
    messages = [message(0), message(1, tags={"bad tag": "x"}), message(2)]
    with pytest.raises(BatchDeliveryError) as info:
        make_mailer(resend_server).send_many(messages)
    assert [index for index, _ in info.value.sent] == [0, 2]
    ((index, error),) = info.value.failed
    assert index == 1
    assert isinstance(error, InvalidMessage)
    assert sorted(s["subject"] for s in resend_server.sent) == ["m0", "m2"]


def test_a_batch_of_one_goes_through_the_single_endpoint(resend_server: FakeResend) -> None:
    (result,) = make_mailer(resend_server).send_many([message(idempotency_key="only/1")])
    (request,) = resend_server.requests
    assert request.path == "/emails"
    assert request.idempotency_key == result.idempotency_key == "only/1"


def test_an_answer_without_ids_is_a_delivery_error(resend_server: FakeResend) -> None:
    resend_server.script(Scripted(200, {"data": []}, path="/emails/batch"))
    with pytest.raises(BatchDeliveryError) as info:
        make_mailer(resend_server).send_many([message(0), message(1)])
    assert all(
        type(e) is DeliveryError and "without 2 email ids" in str(e) for _, e in info.value.failed
    )


# ----------------------------------------------------------------------------- SDK state


def test_two_mailers_in_threads_each_send_with_their_own_key() -> None:
    server = FakeResend(api_keys={"re_alpha", "re_beta"}).start()
    try:
        mailers = {
            "alpha": make_mailer(server, api_key="re_alpha"),
            "beta": make_mailer(server, api_key="re_beta"),
        }
        barrier = threading.Barrier(8)

        def work(worker: int) -> None:
            name = "alpha" if worker % 2 else "beta"
            barrier.wait()
            for i in range(10):
                mailers[name].send(message(worker * 100 + i, subject=f"{name}-{worker}-{i}"))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(8)))
    finally:
        server.stop()
    assert len(server.sent) == 80
    for sent in server.sent:
        assert sent["api_key"] == "re_" + sent["subject"].split("-")[0]


def test_the_sdk_globals_are_left_alone_and_direct_sdk_use_still_works(
    resend_server: FakeResend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resend, "api_key", "re_global")
    monkeypatch.setattr(resend, "api_url", resend_server.url)
    make_mailer(resend_server, api_key="re_mailer").send(message(1))
    assert (resend.api_key, resend.api_url) == ("re_global", resend_server.url)
    resend.Emails.send(
        {"from": "a@example.com", "to": ["b@example.com"], "subject": "direct", "text": "x"}
    )
    assert [r.authorization for r in resend_server.requests] == [
        "Bearer re_mailer",
        "Bearer re_global",
    ]


def test_a_custom_http_client_is_used(resend_server: FakeResend) -> None:
    calls: list[str] = []

    class Recording(resend.RequestsClient):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(kwargs["url"])
            return super().request(*args, **kwargs)

    make_mailer(resend_server, http_client=Recording()).send(message())
    assert calls == [resend_server.url + "/emails"]


# ----------------------------------------------------------------------------- async


async def test_asend_and_asend_many(resend_server: FakeResend) -> None:
    mailer = make_mailer(resend_server)
    one = await mailer.asend(message(0))
    many = await mailer.asend_many([message(1), message(2)])
    assert [r.message_id for r in (one, *many)] == [s["id"] for s in resend_server.sent]
    assert [r.path for r in resend_server.requests] == ["/emails", "/emails/batch"]
