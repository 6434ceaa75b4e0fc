"""A real worker process for the tests: ``python -m rqapp.worker_main URL QUEUE TTL``."""

from __future__ import annotations

import sys

import rqapp  # noqa: F401  (registers the tasks)
from kit_jobs import Jobs

if __name__ == "__main__":
    url, queue, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
    scheduler = len(sys.argv) < 5 or sys.argv[4] != "--no-scheduler"
    Jobs(backend="rq", redis_url=url).work(
        queues=[queue], heartbeat_ttl=ttl, with_scheduler=scheduler
    )
