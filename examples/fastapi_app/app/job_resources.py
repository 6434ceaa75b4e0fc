"""What background jobs work with: a synchronous database, the storage and the mailer.

The web app hands its own (:func:`use`) so thread jobs share them; an RQ worker builds
them from the same environment variables on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.backends import build_database, build_mailer, build_storage
from app.settings import Settings
from kit_db import Database
from kit_mail import Mailer
from kit_storage import Storage

__all__ = ["JobResources", "resources", "use"]


@dataclass(frozen=True)
class JobResources:
    settings: Settings
    database: Database
    storage: Storage
    mailer: Mailer

    @classmethod
    def from_settings(cls, settings: Settings) -> JobResources:
        return cls(
            settings=settings,
            database=build_database(settings),
            storage=build_storage(settings),
            mailer=build_mailer(settings),
        )


_current: JobResources | None = None


def use(given: JobResources | None) -> None:
    """Set (or, with None, forget) the resources jobs of this process use."""
    global _current
    _current = given


def resources() -> JobResources:
    global _current
    if _current is None:
        _current = JobResources.from_settings(Settings.from_env())
    return _current
