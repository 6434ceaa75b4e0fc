"""End-to-end runs of the plugin in a subprocess pytest (env-var path, skip vs fail)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import psycopg
import pymysql
import pytest

from pytest_kit_services import BIN_PATH_ENV, MARIADB_URL_ENV, POSTGRESQL_URL_ENV, REDIS_URL_ENV
from pytest_kit_services._mariadb import connect_kwargs
from pytest_kit_services.plugin import unavailable

if TYPE_CHECKING:
    from pathlib import Path

LOCAL_REDIS = "redis://127.0.0.1:6379/15"  # disposable db: redis_clean_url flushes it
LOCAL_POSTGRESQL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_MARIADB = "mysql://root@127.0.0.1:3306/test"

ENV_TESTS = """
import pathlib
from urllib.parse import urlsplit

import psycopg
import pymysql
import redis

from pytest_kit_services._mariadb import connect_kwargs

OUT = pathlib.Path(__file__).parent / "dbnames.txt"


def test_redis(redis_url, redis_clean_url):
    assert redis_url == "redis://127.0.0.1:6379/15"
    assert redis_clean_url == redis_url
    assert redis.Redis.from_url(redis_url).ping()


def test_postgresql(postgresql_url):
    parts = urlsplit(postgresql_url)
    assert (parts.hostname, parts.port, parts.username) == ("127.0.0.1", 5432, "postgres")
    assert parts.path.startswith("/kit_test_")
    with OUT.open("a") as fh:
        fh.write("pg " + parts.path[1:] + "\\n")
    with psycopg.connect(postgresql_url) as conn:
        conn.execute("CREATE TABLE t (id int)")
    # keep a connection open on purpose: the drop must still succeed
    test_postgresql.leak = psycopg.connect(postgresql_url)


def test_mariadb(mariadb_url):
    parts = urlsplit(mariadb_url)
    assert (parts.hostname, parts.port, parts.username) == ("127.0.0.1", 3306, "root")
    assert parts.path.startswith("/kit_test_")
    with OUT.open("a") as fh:
        fh.write("maria " + parts.path[1:] + "\\n")
    conn = pymysql.connect(**connect_kwargs(mariadb_url))
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT)")
        cur.execute("BEGIN")
        cur.execute("INSERT INTO t VALUES (1)")
    # open transaction left behind on purpose: the drop must not hang
    test_mariadb.leak = conn
"""

MISSING_TESTS = """
def test_redis_url(redis_url):
    pass


def test_redis_server(redis_server):
    pass


def test_postgresql_url(postgresql_url):
    pass


def test_mariadb_url(mariadb_url):
    pass
"""


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_env_var_servers(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    for port in (6379, 5432, 3306):
        if not _reachable(port):
            unavailable(f"no local service on 127.0.0.1:{port} for the env-var test")
    monkeypatch.setenv(REDIS_URL_ENV, LOCAL_REDIS)
    monkeypatch.setenv(POSTGRESQL_URL_ENV, LOCAL_POSTGRESQL)
    monkeypatch.setenv(MARIADB_URL_ENV, LOCAL_MARIADB)
    # With env URLs set, no binary is needed at all.
    monkeypatch.setenv(BIN_PATH_ENV, str(pytester.mkdir("nobin")))
    pytester.makepyfile(test_env=ENV_TESTS)
    result = pytester.runpytest_subprocess("-v", timeout=120)
    result.assert_outcomes(passed=3)

    names = dict(line.split() for line in (pytester.path / "dbnames.txt").read_text().splitlines())
    with psycopg.connect(LOCAL_POSTGRESQL) as conn:
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (names["pg"],))
        assert row.fetchone() == (0,)
    conn_m = pymysql.connect(**connect_kwargs(LOCAL_MARIADB))
    try:
        with conn_m.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (names["maria"],))
            assert cur.fetchall() == ()
    finally:
        conn_m.close()


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [
        (None, "skipped"),
        ("", "skipped"),
        ("0", "skipped"),
        ("false", "skipped"),
        ("true", "errors"),
        ("1", "errors"),
    ],
)
def test_missing_binaries_skip_or_fail(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None, outcome: str
) -> None:
    for name in (REDIS_URL_ENV, POSTGRESQL_URL_ENV, MARIADB_URL_ENV):
        monkeypatch.delenv(name, raising=False)
    empty: Path = pytester.mkdir("emptybin")
    monkeypatch.setenv(BIN_PATH_ENV, str(empty))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(test_missing=MISSING_TESTS)
    result = pytester.runpytest_subprocess("-rA", timeout=60)
    result.assert_outcomes(**{outcome: 4})
    output = result.stdout.str()
    for package in ("redis-server", "postgresql", "mariadb-server"):
        assert f"apt-get install {package}" in output


def test_plugin_is_inert_without_fixtures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Even under CI with no binaries at all, tests that request no fixture just pass.
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv(BIN_PATH_ENV, str(pytester.mkdir("emptybin")))
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("--fixtures")
    output = result.stdout.str()
    for name in ("redis_url", "redis_clean_url", "redis_server", "postgresql_url", "mariadb_url"):
        assert name in output
