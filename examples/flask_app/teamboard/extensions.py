"""The kit extensions shared by every app the factory builds, and accessors for the two
that are built per app.

``KitDB``, ``KitMail`` and ``KitCache`` keep their state per app, so one module-level
instance serves every app (``init_app`` in :func:`teamboard.create_app`). ``KitJobs``
and ``KitStorage`` keep the runtime/storage of the app they were first given, so the
factory makes one of each per app and the views reach them through the app
(:func:`jobs`, :func:`storage`).
"""

from __future__ import annotations

from flask import current_app

from kit_cache.flask import KitCache
from kit_db.flask import KitDB
from kit_jobs import Jobs
from kit_jobs.flask import EXTENSION_KEY as JOBS_KEY
from kit_jobs.flask import KitJobs
from kit_mail.flask import KitMail
from kit_storage import Storage
from kit_storage.flask import get_storage

__all__ = ["cache", "db", "jobs", "mail", "storage"]

db = KitDB()
mail = KitMail()
cache = KitCache()


def jobs() -> Jobs:
    """The current app's job runtime."""
    extension: KitJobs = current_app.extensions[JOBS_KEY]
    return extension.jobs


def storage() -> Storage:
    """The current app's file storage."""
    return get_storage()
