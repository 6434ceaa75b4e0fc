"""STUB: replaced by the schedules implementation."""
from __future__ import annotations
from typing import Any
class Schedule:  # pragma: no cover
    pass
class Scheduler:  # pragma: no cover
    def __init__(self, jobs: Any) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
def scheduled(*a: Any, **k: Any) -> Any:  # pragma: no cover
    raise NotImplementedError
