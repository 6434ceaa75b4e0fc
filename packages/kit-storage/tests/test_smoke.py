"""Smoke tests every kit package starts with: the public API, the errors, the adapters."""

from __future__ import annotations

import subprocess
import sys

import flask
import httpx
from fastapi import FastAPI

import kit_storage
from kit_storage import ConfigurationError, InvalidKey, KitStorageError


def test_public_api_names_exist() -> None:
    assert kit_storage.__all__ == sorted(kit_storage.__all__)
    for name in kit_storage.__all__:
        assert hasattr(kit_storage, name), name


def test_version_is_a_string() -> None:
    assert isinstance(kit_storage.__version__, str)


def test_errors_derive_from_the_package_base() -> None:
    error = ConfigurationError("KIT_STORAGE_ROOT /srv/files is not a directory")
    assert isinstance(error, KitStorageError)
    assert isinstance(error, ValueError)
    # A 5xx problem never shows the message (it can name paths or buckets) ...
    assert error.problem()["detail"] == "The server's file storage is misconfigured."
    # ... a 4xx problem does: it tells the client what to fix.
    assert InvalidKey("key '../x' has a '..' segment").problem()["detail"] == (
        "key '../x' has a '..' segment"
    )


def test_core_import_pulls_in_no_framework() -> None:
    code = (
        "import sys, kit_storage, kit_storage._async, kit_storage._uploads; "
        "print(sorted(m for m in ('flask', 'fastapi', 'starlette', 'google.cloud.storage') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_flask_adapter_answers_errors_with_problem_json() -> None:
    from kit_storage import MemoryStorage
    from kit_storage.flask import KitStorage

    app = flask.Flask(__name__)
    KitStorage(app, storage=MemoryStorage())

    @app.get("/boom")
    def boom() -> str:
        raise ConfigurationError("bad setting")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["detail"] == "The server's file storage is misconfigured."


async def test_fastapi_adapter_answers_errors_with_problem_json() -> None:
    from kit_storage.fastapi import install_problem_handlers

    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise ConfigurationError("bad setting")

    # httpx's ASGI transport rather than starlette.testclient, which warns when it finds
    # httpx instead of httpx2 (Starlette >= 1.10), and warnings are errors here.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "The server's file storage is misconfigured."
