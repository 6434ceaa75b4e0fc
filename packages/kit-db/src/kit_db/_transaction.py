"""``transactional``: commit on success, roll back on error, SAVEPOINT when nested.

One name covers the four ways a unit of work is written::

    with transactional(session): ...              # a Session you already hold
    with transactional(db) as session: ...        # a new session from a Database
    async with transactional(async_session): ...  # the asyncio twins
    async with transactional(async_db) as session: ...

    @transactional(db)                            # decorator: the session is the first
    def register(session: KitSession, email: str) -> User:  # argument, and callers
        ...                                       # leave it out: register("a@b.c")

Rules, the same for sync and async:

* The outermost block on a session owns the transaction: it commits when the block ends
  normally and rolls back when it raises. The exception always propagates unchanged.
* A block inside another one on the same session becomes a SAVEPOINT
  (``session.begin_nested()``): when it raises, only its own work is undone and the outer
  block may catch the exception and carry on. Inside a transaction someone else began
  (``db.begin()``, ``session.begin()``) every block is a SAVEPOINT, and that owner commits.
* While ``transactional(db)`` (or ``transactional(session)`` on a session bound to
  ``db``'s engine) runs, it is the *current* transaction of that database in this thread or
  asyncio task: a ``transactional(db)`` block or ``@transactional(db)`` function entered
  meanwhile joins the same session as a SAVEPOINT instead of opening a second connection.
  Other threads and tasks (``asyncio.gather``, ``create_task``) get sessions of their own:
  a session must not be used concurrently.
"""

import asyncio
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from contextvars import ContextVar
from types import MappingProxyType, TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransactionOrigin

from ._database import AsyncDatabase, Database
from ._scoping import KitSession
from .exceptions import ConfigurationError

__all__ = ["AsyncTransaction", "Transaction", "transactional"]

S = TypeVar("S", bound=Session)
AS = TypeVar("AS", bound=AsyncSession)
P = ParamSpec("P")
R = TypeVar("R")

_DEPTH = "kit_db.transactional_depth"
"""``session.info`` key: how many ``transactional`` blocks are open on the session."""

_current: ContextVar[Mapping[object, tuple[Any, object]]] = ContextVar(
    "kit_db_current_session", default=MappingProxyType({})
)
"""Engine (sync or async) -> (session, owner) of the ``transactional`` block running on it."""


def _owner() -> object:
    """The asyncio task, else the thread: a copied context (``asyncio.gather``,
    ``create_task``) must not share the session of the task that copied it."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return task if task is not None else threading.get_ident()


def _joinable(key: object) -> Any:
    """The session a ``transactional(db)`` block should join, or None."""
    found = _current.get().get(key)
    if found is None or found[1] != _owner():
        return None
    return found[0]


def _engine_key(session: Session | AsyncSession) -> object | None:
    return session.bind  # an Engine/AsyncEngine, a Connection, or None (binds per mapper)


@contextmanager
def _registered(key: object | None, session: Session | AsyncSession) -> Iterator[None]:
    if key is None:
        yield
        return
    current = _current.get()
    owner = _owner()
    if current.get(key) == (session, owner):
        yield
        return
    token = _current.set(MappingProxyType({**current, key: (session, owner)}))
    try:
        yield
    finally:
        _current.reset(token)


def _plan(sync_session: Session) -> str:
    """``"begin"``, ``"join"`` (an autobegun transaction nobody owns) or ``"savepoint"``."""
    if sync_session.info.get(_DEPTH, 0):
        return "savepoint"
    transaction = sync_session.get_transaction()
    if transaction is None:
        return "begin"
    if transaction.origin is SessionTransactionOrigin.AUTOBEGIN:
        return "join"
    return "savepoint"


@contextmanager
def _session_scope(session: S) -> Iterator[S]:
    plan = _plan(session)
    depth = session.info.get(_DEPTH, 0)
    session.info[_DEPTH] = depth + 1
    try:
        with _registered(_engine_key(session), session):
            if plan == "begin":
                with session.begin():
                    yield session
            elif plan == "join":
                try:
                    yield session
                except BaseException:
                    session.rollback()
                    raise
                session.commit()
            else:
                with session.begin_nested():
                    yield session
    finally:
        session.info[_DEPTH] = depth


@contextmanager
def _database_scope(db: Database) -> Iterator[KitSession]:
    joined = _joinable(db.engine)
    if isinstance(joined, Session):
        with _session_scope(joined) as session:
            yield session  # type: ignore[misc]
        return
    # registered under the engine as well: the session may be bound to a connection
    # (kit_db.testing binds the sessionmaker to the test's connection)
    with db.sessionmaker() as session, _registered(db.engine, session), _session_scope(session):
        yield session


@asynccontextmanager
async def _async_session_scope(session: AS) -> AsyncIterator[AS]:
    plan = _plan(session.sync_session)
    depth = session.info.get(_DEPTH, 0)
    session.info[_DEPTH] = depth + 1
    try:
        with _registered(_engine_key(session), session):
            if plan == "begin":
                async with session.begin():
                    yield session
            elif plan == "join":
                try:
                    yield session
                except BaseException:
                    await session.rollback()
                    raise
                await session.commit()
            else:
                async with session.begin_nested():
                    yield session
    finally:
        session.info[_DEPTH] = depth


@asynccontextmanager
async def _async_database_scope(db: AsyncDatabase) -> AsyncIterator[AsyncSession]:
    joined = _joinable(db.engine)
    if isinstance(joined, AsyncSession):
        async with _async_session_scope(joined) as session:
            yield session
        return
    async with db.sessionmaker() as session:
        with _registered(db.engine, session):
            async with _async_session_scope(session):
                yield session


class Transaction(Generic[S]):
    """What ``transactional(db)`` or ``transactional(session)`` returns: a context manager
    that yields the session, and a decorator. Reusable and re-entrant: every ``with`` and
    every call of a decorated function is a block of its own.

    Example::

        with transactional(db) as session:
            session.add(User(email="a@example.com"))
        # committed here; an exception would have rolled back and propagated
    """

    __slots__ = ("_open", "_target")

    def __init__(self, target: Database | S) -> None:
        self._target = target
        self._open: list[AbstractContextManager[Any]] = []

    def _scope(self) -> AbstractContextManager[Any]:
        if isinstance(self._target, Database):
            return _database_scope(self._target)
        return _session_scope(self._target)

    def __enter__(self) -> S:
        scope = self._scope()
        session = scope.__enter__()
        self._open.append(scope)
        return session  # type: ignore[no-any-return]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return self._open.pop().__exit__(exc_type, exc, traceback)

    def __call__(self, fn: Callable[Concatenate[S, P], R]) -> Callable[P, R]:
        """Run each call of ``fn`` in a block of its own, passing the session first."""
        if inspect.iscoroutinefunction(fn):
            raise ConfigurationError(
                f"{fn.__qualname__} is async: decorate it with transactional(async_db) "
                "or transactional(async_session)"
            )

        @functools.wraps(fn)
        def run_in_transaction(*args: P.args, **kwargs: P.kwargs) -> R:
            with self._scope() as session:
                return fn(session, *args, **kwargs)

        return run_in_transaction

    def __repr__(self) -> str:
        return f"transactional({self._target!r})"


class AsyncTransaction(Generic[AS]):
    """What ``transactional(async_db)`` or ``transactional(async_session)`` returns: an
    async context manager that yields the session, and a decorator for ``async def``.

    Example::

        async with transactional(async_db) as session:
            session.add(User(email="a@example.com"))
    """

    __slots__ = ("_open", "_target")

    def __init__(self, target: AsyncDatabase | AS) -> None:
        self._target = target
        self._open: list[AbstractAsyncContextManager[Any]] = []

    def _scope(self) -> AbstractAsyncContextManager[Any]:
        if isinstance(self._target, AsyncDatabase):
            return _async_database_scope(self._target)
        return _async_session_scope(self._target)

    async def __aenter__(self) -> AS:
        scope = self._scope()
        session = await scope.__aenter__()
        self._open.append(scope)
        return session  # type: ignore[no-any-return]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return await self._open.pop().__aexit__(exc_type, exc, traceback)

    def __call__(
        self, fn: Callable[Concatenate[AS, P], Awaitable[R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        """Run each call of the coroutine function ``fn`` in a block of its own, passing the
        session first."""
        if not inspect.iscoroutinefunction(fn):
            raise ConfigurationError(
                f"{getattr(fn, '__qualname__', fn)!s} is not async: decorate it with "
                "transactional(db) or transactional(session)"
            )

        @functools.wraps(fn)
        async def run_in_transaction(*args: P.args, **kwargs: P.kwargs) -> R:
            async with self._scope() as session:
                return await fn(session, *args, **kwargs)

        return run_in_transaction

    def __repr__(self) -> str:
        return f"transactional({self._target!r})"


@overload
def transactional(target: Database) -> Transaction[KitSession]: ...
@overload
def transactional(target: AsyncDatabase) -> AsyncTransaction[AsyncSession]: ...
@overload
def transactional(target: S) -> Transaction[S]: ...
@overload
def transactional(target: AS) -> AsyncTransaction[AS]: ...
def transactional(target: Any) -> Any:
    """A transaction on ``target`` (a Database, Session, AsyncDatabase or AsyncSession):
    commit on success, roll back on error, SAVEPOINT when nested. Use it as a context
    manager (``with`` / ``async with``) that yields the session, or as a decorator whose
    function receives the session as its first argument.

    Example::

        >>> from sqlalchemy import select
        >>> from sqlalchemy.orm import Mapped, mapped_column
        >>> from kit_db import Conflict, Database, KitSession, Model, transactional
        >>> class Tx(Model):
        ...     __tablename__ = "doc_tx"
        ...     id: Mapped[int] = mapped_column(primary_key=True)
        >>> db = Database("sqlite://")
        >>> db.create_all()
        >>> @transactional(db)
        ... def create(session: KitSession, id: int) -> None:
        ...     session.add(Tx(id=id))
        >>> with transactional(db) as session:
        ...     create(1)
        ...     try:
        ...         create(1)  # duplicate: its SAVEPOINT rolls back, the outer block goes on
        ...     except Conflict:
        ...         pass
        ...     create(2)
        >>> with db.session() as session:
        ...     session.scalars(select(Tx.id).order_by(Tx.id)).all()
        [1, 2]
    """
    if isinstance(target, Database | Session):
        return Transaction(target)
    if isinstance(target, AsyncDatabase | AsyncSession):
        return AsyncTransaction(target)
    if callable(target):
        raise ConfigurationError(
            "transactional needs a Database or session: write @transactional(db), "
            "not @transactional"
        )
    raise ConfigurationError(
        f"transactional needs a Database, AsyncDatabase, Session or AsyncSession, got "
        f"{type(target).__name__}"
    )
