"""Serializers: property-based round trips, refusal of unsafe or unknown data."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from kit_cache import (
    ConfigurationError,
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    SerializationError,
)
from kit_cache.serializers import resolve_serializer


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: int
    label: str = ""
    seen: dt.datetime | None = None


class Account(BaseModel):
    id: uuid.UUID
    balance: Decimal
    opened: dt.date
    tags: list[str] = []


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**62), max_value=2**62)
    | st.floats(allow_nan=False)
    | st.text()
    | st.datetimes(timezones=st.none() | st.just(dt.UTC))
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.binary()
    | st.sampled_from(Color)
    | st.builds(Point, st.integers(), st.integers(), st.text())
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(), children, max_size=5)
        | st.frozensets(st.integers(), max_size=5)
        | st.sets(st.text(), max_size=5)
    ),
    max_leaves=20,
)

SERIALIZERS = [JsonSerializer(), MsgpackSerializer()]


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=lambda s: s.name)
@settings(max_examples=300, deadline=None)
@given(value=values)
def test_round_trip(serializer: Any, value: Any) -> None:
    assert serializer.loads(serializer.dumps(value)) == value


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=lambda s: s.name)
@settings(max_examples=100, deadline=None)
@given(
    account=st.builds(
        Account,
        id=st.uuids(),
        balance=st.decimals(allow_nan=False, allow_infinity=False, places=2),
        opened=st.dates(),
        tags=st.lists(st.text(), max_size=3),
    )
)
def test_pydantic_models_round_trip(serializer: Any, account: Account) -> None:
    assert serializer.loads(serializer.dumps(account)) == account


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=lambda s: s.name)
def test_tuples_come_back_as_lists(serializer: Any) -> None:
    assert serializer.loads(serializer.dumps((1, 2))) == [1, 2]


@pytest.mark.parametrize("serializer", SERIALIZERS, ids=lambda s: s.name)
def test_unserializable_values_name_their_type(serializer: Any) -> None:
    class Opaque:
        pass

    with pytest.raises(SerializationError, match="Opaque"):
        serializer.dumps({"x": Opaque()})


def test_plain_json_skips_the_object_hook() -> None:
    s = JsonSerializer()
    assert s.dumps({"a": [1, "x"]}).startswith(b"j")
    assert s.dumps({"a": dt.date(2026, 1, 1)}).startswith(b"t")


def test_classes_are_resolved_only_from_imported_modules() -> None:
    s = JsonSerializer()
    forged = b't{"__kit__":"dataclass","t":"some_module_never_imported:Evil","v":{}}'
    with pytest.raises(SerializationError, match="not imported"):
        s.loads(forged)
    not_a_dataclass = b't{"__kit__":"dataclass","t":"os:system","v":{}}'
    with pytest.raises(SerializationError):
        s.loads(not_a_dataclass)
    not_a_model = b't{"__kit__":"pydantic","t":"builtins:dict","v":{}}'
    with pytest.raises(SerializationError, match="not a pydantic model"):
        s.loads(not_a_model)


@pytest.mark.parametrize(
    "data",
    [b"", b"x{}", b"j{not json", b't{"__kit__":"nope","v":1}', b't{"__kit__":"date","v":"bad"}'],
)
def test_corrupt_data_raises_serialization_error(data: bytes) -> None:
    with pytest.raises(SerializationError):
        JsonSerializer().loads(data)


def test_pickle_round_trips_anything_picklable() -> None:
    s = PickleSerializer()
    value = {"point": Point(1, 2), "set": {1, 2}, "tuple": (1, 2)}
    assert s.loads(s.dumps(value)) == value
    with pytest.raises(SerializationError):
        s.dumps(lambda: None)


def test_resolve_serializer() -> None:
    assert isinstance(resolve_serializer(None), JsonSerializer)
    assert isinstance(resolve_serializer("msgpack"), MsgpackSerializer)
    with pytest.raises(ConfigurationError, match="unknown serializer"):
        resolve_serializer("yaml")
    with pytest.raises(ConfigurationError):
        resolve_serializer(object())  # type: ignore[arg-type]


def test_a_signed_entry_whose_hmac_starts_with_the_counter_marker_is_not_a_counter() -> None:
    # Counters are stored as "<versions>|=<int>"; a signed entry's body starts with its
    # HMAC, whose first byte is "=" once in 256 writes. It must still decode as the value.
    from kit_cache._envelope import Envelope
    from kit_cache.serializers import resolve_serializer

    envelope = Envelope(resolve_serializer("pickle"), b"k" * 32)
    for n in range(20_000):
        key = f"key-{n}"
        raw = envelope.encode(key, b"", {"n": n}, 0.0, 0.0)
        if raw.split(b"|", 1)[1][:1] == b"=":
            break
    else:
        raise AssertionError("no HMAC starting with '=' in 20,000 keys")
    assert envelope.decode(key, raw, b"") == ({"n": n}, 0.0, 0.0)
