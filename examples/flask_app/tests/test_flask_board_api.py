"""The board without a browser: Flask's test client, JSON requests, RFC 9457 problems."""

from __future__ import annotations

import csv
import io
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from board_helpers import AppFactory, add_user, signed_in
from flask import Flask
from flask.testing import FlaskClient
from teamboard import SettingsError, create_app
from teamboard.extensions import db, mail
from teamboard.models import Attachment, Card

PROBLEM = "application/problem+json"
Admin = tuple[Flask, FlaskClient, dict[str, str]]


def _wait_for_export(client: FlaskClient, headers: dict[str, str], url: str) -> dict[str, object]:
    """Poll the status endpoint until the job is done (the bound is a safety net only)."""
    deadline = time.monotonic() + 60
    while True:
        body: dict[str, object] = client.get(url, headers=headers).get_json()
        if body["status"] in ("finished", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_card_validation_errors_are_problem_json(admin: Admin) -> None:
    _app, client, headers = admin
    response = client.post("/cards", json={"title": "   ", "body": "x" * 2001}, headers=headers)
    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["type"] == "https://kit.dev/problems/validation-error"
    assert problem["status"] == 422
    assert {e["field"]: e["message"] for e in problem["errors"]} == {
        "title": "must not be empty",
        "body": "must be at most 2000 characters (got 2001)",
    }

    response = client.post("/cards", json=["not", "an", "object"], headers=headers)
    assert response.status_code == 422
    assert response.get_json()["errors"] == [{"field": "body", "message": "send a JSON object"}]

    response = client.post("/cards", json={"title": 42}, headers=headers)
    assert response.get_json()["errors"] == [{"field": "title", "message": "must be a string"}]


def test_browsers_get_the_problem_as_a_page(admin: Admin) -> None:
    _app, client, headers = admin
    response = client.post(
        "/cards",
        data={"title": "", "csrf_token": headers["X-CSRF-Token"]},
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )
    assert response.status_code == 422
    assert response.mimetype == "text/html"
    assert "must not be empty" in response.get_data(as_text=True)


def test_cards_are_created_and_reordered(admin: Admin) -> None:
    app, client, headers = admin
    ids = [
        client.post("/cards", json={"title": title}, headers=headers).get_json()["id"]
        for title in ("alpha", "beta", "gamma")
    ]
    response = client.post(f"/cards/{ids[2]}/move", json={"direction": "up"}, headers=headers)
    assert response.status_code == 200
    assert [c["id"] for c in response.get_json()["cards"]] == [ids[0], ids[2], ids[1]]
    response = client.post(f"/cards/{ids[1]}/move", json={"to": 0}, headers=headers)
    assert [c["position"] for c in response.get_json()["cards"]] == [0, 1, 2]
    assert [c["id"] for c in response.get_json()["cards"]] == [ids[1], ids[0], ids[2]]

    assert client.post(f"/cards/{ids[0]}/delete", headers=headers).status_code == 204
    board = client.get("/", headers=headers).get_json()["cards"]
    assert [(c["title"], c["position"]) for c in board] == [("beta", 0), ("gamma", 1)]
    with app.app_context():  # kit-db soft delete: the row stays, out of the list
        assert db.session.get(Card, uuid.UUID(ids[0])) is None


def test_move_validation(admin: Admin) -> None:
    _app, client, headers = admin
    card = client.post("/cards", json={"title": "alpha"}, headers=headers).get_json()["id"]
    response = client.post(f"/cards/{card}/move", json={"direction": "sideways"}, headers=headers)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "direction"
    response = client.post(f"/cards/{card}/move", json={"to": "first"}, headers=headers)
    assert response.get_json()["errors"] == [
        {"field": "to", "message": "must be a whole number (0 is the top)"}
    ]
    response = client.post(f"/cards/{uuid.uuid4()}/move", json={"to": 0}, headers=headers)
    assert response.status_code == 404
    assert response.mimetype == PROBLEM


def test_pending_user_gets_403_with_reason_pending(make_app: AppFactory) -> None:
    app = make_app()
    add_user(app, "ann@example.com", role="admin")
    client, headers = signed_in(app, add_user(app, "bob@example.com", status="pending"))
    response = client.get("/", headers=headers)
    assert response.status_code == 403
    assert response.mimetype == PROBLEM
    problem = response.get_json()
    assert problem["reason"] == "pending"
    assert problem["type"] == "https://kit.dev/problems/inactive-account"
    assert client.post("/cards", json={"title": "x"}, headers=headers).status_code == 403

    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 403
    assert "waiting for an administrator" in page.get_data(as_text=True)


def test_admin_pages_need_the_admin_role(make_app: AppFactory) -> None:
    app = make_app()
    client, headers = signed_in(app, add_user(app, "bob@example.com"))
    response = client.get("/admin", headers=headers)
    assert response.status_code == 403
    assert response.get_json()["type"] == "https://kit.dev/problems/missing-role"
    anonymous = app.test_client().get("/admin", headers={"Accept": "application/json"})
    assert anonymous.status_code == 401
    assert anonymous.mimetype == PROBLEM
    curl = app.test_client().get("/", headers={"Accept": "*/*"})  # not a browser: no redirect
    assert (curl.status_code, curl.mimetype) == (401, PROBLEM)
    browser = app.test_client().get("/", headers={"Accept": "text/html,*/*;q=0.8"})
    assert (browser.status_code, browser.headers["Location"]) == (302, "/signin")


def test_approval_activates_and_mails(admin: Admin) -> None:
    app, client, headers = admin
    bob = add_user(app, "bob@example.com", status="pending")
    response = client.post(f"/admin/users/{bob}/approve", headers=headers)
    assert response.get_json() == {"id": bob, "status": "active"}
    bob_client, bob_headers = signed_in(app, bob)
    assert bob_client.get("/", headers=bob_headers).status_code == 200
    with app.app_context():
        assert [m.subject for m in mail.outbox] == ["You can use the team board now"]


def test_state_changes_need_the_csrf_token(admin: Admin) -> None:
    _app, client, headers = admin
    response = client.post("/cards", json={"title": "x"}, headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["type"] == "https://kit.dev/problems/csrf-failed"
    forged = {**headers, "X-CSRF-Token": "forged"}
    assert client.post("/cards", json={"title": "x"}, headers=forged).status_code == 400


def test_attachments_are_checked_stored_and_served_by_signed_link(admin: Admin) -> None:
    app, client, headers = admin
    card = client.post("/cards", json={"title": "alpha"}, headers=headers).get_json()["id"]

    def upload(name: str, data: bytes, content_type: str) -> object:
        return client.post(
            f"/cards/{card}/attachments",
            data={"file": (io.BytesIO(data), name, content_type)},
            headers=headers,
        )

    refused = upload("fake.png", b"just some text\n", "image/png")  # kit-storage sniffs bytes
    assert refused.status_code == 415  # type: ignore[attr-defined]
    assert refused.mimetype == PROBLEM  # type: ignore[attr-defined]
    missing = client.post(f"/cards/{card}/attachments", data={}, headers=headers)
    assert missing.get_json()["errors"] == [{"field": "file", "message": "choose a file to upload"}]
    with app.app_context():
        assert db.session.query(Attachment).count() == 0

    stored = upload("notes.txt", b"meeting notes\n", "text/plain").get_json()  # type: ignore[attr-defined]
    attachment = stored["attachments"][0]
    assert (attachment["filename"], attachment["size"]) == ("notes.txt", 14)

    link = client.get(attachment["url"], headers=headers)
    assert link.status_code == 303
    signed = link.headers["Location"]
    assert urlsplit(signed).path.startswith("/files/cards/")
    download = client.get(signed)
    assert download.status_code == 200
    assert download.data == b"meeting notes\n"
    assert "notes.txt" in download.headers["Content-Disposition"]

    parts = urlsplit(signed)
    query = dict(parse_qsl(parts.query))
    query["sig"] = query["sig"][:-2] + ("AA" if not query["sig"].endswith("AA") else "BB")
    tampered = client.get(f"{parts.path}?{urlencode(query)}")
    assert tampered.status_code == 403
    assert tampered.mimetype == PROBLEM
    anonymous = app.test_client().get(attachment["url"], headers={"Accept": "application/json"})
    assert anonymous.status_code == 401


def test_export_runs_in_the_background(admin: Admin) -> None:
    app, client, headers = admin
    for title in ("alpha", "beta"):
        client.post("/cards", json={"title": title}, headers=headers)
    started = client.post("/exports", headers=headers)
    assert started.status_code == 202
    assert "RateLimit" in started.headers  # kit-auth's rate limit on exports
    export = _wait_for_export(client, headers, started.get_json()["status_url"])
    assert export["status"] == "finished"
    assert export["job_status"] == "finished"
    assert export["rows"] == 2
    link = client.get(str(export["download_url"]), headers=headers)
    text = client.get(link.headers["Location"]).get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:2] == ["position", "title"]
    assert [row[:2] for row in rows[1:]] == [["1", "alpha"], ["2", "beta"]]
    with app.app_context():
        assert [m.subject for m in mail.outbox] == ["Your board export is ready"]


def test_bad_settings_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="JOBS_BACKEND=rq needs REDIS_URL"):
        create_app({"VAR_DIR": str(tmp_path), "JOBS_BACKEND": "rq"})
    with pytest.raises(SettingsError, match="STORAGE_URL="):
        create_app({"VAR_DIR": str(tmp_path), "STORAGE_URL": "s3://bucket"})
    with pytest.raises(SettingsError, match="SECRET_KEY must be at least 32 bytes"):
        create_app({"VAR_DIR": str(tmp_path), "SECRET_KEY": "short"})
