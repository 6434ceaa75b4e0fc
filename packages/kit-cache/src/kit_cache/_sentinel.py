from __future__ import annotations

import enum
from typing import Final, Literal


class _Missing(enum.Enum):
    """Type of :data:`MISSING`; an enum so that ``Literal[MISSING]`` narrows in type checkers."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"

    __str__ = __repr__

    def __bool__(self) -> Literal[False]:
        return False


MISSING: Final = _Missing.MISSING
"""Returned by ``get`` on a miss, so that a cached ``None`` is a hit."""

Missing = Literal[_Missing.MISSING]
