"""Events: inline listeners (order, subclasses, errors), background listeners as jobs on
the sync backend (the event rebuilt from JSON), validation at dispatch, and delivery
after a real SQLAlchemy commit (never after a rollback)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy import event as sa_event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, SessionTransaction, mapped_column

import kit_jobs
from kit_jobs import (
    ConfigurationError,
    Event,
    Jobs,
    JobStatus,
    SerializationError,
    _events,
    _runtime,
    _task,
    dispatch,
    listen,
)
from kit_jobs._events import (
    EVENT_TYPES,
    LISTENERS,
    event_type_name,
    get_commit_hook,
    rebuild_event,
    set_commit_hook,
)

# ---------------------------------------------------------------------- events


@dataclass(frozen=True)
class UserEvent(Event):
    user_id: int


@dataclass(frozen=True)
class UserSignedUp(UserEvent):
    email: str
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class UserDeleted(UserEvent):
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Pinged(Event):
    n: int


class NotADataclass(Event):
    def __init__(self, user_id: int) -> None:
        self.user_id = user_id


@dataclass
class Shipped(Event):
    order_id: int
    at: datetime


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _isolated_registries() -> Iterator[None]:
    """Each test registers its own listeners and leaves none (nor tasks) behind."""
    listeners, types, tasks = list(LISTENERS), dict(EVENT_TYPES), dict(_task.TASKS)
    hook = set_commit_hook(None)
    LISTENERS.clear()
    yield
    LISTENERS[:] = listeners
    EVENT_TYPES.clear()
    EVENT_TYPES.update(types)
    _task.TASKS.clear()
    _task.TASKS.update(tasks)
    set_commit_hook(hook)


@pytest.fixture
def sync_jobs() -> Iterator[Jobs]:
    """A sync runtime as the default (what task.enqueue and dispatch use); the previous
    default is put back afterwards."""
    previous = _runtime.reset_default()
    jobs = kit_jobs.configure(Jobs(backend="sync"))
    yield jobs
    _runtime.reset_default()
    jobs.shutdown()
    if previous is not None:
        kit_jobs.configure(previous)


# ---------------------------------------------------------------------- inline


def test_inline_listeners_run_in_registration_order_and_match_subclasses() -> None:
    calls: list[tuple[str, Event]] = []

    @listen(UserSignedUp)
    def first(event: UserSignedUp) -> None:
        calls.append(("first", event))

    @listen(UserEvent)
    def any_user_event(event: UserEvent) -> None:
        calls.append(("user", event))

    @listen(UserSignedUp)
    def second(event: UserSignedUp) -> None:
        calls.append(("second", event))

    @listen(UserDeleted)
    def deleted(event: UserDeleted) -> None:
        calls.append(("deleted", event))

    @listen(Event)
    def everything(event: Event) -> None:
        calls.append(("all", event))

    signup = UserSignedUp(1, "ada@example.com")
    assert dispatch(signup) == []
    assert [name for name, _ in calls] == ["first", "user", "second", "all"]
    assert all(event is signup for _, event in calls)  # inline: the very object

    calls.clear()
    dispatch(UserDeleted(2, "asked"))
    assert [name for name, _ in calls] == ["user", "deleted", "all"]

    calls.clear()
    dispatch(Pinged(3))
    assert [name for name, _ in calls] == ["all"]


def test_listening_twice_with_the_same_function_registers_once() -> None:
    calls: list[int] = []

    def count(event: Pinged) -> None:
        calls.append(event.n)

    listen(Pinged)(count)
    assert listen(Pinged)(count) is count  # the function comes back unchanged
    dispatch(Pinged(1))
    assert calls == [1]


def test_an_inline_listener_error_propagates_and_stops_the_dispatch(sync_jobs: Jobs) -> None:
    calls: list[str] = []

    @listen(Pinged)
    def boom(event: Pinged) -> None:
        raise RuntimeError("listener failed")

    @listen(Pinged)
    def after(event: Pinged) -> None:
        calls.append("after")

    @listen(Pinged, background=True)
    def in_background(event: Pinged) -> None:
        calls.append("background")

    with pytest.raises(RuntimeError, match="listener failed"):
        dispatch(Pinged(1))
    assert calls == []
    assert sum(sync_jobs.counts().values()) == 0  # nothing was enqueued


# ---------------------------------------------------------------------- background


def test_a_background_listener_runs_as_a_job_with_the_event_rebuilt(sync_jobs: Jobs) -> None:
    received: list[UserSignedUp] = []
    inline: list[str] = []

    @listen(UserSignedUp, background=True, queue="mail", retry=2)
    def send_welcome(event: UserSignedUp) -> None:
        received.append(event)

    @listen(UserSignedUp)
    def audit(event: UserSignedUp) -> None:
        inline.append(event.email)

    signup = UserSignedUp(7, "ada@example.com", tags=["beta"])
    refs = dispatch(signup)
    assert len(refs) == 1 and refs[0].status() is JobStatus.FINISHED
    assert inline == ["ada@example.com"]
    assert received == [signup] and received[0] is not signup  # rebuilt from JSON
    assert type(received[0]) is UserSignedUp

    info = refs[0].info()
    assert info.task == (
        f"kit_jobs.listener.{__name__}."
        "test_a_background_listener_runs_as_a_job_with_the_event_rebuilt.locals.send_welcome"
    )
    assert info.queue == "mail"
    assert info.args == [
        event_type_name(UserSignedUp),
        {"user_id": 7, "email": "ada@example.com", "tags": ["beta"]},
    ]
    task = _task.TASKS[info.task]
    assert task.retry is not None and task.retry.max == 2


def test_a_background_listener_is_retried_and_its_failure_does_not_reach_dispatch(
    sync_jobs: Jobs,
) -> None:
    attempts: list[int] = []

    @listen(Pinged, background=True, retry=1)
    def flaky(event: Pinged) -> None:
        attempts.append(event.n)
        if len(attempts) == 1:
            raise ConnectionError("smtp down")

    @listen(Pinged, background=True)
    def always_fails(event: Pinged) -> None:
        raise ValueError("no")

    refs = dispatch(Pinged(5))
    assert [ref.status() for ref in refs] == [JobStatus.FINISHED, JobStatus.FAILED]
    assert attempts == [5, 5]


def test_a_base_class_background_listener_gets_the_subclass_back(sync_jobs: Jobs) -> None:
    received: list[UserEvent] = []

    @listen(UserEvent, background=True)
    def on_user_event(event: UserEvent) -> None:
        received.append(event)

    dispatch(UserDeleted(3, "spam"))
    dispatch(UserSignedUp(4, "bob@example.com"))
    assert received == [UserDeleted(3, "spam"), UserSignedUp(4, "bob@example.com")]
    assert [type(e) for e in received] == [UserDeleted, UserSignedUp]


def test_dispatch_can_name_the_runtime(sync_jobs: Jobs) -> None:
    @listen(Pinged, background=True)
    def on_ping(event: Pinged) -> None:
        pass

    other = Jobs(backend="sync")
    refs = dispatch(Pinged(1), jobs=other)
    assert other.counts()[JobStatus.FINISHED] == 1
    assert sync_jobs.counts()[JobStatus.FINISHED] == 0
    assert refs[0].status() is JobStatus.FINISHED


def test_events_are_registered_by_module_and_qualname_for_workers() -> None:
    # @dataclass(slots=True) builds a second class: the registry must hold that one.
    assert EVENT_TYPES[event_type_name(Pinged)] is Pinged
    assert event_type_name(UserSignedUp) == f"{__name__}.UserSignedUp"
    rebuilt = rebuild_event(event_type_name(UserSignedUp), {"user_id": 1, "email": "a@b.c"})
    assert rebuilt == UserSignedUp(1, "a@b.c")
    with pytest.raises(ConfigurationError, match="not defined in this process"):
        rebuild_event("myapp.events.Gone", {"user_id": 1})
    with pytest.raises(ConfigurationError, match="cannot rebuild"):
        rebuild_event(event_type_name(UserSignedUp), {"user_id": 1, "mail": "a@b.c"})


# ---------------------------------------------------------------------- validation


def test_a_non_dataclass_event_is_refused() -> None:
    calls: list[Event] = []
    listen(Event)(calls.append)
    with pytest.raises(ConfigurationError, match="not a dataclass") as caught:
        dispatch(NotADataclass(1))
    assert "@dataclass" in str(caught.value)
    with pytest.raises(ConfigurationError, match="needs an Event"):
        dispatch({"user_id": 1})  # type: ignore[arg-type]
    assert calls == []


def test_a_field_json_cannot_carry_is_refused_at_dispatch(sync_jobs: Jobs) -> None:
    calls: list[Event] = []
    listen(Event)(calls.append)
    with pytest.raises(SerializationError) as caught:
        dispatch(Shipped(1, datetime(2026, 1, 1, tzinfo=UTC)))
    message = str(caught.value)
    assert "field at (datetime.datetime)" in message and "isoformat()" in message
    assert calls == []


def test_listen_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="give an Event subclass"):
        listen(dict)  # type: ignore[type-var]
    with pytest.raises(ConfigurationError, match="add background=True"):
        listen(Pinged, retry=3)


# ---------------------------------------------------------------------- after commit


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(unique=True)


def session_commit_hook(session: Session) -> Callable[[Callable[[], None]], None]:
    """The recipe of kit_jobs._events' docstring: deliver after the session's commit."""

    def hook(deliver: Callable[[], None]) -> None:
        pending = session.info.get("kit_jobs.after_commit")
        if pending is None:
            pending = session.info["kit_jobs.after_commit"] = []
            sa_event.listen(session, "after_commit", _run_pending)
            sa_event.listen(session, "after_transaction_end", _drop_pending)
        pending.append(deliver)

    return hook


def _run_pending(session: Session) -> None:
    pending = session.info["kit_jobs.after_commit"]
    callbacks = list(pending)
    pending.clear()
    for deliver in callbacks:
        deliver()


def _drop_pending(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended: rollback, close
        session.info["kit_jobs.after_commit"].clear()


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    engine = sa.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine_commits(engine: sa.Engine) -> list[int]:
    """One item per COMMIT the engine issued (SQLAlchemy's connection ``commit`` event)."""
    commits: list[int] = []
    sa_event.listen(engine, "commit", lambda conn: commits.append(len(commits)))
    return commits


@pytest.fixture
def signups(sync_jobs: Jobs, engine_commits: list[int]) -> list[tuple[str, int, int]]:
    """Listeners noting each delivery: (kind, user id, how many commits were issued)."""
    seen: list[tuple[str, int, int]] = []

    @listen(UserSignedUp)
    def inline(event: UserSignedUp) -> None:
        seen.append(("inline", event.user_id, len(engine_commits)))

    @listen(UserSignedUp, background=True)
    def background(event: UserSignedUp) -> None:
        seen.append(("background", event.user_id, len(engine_commits)))

    return seen


def test_after_commit_delivers_only_once_the_transaction_commits(
    engine: sa.Engine, signups: list[tuple[str, int, int]], sync_jobs: Jobs
) -> None:
    with Session(engine) as session:
        session.add(User(id=1, email="ada@example.com"))
        session.flush()
        assert (
            dispatch(UserSignedUp(1, "ada@example.com"), after_commit=session_commit_hook(session))
            == []
        )
        session.add(User(id=2, email="bob@example.com"))
        session.flush()
        assert signups == []  # not yet: the transaction is open
        assert sum(sync_jobs.counts().values()) == 0
        session.commit()
        # delivered inside commit(), after the COMMIT was issued
        assert signups == [("inline", 1, 1), ("background", 1, 1)]
        assert sync_jobs.counts()[JobStatus.FINISHED] == 1
        session.add(User(id=3, email="cy@example.com"))
        session.commit()
    assert len(signups) == 2  # delivered once


def test_after_commit_never_delivers_after_a_rollback(
    engine: sa.Engine, signups: list[tuple[str, int, int]], sync_jobs: Jobs
) -> None:
    with Session(engine) as session:
        session.add(User(id=1, email="ada@example.com"))
        session.flush()
        dispatch(UserSignedUp(1, "ada@example.com"), after_commit=session_commit_hook(session))
        session.rollback()
        # The same session commits other work later: the dropped event stays dropped
        # (a bare once=True after_commit listener would fire here).
        session.add(User(id=2, email="bob@example.com"))
        session.commit()
        assert session.get(User, 1) is None
    assert signups == []

    with Session(engine) as session:  # closed without commit: a rollback too
        session.add(User(id=3, email="cy@example.com"))
        dispatch(UserSignedUp(3, "cy@example.com"), after_commit=session_commit_hook(session))
    with Session(engine) as other:
        other.add(User(id=4, email="di@example.com"))
        other.commit()
    assert signups == []
    assert sum(sync_jobs.counts().values()) == 0


def test_after_commit_survives_a_rolled_back_savepoint(
    engine: sa.Engine, signups: list[tuple[str, int, int]]
) -> None:
    with Session(engine) as session:
        session.add(User(id=1, email="ada@example.com"))
        dispatch(UserSignedUp(1, "ada@example.com"), after_commit=session_commit_hook(session))
        try:
            with session.begin_nested():
                session.add(User(id=2, email="ada@example.com"))  # email is unique
                session.flush()
        except sa.exc.IntegrityError:
            pass
        session.commit()
        assert session.get(User, 2) is None and session.get(User, 1) is not None
    assert signups == [("inline", 1, 1), ("background", 1, 1)]


def test_after_commit_true_uses_the_configured_hook(
    engine: sa.Engine, signups: list[tuple[str, int, int]]
) -> None:
    with pytest.raises(ConfigurationError, match="set_commit_hook"):
        dispatch(UserSignedUp(1, "ada@example.com"), after_commit=True)
    assert signups == []

    with Session(engine) as session:
        assert set_commit_hook(session_commit_hook(session)) is None
        assert get_commit_hook() is not None
        session.add(User(id=1, email="ada@example.com"))
        dispatch(UserSignedUp(1, "ada@example.com"), after_commit=True)
        assert signups == []
        session.commit()
    assert [kind for kind, _, _ in signups] == ["inline", "background"]
    with pytest.raises(ConfigurationError, match="commit hook"):
        dispatch(UserSignedUp(1, "a@b.c"), after_commit="yes")  # type: ignore[arg-type]


def test_after_commit_checks_the_event_at_once_and_logs_delivery_errors(
    engine: sa.Engine,
) -> None:
    hook_calls: list[object] = []
    with pytest.raises(SerializationError):
        dispatch(Shipped(1, datetime.now(UTC)), after_commit=hook_calls.append)
    assert hook_calls == []

    @listen(UserSignedUp)
    def broken(event: UserSignedUp) -> None:
        raise RuntimeError("listener failed")

    with Session(engine) as session, structlog.testing.capture_logs() as logs:
        session.add(User(id=1, email="ada@example.com"))
        dispatch(UserSignedUp(1, "ada@example.com"), after_commit=session_commit_hook(session))
        session.commit()  # committed: the listener's error is logged, not raised here
        assert session.get(User, 1) is not None
    failures = [entry for entry in logs if entry["event"] == "event_delivery_failed"]
    assert len(failures) == 1 and "listener failed" in failures[0]["error"]
    assert failures[0]["event_type"] == event_type_name(UserSignedUp)


def test_the_module_is_free_of_database_imports() -> None:
    source = _events.__file__
    assert source is not None
    with open(source, encoding="utf-8") as f:
        code = f.read()
    imports = [line for line in code.splitlines() if line.startswith(("import ", "from "))]
    assert not any("sqlalchemy" in line or "kit_db" in line for line in imports)
