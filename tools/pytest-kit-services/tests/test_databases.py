"""Tests for the PostgreSQL and MariaDB fixtures (throwaway or env-provided servers)."""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
import pymysql

from pytest_kit_services._mariadb import connect_kwargs


def test_postgresql_url_create_table(postgresql_url: str) -> None:
    parts = urlsplit(postgresql_url)
    assert parts.scheme == "postgresql"
    assert parts.hostname == "127.0.0.1"
    assert parts.path.startswith("/kit_test_")
    with psycopg.connect(postgresql_url) as conn:
        conn.execute("CREATE TABLE kit_t (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO kit_t (name) VALUES ('a'), ('b')")
        row = conn.execute("SELECT count(*), current_database() FROM kit_t").fetchone()
    assert row == (2, parts.path[1:])


def test_mariadb_url_create_table(mariadb_url: str) -> None:
    parts = urlsplit(mariadb_url)
    assert parts.scheme == "mysql"
    assert parts.hostname == "127.0.0.1"
    assert parts.username == "root"
    assert parts.path.startswith("/kit_test_")
    conn = pymysql.connect(**connect_kwargs(mariadb_url))
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE kit_t (id INT AUTO_INCREMENT PRIMARY KEY, name TEXT)")
            cur.execute("INSERT INTO kit_t (name) VALUES ('a'), ('b')")
            cur.execute("SELECT count(*), DATABASE(), @@character_set_database FROM kit_t")
            row = cur.fetchone()
    finally:
        conn.close()
    assert row == (2, parts.path[1:], "utf8mb4")
