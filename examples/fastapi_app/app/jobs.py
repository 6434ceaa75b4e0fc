"""Background jobs (kit-jobs): the welcome mail (kit-mail) and the projects report
(kit-storage). Arguments are JSON (ids as strings); each job re-reads what it needs.

The request id, tenant and user bound in the log context when a request enqueues a job
are bound again while the job runs (kit-jobs does it), so the log lines below carry the
request id of the request that asked for them.
"""

from __future__ import annotations

import csv
import io
import uuid

import structlog
from sqlalchemy import select

from app.job_resources import resources
from app.models import Project, Report, User
from kit_db import tenant_context
from kit_jobs import Retry, job
from kit_mail import Message

__all__ = ["build_report", "send_welcome_mail"]

log = structlog.get_logger("app.jobs")


@job(retry=Retry(max=3, backoff=1), unique="{user_id}", timeout=60)
def send_welcome_mail(user_id: str, tenant_id: str) -> str:
    """Mail a user who signed in for the first time; deduplicated per user for an hour,
    and idempotent at the provider (one idempotency key per user)."""
    r = resources()
    with tenant_context(tenant_id), r.database.session() as session:
        user = session.get(User, uuid.UUID(user_id))
        if user is None:
            log.warning("welcome_mail_skipped", user_id=user_id, reason="no such user")
            return "skipped"
        email, name = user.email, user.name or user.email
    result = r.mailer.send(
        Message(
            sender=r.settings.mail_from,
            to=email,
            subject="Welcome to the kit demo",
            text=f"Hello {name},\n\nyour account in {tenant_id} is ready.\n",
            tags={"kind": "welcome"},
            idempotency_key=f"welcome/{user_id}",
        )
    )
    log.info("welcome_mail_sent", to=email, message_id=result.message_id, provider=result.provider)
    return result.message_id


@job(retry=Retry(max=3, backoff=1), timeout=300, concurrency=2)
def build_report(report_id: str, tenant_id: str) -> dict[str, object]:
    """Write the tenant's live projects as CSV into storage and mark the report ready."""
    r = resources()
    rid = uuid.UUID(report_id)
    with tenant_context(tenant_id):
        with r.database.session() as session:
            projects = session.scalars(select(Project).order_by(Project.created_at)).all()
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(["id", "name", "created_at"])
            for project in projects:
                writer.writerow([project.id, project.name, project.created_at.isoformat()])
        key = f"reports/{tenant_id}/{report_id}.csv"
        info = r.storage.put(key, buffer.getvalue().encode(), content_type="text/csv")
        with r.database.begin() as session:
            report = session.get(Report, rid)
            if report is None:
                raise LookupError(f"report {report_id} is gone")
            report.status = "ready"
            report.storage_key = key
            report.size = info.size
            report.rows = len(projects)
    log.info("report_built", report_id=report_id, key=key, rows=len(projects), size=info.size)
    return {"key": key, "size": info.size, "rows": len(projects)}
