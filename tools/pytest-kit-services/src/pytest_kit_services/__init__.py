"""Throwaway Redis / PostgreSQL / MariaDB servers for tests and benchmarks.

The pytest fixtures live in :mod:`pytest_kit_services.plugin` (auto-loaded via the
``pytest11`` entry point).  This module is the plain API for scripts::

    from pytest_kit_services import redis_service

    with redis_service() as url:
        ...
"""

from ._common import BIN_PATH_ENV, ServerStartError, ServiceUnavailable, in_ci
from ._mariadb import MARIADB_URL_ENV, MariaDBServer, mariadb_database, mariadb_service
from ._postgresql import (
    POSTGRESQL_URL_ENV,
    PostgreSQLServer,
    postgresql_database,
    postgresql_service,
)
from ._redis import REDIS_URL_ENV, RedisServer, flushdb, redis_service

__version__ = "0.1.0"

__all__ = [
    "BIN_PATH_ENV",
    "MARIADB_URL_ENV",
    "POSTGRESQL_URL_ENV",
    "REDIS_URL_ENV",
    "MariaDBServer",
    "PostgreSQLServer",
    "RedisServer",
    "ServerStartError",
    "ServiceUnavailable",
    "flushdb",
    "in_ci",
    "mariadb_database",
    "mariadb_service",
    "postgresql_database",
    "postgresql_service",
    "redis_service",
]
