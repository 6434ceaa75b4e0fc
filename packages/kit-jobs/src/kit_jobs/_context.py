"""Log context that travels with a job: structlog context variables bound when the job
was enqueued (request id, tenant, user) are bound again while it runs, with the job's
id, task and attempt added."""

from __future__ import annotations

from typing import Any

import structlog

from ._serialization import find_unserializable

__all__ = ["capture_context", "logger"]

logger = structlog.get_logger("kit.jobs")


def capture_context() -> dict[str, Any]:
    """The current structlog context variables that JSON can carry.

    Values JSON cannot carry (a request object, say) are left out rather than failing
    the enqueue: the context is for logs, the arguments are what the job needs.
    """
    variables = structlog.contextvars.get_contextvars()
    if not variables:
        return {}
    return {k: v for k, v in variables.items() if find_unserializable(v, k) is None}
