"""Single-flight: concurrent misses of one key share one computation."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any


class _Call:
    __slots__ = ("error", "event", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def wait(self) -> Any:
        self.event.wait()
        if self.error is not None:
            raise self.error
        return self.value


class SingleFlight:
    """Threads: the first caller of a key computes; the others wait for its result."""

    __slots__ = ("_calls", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call] = {}

    def in_flight(self, key: str) -> bool:
        return key in self._calls

    def run(self, key: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` once for all concurrent callers of ``key``; all get its result or error."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leader:
            return call.wait()
        try:
            call.value = fn()
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                self._calls.pop(key, None)
            call.event.set()
        return call.value

    def try_start(self, key: str) -> _Call | None:
        """Claim ``key`` for a background refresh; None if a computation is already running."""
        with self._lock:
            if key in self._calls:
                return None
            call = self._calls[key] = _Call()
            return call

    def finish(self, key: str, call: _Call) -> None:
        with self._lock:
            if self._calls.get(key) is call:
                del self._calls[key]
        call.event.set()


class AsyncSingleFlight:
    """asyncio: one task per key and event loop; waiters are shielded from each other's
    cancellation, so a cancelled request never cancels the computation others await."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Task[Any]]
        ] = weakref.WeakKeyDictionary()

    def _for_loop(self) -> dict[str, asyncio.Task[Any]]:
        loop = asyncio.get_running_loop()
        tasks = self._tasks.get(loop)
        if tasks is None:
            tasks = self._tasks[loop] = {}
        return tasks

    def in_flight(self, key: str) -> bool:
        return key in self._for_loop()

    def start(self, key: str, factory: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any]:
        """The running task for ``key``, or a new one made from ``factory``."""
        tasks = self._for_loop()
        task = tasks.get(key)
        if task is None:

            async def runner() -> Any:
                return await factory()

            task = asyncio.ensure_future(runner())
            tasks[key] = task

            def _done(t: asyncio.Task[Any], key: str = key) -> None:
                if tasks.get(key) is t:
                    del tasks[key]
                if not t.cancelled():
                    t.exception()  # retrieved: waiters re-raise it; no "never retrieved" noise

            task.add_done_callback(_done)
        return task

    async def run(self, key: str, factory: Callable[[], Awaitable[Any]]) -> Any:
        return await asyncio.shield(self.start(key, factory))
