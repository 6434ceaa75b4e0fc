"""The same board switched to servers by environment variables only: PostgreSQL for the
database, Redis for the cache, the rate limits and the RQ job queue, and a real
``flask --app teamboard kit-jobs worker`` process running the export.

The servers come from pytest-kit-services (throwaway ones, or ``KIT_TEST_POSTGRESQL_URL``
/ ``KIT_TEST_REDIS_URL``); under ``CI`` a missing server fails instead of skipping.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from board_helpers import EXAMPLE_DIR, add_user, board_env, signed_in
from sqlalchemy import select
from teamboard import create_app
from teamboard.dev_oidc import DevOIDCProvider
from teamboard.extensions import cache, db, jobs
from teamboard.models import Export

from kit_cache import RedisCache


def test_postgresql_redis_and_an_rq_worker(
    tmp_path: Path,
    oidc_provider: DevOIDCProvider,
    postgresql_url: str,
    redis_clean_url: str,
) -> None:
    env = board_env(
        tmp_path, oidc_provider.issuer, DATABASE_URL=postgresql_url, REDIS_URL=redis_clean_url
    )
    app = create_app(env)
    with app.app_context():
        assert db.database.dialect == "postgresql"
        assert isinstance(cache.cache, RedisCache)
        assert jobs().backend.name == "rq"

    client, headers = signed_in(app, add_user(app, "ann@example.com", role="admin"))
    ids = [
        client.post("/cards", json={"title": t}, headers=headers).get_json()["id"]
        for t in ("alpha", "beta", "gamma")
    ]
    moved = client.post(f"/cards/{ids[2]}/move", json={"direction": "top"}, headers=headers)
    assert [c["id"] for c in moved.get_json()["cards"]] == [ids[2], ids[0], ids[1]]

    started = client.post("/exports", headers=headers).get_json()
    assert (started["status"], started["job_status"]) == ("queued", "queued")

    worker = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "teamboard", "kit-jobs", "worker", "--burst"],
        cwd=EXAMPLE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr[-2000:]

    export = client.get(started["status_url"], headers=headers).get_json()
    assert (export["status"], export["job_status"], export["rows"]) == ("finished", "finished", 3)
    link = client.get(export["download_url"], headers=headers).headers["Location"]
    rows = list(csv.reader(io.StringIO(client.get(link).get_data(as_text=True))))
    assert [r[1] for r in rows[1:]] == ["gamma", "alpha", "beta"]


def test_export_answers_503_when_redis_is_down(
    tmp_path: Path, oidc_provider: DevOIDCProvider, redis_server: Any
) -> None:
    """kit-jobs never runs a job inline on its own: with the queue unreachable the
    request gets a 503 problem and the export is recorded as failed, not left queued."""
    app = create_app(board_env(tmp_path, oidc_provider.issuer, REDIS_URL=redis_server.url))
    client, headers = signed_in(app, add_user(app, "ann@example.com", role="admin"))
    redis_server.stop()
    response = client.post("/exports", headers=headers)
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    with app.app_context():
        export = db.session.scalars(select(Export)).one()
        assert (export.status, export.job_id) == ("failed", None)
