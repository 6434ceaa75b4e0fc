"""STUB: replaced by the events implementation."""
from __future__ import annotations
from typing import Any
class Event:  # pragma: no cover
    pass
def listen(*a: Any, **k: Any) -> Any:  # pragma: no cover
    raise NotImplementedError
def dispatch(*a: Any, **k: Any) -> Any:  # pragma: no cover
    raise NotImplementedError
