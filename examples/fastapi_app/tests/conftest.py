"""The example's tests run the app as a user would: uvicorn on loopback, configured by
environment variables, against the dev OIDC provider over real HTTP.

``servers`` runs twice: on embedded defaults (SQLite, thread jobs, memory cache and auth
stores) and on services (PostgreSQL, Redis for the cache, the auth stores and the rate
limits, RQ jobs run by a real ``kit-jobs`` worker process), the throwaway servers coming
from pytest-kit-services.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLE_DIR = Path(__file__).resolve().parents[1]
if str(EXAMPLE_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLE_DIR))

from demo_servers import Servers, embedded_env  # noqa: E402
from dev_oidc import DevOIDCProvider  # noqa: E402
from fastapi_support import Api  # noqa: E402


@pytest.fixture(scope="session", params=["embedded", "services"])
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    """The provider, the app (and, on services, the RQ worker), for the session."""
    var_dir = tmp_path_factory.mktemp(f"fastapi-{request.param}")
    env = embedded_env(var_dir)
    if request.param == "services":
        import redis

        redis_url: str = request.getfixturevalue("redis_url")
        postgresql_url: str = request.getfixturevalue("postgresql_url")
        # RQ jobs left in Redis by an earlier run would run against this run's database.
        with redis.Redis.from_url(redis_url) as client:
            client.flushdb()
        env.update(DATABASE_URL=postgresql_url, REDIS_URL=redis_url)
    provider = DevOIDCProvider(auto_approve="ann@acme.example")
    with Servers.running(
        env, var_dir=var_dir, provider=provider, worker=request.param == "services"
    ) as running:
        yield running


_addresses = itertools.count(1)


@pytest.fixture
def api(servers: Servers) -> Iterator[Api]:
    """A client with an address of its own (as X-Forwarded-For: the app trusts loopback
    as a proxy), so rate limits and bans of one test never reach another."""
    n = next(_addresses)
    with Api(servers, address=f"10.20.{n // 250}.{n % 250 + 1}") as client:
        yield client
    servers.check()
