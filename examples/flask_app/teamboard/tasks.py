"""Background jobs (kit-jobs). They run with the app's context pushed (``KitJobs`` does
that on every backend), so ``db.session``, the storage and the mailer are the app's.

On the default ``thread`` backend they run in the web process; with ``JOBS_BACKEND=rq``
(or ``REDIS_URL``) they run in ``flask --app teamboard kit-jobs worker``.
"""

from __future__ import annotations

import csv
import io
import uuid

from sqlalchemy import select

from kit_db import utcnow
from kit_jobs import job
from kit_mail import Message

from .extensions import db, mail, storage
from .models import Card, Export, User, begin_write

__all__ = ["export_board"]


@job(timeout=120)
def export_board(export_id: str) -> int:
    """Write the board as CSV into storage under ``exports/<id>.csv``; return the row count.

    Idempotent (rq delivers at least once): a finished export is left as it is, and a
    rerun overwrites the same key.
    """
    begin_write(db.session())  # SQLite: one writer from the start (see begin_write)
    export = db.session.get(Export, uuid.UUID(export_id))
    if export is None:
        raise LookupError(f"export {export_id} does not exist")
    if export.status == "finished" and export.rows is not None:
        return export.rows
    export.status = "running"
    try:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["position", "title", "body", "author", "attachments", "created_at"])
        cards = db.session.scalars(Card.ordered()).all()
        for card in cards:
            writer.writerow(
                [
                    card.position + 1,
                    card.title,
                    card.body,
                    card.author.email,
                    len(card.attachments),
                    card.created_at.isoformat(),
                ]
            )
        db.session.commit()  # "running", and the lock is released before the upload
        key = f"exports/{export.id}.csv"
        storage().put(key, buffer.getvalue().encode(), content_type="text/csv; charset=utf-8")
    except Exception as exc:
        db.session.rollback()
        begin_write(db.session())
        export.status = "failed"
        export.error = f"{type(exc).__name__}: {exc}"[:500]
        db.session.commit()
        raise
    export.status = "finished"
    export.key = key
    export.rows = len(cards)
    export.finished_at = utcnow()
    db.session.commit()
    requester = db.session.scalar(select(User).where(User.id == export.requested_by))
    if requester is not None and requester.email:
        mail.send(
            Message(
                to=requester.email,
                subject="Your board export is ready",
                text=f"The export of {len(cards)} cards is ready on the board.",
                idempotency_key=f"export-ready/{export.id}",
            )
        )
    return len(cards)
