"""The board's pages and actions.

Forms post here and get a redirect back to the board (303); the same URLs answer JSON
clients (``Accept: application/json``, JSON bodies with the ``X-CSRF-Token`` header) with
JSON and RFC 9457 problems.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from kit_auth import RequestInfo
from kit_auth.flask import rate_limit
from kit_db import uuid7
from kit_jobs import JobNotFound, KitJobsError
from kit_mail import Message
from kit_storage.flask import save_upload_from_request

from .auth import admin_required, current_user, login_required, login_url, sign_out
from .extensions import cache, db, jobs, mail, storage
from .models import BODY_MAX, TITLE_MAX, Attachment, Card, Export, User
from .problems import NotFound, ValidationFailed, wants_html
from .tasks import export_board

__all__ = ["ALLOWED_TYPES", "MAX_ATTACHMENT_BYTES", "bp"]

bp = Blueprint("board", __name__)

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
ALLOWED_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "text/markdown",
)
LINK_SECONDS = 300  # signed download links live five minutes
MOVES = ("up", "down", "top", "bottom")


# -- helpers -----------------------------------------------------------------------------


def _payload() -> Mapping[str, Any]:
    if request.is_json:
        data = request.get_json()
        if not isinstance(data, dict):
            raise ValidationFailed({"body": "send a JSON object"})
        return data
    return request.form


def _text(
    data: Mapping[str, Any], name: str, errors: dict[str, str], *, limit: int, required: bool
) -> str:
    """The stripped string field ``name``; a problem with it goes into ``errors``."""
    value = data.get(name, "")
    if not isinstance(value, str):
        errors[name] = "must be a string"
        return ""
    stripped: str = value.strip()
    if required and not stripped:
        errors[name] = "must not be empty"
    elif len(stripped) > limit:
        errors[name] = f"must be at most {limit} characters (got {len(stripped)})"
    return stripped


def _card(card_id: uuid.UUID) -> Card:
    card = db.session.get(Card, card_id)
    if card is None:  # soft-deleted cards are not found either
        raise NotFound(f"There is no card {card_id} on the board.")
    return card


def _back_to(anchor: str | None = None) -> ResponseReturnValue:
    target = url_for("board.index")
    return redirect(f"{target}#{anchor}" if anchor else target, code=303)


def _card_json(card: Card) -> dict[str, Any]:
    return {
        "id": str(card.id),
        "title": card.title,
        "body": card.body,
        "position": card.position,
        "author": card.author.email,
        "attachments": [
            {
                "id": str(a.id),
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "url": url_for("board.attachment", attachment_id=a.id),
            }
            for a in card.attachments
        ],
    }


def _export_json(export: Export) -> dict[str, Any]:
    job_status = None
    if export.job_id:
        try:
            job_status = str(jobs().get(export.job_id).status())
        except JobNotFound:  # the thread backend forgets jobs on restart
            job_status = None
    return {
        "id": str(export.id),
        "status": export.status,
        "job_status": job_status,
        "rows": export.rows,
        "error": export.error,
        "status_url": url_for("board.export_status", export_id=export.id),
        "download_url": (
            url_for("board.export_download", export_id=export.id)
            if export.status == "finished"
            else None
        ),
    }


def _display_name(raw: str | None) -> str:
    """The uploaded file's name, for display and as the download name only."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:200] or "attachment"


@cache.cached(ttl=60, key="board-stats", tags=["board"])
def board_stats() -> dict[str, int]:
    """Counts shown in the header; cached (kit-cache) and dropped on every change."""
    cards = db.session.scalar(select(func.count()).select_from(Card)) or 0
    files = db.session.scalar(
        select(func.count(Attachment.id)).join(Card, Attachment.card_id == Card.id)
    )
    return {"cards": cards, "attachments": files or 0}


def _board_changed() -> None:
    cache.cache.invalidate_tags("board")


# -- pages -------------------------------------------------------------------------------


@bp.get("/signin")
def signin() -> ResponseReturnValue:
    user = current_user()
    if user is not None and user.status == "active":
        return redirect(url_for("board.index"))
    return render_template("signin.html", login_url=login_url(), user=user)


@bp.post("/signout")
def signout() -> ResponseReturnValue:
    sign_out()
    return redirect(url_for("board.signin"), code=303)


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    cards = db.session.scalars(Card.ordered()).all()
    user = current_user()
    assert user is not None
    if not wants_html():
        return jsonify(cards=[_card_json(c) for c in cards])
    exports = db.session.scalars(
        select(Export)
        .where(Export.requested_by == user.id)
        .order_by(Export.created_at.desc())
        .limit(5)
    ).all()
    return render_template(
        "board.html",
        cards=cards,
        exports=[_export_json(e) for e in exports],
        stats=board_stats(),
        allowed_types=",".join(ALLOWED_TYPES),
    )


# -- cards -------------------------------------------------------------------------------


@bp.post("/cards")
@login_required
def create_card() -> ResponseReturnValue:
    data = _payload()
    errors: dict[str, str] = {}
    title = _text(data, "title", errors, limit=TITLE_MAX, required=True)
    body = _text(data, "body", errors, limit=BODY_MAX, required=False)
    if errors:
        raise ValidationFailed(errors)
    user = current_user()
    assert user is not None
    card = Card(title=title, body=body, author_id=user.id)
    db.session.add(card)
    db.session.commit()
    _board_changed()
    if wants_html():
        return _back_to(f"card-{card.id}")
    return jsonify(_card_json(card)), 201


@bp.post("/cards/<uuid:card_id>/move")
@login_required
def move_card(card_id: uuid.UUID) -> ResponseReturnValue:
    data = _payload()
    direction = data.get("direction")
    target = data.get("to")
    if direction is None and target is None:
        raise ValidationFailed({"direction": f"give one of {', '.join(MOVES)}, or 'to'"})
    if direction is not None and direction not in MOVES:
        raise ValidationFailed({"direction": f"must be one of {', '.join(MOVES)}"})
    index: int | None = None
    if direction is None:
        try:
            index = int(target)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValidationFailed({"to": "must be a whole number (0 is the top)"}) from None
    Card.lock_ordering(db.session())  # the whole board is one list: lock it, then read
    card = _card(card_id)
    if index is not None:
        card.move_to(index)
    elif direction == "up":
        card.move_up()
    elif direction == "down":
        card.move_down()
    elif direction == "top":
        card.move_top()
    else:
        card.move_bottom()
    db.session.commit()
    if wants_html():
        return _back_to(f"card-{card.id}")
    order = db.session.scalars(Card.ordered()).all()
    return jsonify(cards=[{"id": str(c.id), "position": c.position} for c in order])


@bp.post("/cards/<uuid:card_id>/delete")
@login_required
def delete_card(card_id: uuid.UUID) -> ResponseReturnValue:
    card = _card(card_id)
    card.soft_delete()  # leaves the list; the cards below move up
    db.session.commit()
    _board_changed()
    if wants_html():
        return _back_to()
    return "", 204


# -- attachments -------------------------------------------------------------------------


@bp.post("/cards/<uuid:card_id>/attachments")
@login_required
def upload_attachment(card_id: uuid.UUID) -> ResponseReturnValue:
    card = _card(card_id)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationFailed({"file": "choose a file to upload"})
    user = current_user()
    assert user is not None
    attachment_id = uuid7()
    key = f"cards/{card.id}/{attachment_id}"
    info = save_upload_from_request(
        storage(), key, "file", max_bytes=MAX_ATTACHMENT_BYTES, allowed_types=ALLOWED_TYPES
    )
    attachment = Attachment(
        id=attachment_id,
        key=key,
        filename=_display_name(upload.filename),
        content_type=info.content_type,
        size=info.size,
        uploaded_by=user.id,
    )
    card.attachments.append(attachment)  # sets card_id, keeps the loaded list current
    try:
        db.session.commit()
    except Exception:
        storage().delete(key)  # no row, no file
        raise
    _board_changed()
    if wants_html():
        return _back_to(f"card-{card.id}")
    return jsonify(_card_json(card)), 201


@bp.get("/attachments/<uuid:attachment_id>")
@login_required
def attachment(attachment_id: uuid.UUID) -> ResponseReturnValue:
    """Check access here, then hand the browser a short-lived signed link: kit-storage's
    file route (LocalStorage) or Google Cloud Storage serves the bytes."""
    found = db.session.get(Attachment, attachment_id)
    if found is None or db.session.get(Card, found.card_id) is None:
        raise NotFound(f"There is no attachment {attachment_id}.")
    url = storage().url(found.key, expires_in=LINK_SECONDS, download_name=found.filename)
    return redirect(url, code=303)


# -- exports -----------------------------------------------------------------------------


def _per_user(info: RequestInfo) -> str:
    return f"exports:{session.get('uid') or info.remote_addr}"


@bp.post("/exports")
@login_required
@rate_limit("10/minute", key=_per_user)
def start_export() -> ResponseReturnValue:
    user = current_user()
    assert user is not None
    export = Export(requested_by=user.id)
    db.session.add(export)
    db.session.commit()  # the job reads the row: commit before enqueueing
    try:
        ref = jobs().enqueue(export_board, str(export.id))
    except KitJobsError as exc:  # Redis down: 503 problem+json from KitJobs
        export.status, export.error = "failed", "the job queue cannot be reached"
        db.session.commit()
        raise exc
    export.job_id = ref.id
    db.session.commit()
    if wants_html():
        return _back_to("exports")
    return jsonify(_export_json(export)), 202


def _own_export(export_id: uuid.UUID) -> Export:
    user = current_user()
    assert user is not None
    export = db.session.get(Export, export_id)
    if export is None or (export.requested_by != user.id and not user.is_admin):
        raise NotFound(f"There is no export {export_id}.")
    return export


@bp.get("/exports/<uuid:export_id>")
@login_required
def export_status(export_id: uuid.UUID) -> ResponseReturnValue:
    """The export's status as JSON; the board's script polls it until it is finished."""
    export = _own_export(export_id)
    db.session.refresh(export)
    response = jsonify(_export_json(export))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/exports/<uuid:export_id>/download")
@login_required
def export_download(export_id: uuid.UUID) -> ResponseReturnValue:
    export = _own_export(export_id)
    if export.status != "finished" or export.key is None:
        raise NotFound(f"Export {export_id} is {export.status}: there is nothing to download yet.")
    name = f"board-{export.created_at:%Y%m%d-%H%M%S}.csv"
    return redirect(storage().url(export.key, expires_in=LINK_SECONDS, download_name=name), 303)


# -- admin -------------------------------------------------------------------------------


@bp.get("/admin")
@admin_required
def admin() -> ResponseReturnValue:
    users = db.session.scalars(select(User).order_by(User.created_at)).all()
    if not wants_html():
        return jsonify(
            users=[
                {"id": str(u.id), "email": u.email, "role": u.role, "status": u.status}
                for u in users
            ]
        )
    return render_template("admin.html", users=users)


@bp.post("/admin/users/<uuid:user_id>/approve")
@admin_required
def approve(user_id: uuid.UUID) -> ResponseReturnValue:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"There is no user {user_id}.")
    if user.status != "active":
        user.status = "active"
        db.session.commit()
        if user.email:
            mail.send(
                Message(
                    to=user.email,
                    subject="You can use the team board now",
                    text="An administrator approved your account. Sign in again to start.",
                    idempotency_key=f"approved/{user.id}",
                )
            )
    if wants_html():
        return redirect(url_for("board.admin"), code=303)
    return jsonify(id=str(user.id), status=user.status)


# -- health ------------------------------------------------------------------------------


@bp.get("/health")
def health() -> ResponseReturnValue:
    """Each kit's own health check (``ping()``), where the kit has one."""
    checks: dict[str, bool] = {
        "database": db.database.ping(timeout=2.0),
        "cache": cache.cache.ping(),
    }
    for name, thing in (("jobs", jobs()), ("storage", storage()), ("mail", mail.mailer)):
        ping = getattr(thing, "ping", None)
        if callable(ping):
            checks[name] = bool(ping())
    ok = all(checks.values())
    return jsonify(status="ok" if ok else "degraded", checks=checks), 200 if ok else 503
