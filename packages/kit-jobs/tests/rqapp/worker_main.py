"""A real worker process for the tests:
``python -m rqapp.worker_main URL QUEUE TTL [--no-scheduler] [--import MODULE]``."""

from __future__ import annotations

import importlib
import sys

import rqapp  # noqa: F401  (registers the tasks)
from kit_jobs import Jobs

if __name__ == "__main__":
    url, queue, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
    scheduler = "--no-scheduler" not in sys.argv
    if "--import" in sys.argv:
        importlib.import_module(sys.argv[sys.argv.index("--import") + 1])
    Jobs(backend="rq", redis_url=url).work(
        queues=[queue], heartbeat_ttl=ttl, with_scheduler=scheduler
    )
