"""Reports: a row per request, a background job (kit-jobs) that writes the CSV into
storage (kit-storage), and a signed download link once it is ready."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Security
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from app.deps import Dependencies
from app.jobs import build_report
from app.models import Report
from app.schemas import ReportOut
from kit_auth import Principal
from kit_db import NotFound
from kit_jobs import JobNotFound, JobStatus
from kit_storage import AsyncStorage

__all__ = ["reports_router"]


def reports_router(deps: Dependencies) -> APIRouter:
    services = deps.services
    auth = services.security.auth
    storage = AsyncStorage(services.storage)
    Session = Annotated[AsyncSession, Depends(deps.session)]
    Requester = Annotated[Principal, Security(auth.principal, scopes=["reports:write"])]
    Reader = Annotated[Principal, Security(auth.principal, scopes=["reports:read"])]
    router = APIRouter(prefix="/api/reports", tags=["reports"], dependencies=[deps.rate_limited])

    @router.post("", status_code=202)
    async def request_report(caller: Requester, session: Session) -> ReportOut:
        report = Report(requested_by=uuid.UUID(caller.id))
        session.add(report)
        await session.commit()  # the job must find the row, whichever process runs it
        assert report.tenant_id is not None
        ref = await run_in_threadpool(
            services.jobs.enqueue, build_report, str(report.id), report.tenant_id
        )
        report.job_id = ref.id
        return ReportOut(id=report.id, status=report.status, job_id=ref.id)

    @router.get("/{report_id}")
    async def get_report(report_id: uuid.UUID, caller: Reader, session: Session) -> ReportOut:
        report = await session.get(Report, report_id)
        if report is None:
            raise NotFound(f"report {report_id}")
        status = report.status
        if status == "pending" and report.job_id:
            try:
                job = await run_in_threadpool(services.jobs.info, report.job_id)
            except JobNotFound:
                pass
            else:
                if job.status in (JobStatus.FAILED, JobStatus.CANCELED):
                    status = "failed"
        url = None
        if status == "ready" and report.storage_key:
            url = await storage.url(
                report.storage_key, expires_in=300, download_name="projects.csv"
            )
        return ReportOut(
            id=report.id,
            status=status,
            job_id=report.job_id,
            rows=report.rows,
            size=report.size,
            download_url=url,
        )

    return router
