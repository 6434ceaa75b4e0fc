"""Clocks, in one place so tests and backends agree: ``wall`` for timestamps stored
or shown (epoch seconds), ``mono`` for waits and timeouts inside one process."""

from __future__ import annotations

import time

__all__ = ["mono", "wall"]

wall = time.time
mono = time.monotonic
