"""Helpers shared by kit-db's tests (imported as a plain module)."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from kit_db import NAMING_CONVENTION
from kit_db._database import registered_metadata
from kit_db._model import TYPE_ANNOTATION_MAP


def new_base() -> type[DeclarativeBase]:
    """A fresh declarative base, so each test module owns its tables."""

    class Base(DeclarativeBase):
        metadata = MetaData(naming_convention=NAMING_CONVENTION)
        type_annotation_map = TYPE_ANNOTATION_MAP

    registered_metadata.append(Base.metadata)
    return Base
