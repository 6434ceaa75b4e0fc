"""The FastAPI adapter through httpx's ASGI transport (starlette's TestClient warns):
signed-URL serving (Range, conditional requests, 403s), signed PUT uploads streamed with a
cap, checked UploadFile uploads and the problem handlers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from fastapi import FastAPI, UploadFile

from kit_storage import (
    ConfigurationError,
    LocalStorage,
    MemoryStorage,
    NotFound,
    Storage,
)
from kit_storage._async import AsyncStorage
from kit_storage._signing import URLSigner
from kit_storage.fastapi import install_problem_handlers, save_upload_file, storage_router

SECRET = b"a" * 32
BASE = "http://files.test/files"
DATA = bytes(range(256)) * 4  # 1 KiB, every byte value
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(100)


@pytest.fixture(params=["memory", "local"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "memory":
        return MemoryStorage(base_url=BASE, secret=SECRET)
    return LocalStorage(tmp_path / "root", base_url=BASE, secret=SECRET)


@pytest.fixture
async def client(served: Storage) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(storage_router(served, prefix="/files", max_upload_bytes=4096))

    @app.post("/upload/{key:path}")
    async def upload(key: str, file: UploadFile) -> dict[str, object]:
        info = await save_upload_file(
            served, key, file, max_bytes=2048, allowed_types={"image/png", "text/plain"}
        )
        return {"key": info.key, "content_type": info.content_type}

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound("no object at 'x'")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://files.test") as test_client:
        yield test_client


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.content
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    return body  # type: ignore[no-any-return]


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {**_query(url), **changes}
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


# -- GET -------------------------------------------------------------------------------


async def test_full_get_has_the_right_headers(client: httpx.AsyncClient, served: Storage) -> None:
    info = served.put("docs/report.bin", DATA, content_type="application/x-report")
    response = await client.get(served.url("docs/report.bin"))
    assert response.status_code == 200
    assert response.content == DATA
    headers = response.headers
    assert headers["content-type"] == "application/x-report"
    assert headers["content-length"] == str(len(DATA))
    assert headers["etag"] == f'"{info.etag}"'
    assert headers["last-modified"].endswith(" GMT")
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-disposition"] == "inline"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"].startswith("private, max-age=")


async def test_large_object_streams_whole(client: httpx.AsyncClient, served: Storage) -> None:
    big = bytes(range(256)) * 12_000  # ~3 MiB: several chunks
    served.put("big.bin", big)
    response = await client.get(served.url("big.bin"))
    assert response.status_code == 200
    assert response.content == big


async def test_keys_with_spaces_percent_and_unicode(
    client: httpx.AsyncClient, served: Storage
) -> None:
    key = "dir/my file #1 %41 \u00e9\u6f22.txt"
    served.put(key, b"odd")
    response = await client.get(served.url(key))
    assert response.status_code == 200
    assert response.content == b"odd"


async def test_head_sends_headers_only(client: httpx.AsyncClient, served: Storage) -> None:
    served.put("a.bin", DATA)
    response = await client.head(served.url("a.bin"))
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(DATA))
    assert response.content == b""


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 10),  # first bytes
        ("bytes=-10", len(DATA) - 10, len(DATA)),  # suffix
        ("bytes=1000-", 1000, len(DATA)),  # open-ended
        ("bytes=1020-5000", 1020, len(DATA)),  # clipped to the end
    ],
)
async def test_range_gives_206(
    client: httpx.AsyncClient, served: Storage, header: str, start: int, end: int
) -> None:
    served.put("r.bin", DATA)
    response = await client.get(served.url("r.bin"), headers={"Range": header})
    assert response.status_code == 206
    assert response.content == DATA[start:end]
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert response.headers["content-length"] == str(end - start)


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=-0"])
async def test_unsatisfiable_range_is_416(
    client: httpx.AsyncClient, served: Storage, header: str
) -> None:
    served.put("r.bin", DATA)
    response = await client.get(served.url("r.bin"), headers={"Range": header})
    _problem(response, 416)
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"


async def test_multiple_ranges_are_ignored(client: httpx.AsyncClient, served: Storage) -> None:
    served.put("r.bin", DATA)
    response = await client.get(served.url("r.bin"), headers={"Range": "bytes=0-1,4-5"})
    assert response.status_code == 200
    assert response.content == DATA


async def test_if_none_match_gives_304(client: httpx.AsyncClient, served: Storage) -> None:
    served.put("c.bin", DATA)
    url = served.url("c.bin")
    etag = (await client.get(url)).headers["etag"]
    response = await client.get(url, headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert "content-length" not in response.headers
    assert (await client.get(url, headers={"If-None-Match": '"other"'})).status_code == 200


async def test_download_name_gives_content_disposition(
    client: httpx.AsyncClient, served: Storage
) -> None:
    served.put("x/1.pdf", PDF)
    response = await client.get(served.url("x/1.pdf", download_name="\u00e9t\u00e9.pdf"))
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"_t_.pdf\"; filename*=UTF-8''%C3%A9t%C3%A9.pdf"
    )


async def test_expired_url_is_403(client: httpx.AsyncClient, served: Storage) -> None:
    served.put("e.txt", b"x")
    expired = URLSigner(SECRET, BASE).sign("GET", "e.txt", 60, now=time.time() - 3600)
    body = _problem(await client.get(expired), 403)
    assert "expired" in str(body["detail"])


@pytest.mark.parametrize(
    ("param", "value"),
    [("sig", "A" * 43), ("expires", "9999999999"), ("dl", "evil.exe")],
)
async def test_tampered_url_is_403(
    client: httpx.AsyncClient, served: Storage, param: str, value: str
) -> None:
    served.put("t.txt", b"secret")
    response = await client.get(_with_query(served.url("t.txt"), **{param: value}))
    body = _problem(response, 403)
    assert body["type"] == "https://kit.dev/problems/invalid-signature"


async def test_url_for_another_key_is_403(client: httpx.AsyncClient, served: Storage) -> None:
    served.put("t.txt", b"secret")
    served.put("u.txt", b"other")
    _problem(await client.get(served.url("t.txt").replace("/t.txt", "/u.txt")), 403)


async def test_valid_url_for_a_missing_object_is_404(
    client: httpx.AsyncClient, served: Storage
) -> None:
    _problem(await client.get(served.url("gone.txt")), 404)


async def test_traversal_in_the_path_is_refused(client: httpx.AsyncClient, served: Storage) -> None:
    served.put("a.txt", b"x")
    url = served.url("a.txt").replace("/files/a.txt", "/files/x/%2E%2E/a.txt")
    body = _problem(await client.get(url), 400)
    assert body["type"] == "https://kit.dev/problems/invalid-key"


# -- signed PUT ------------------------------------------------------------------------


async def test_signed_put_stores_the_body(client: httpx.AsyncClient, served: Storage) -> None:
    url = served.upload_url("in/photo.png", content_type="image/png")
    response = await client.put(url, content=PNG, headers={"Content-Type": "image/png"})
    assert response.status_code == 201
    assert response.json()["size"] == len(PNG)
    assert served.get("in/photo.png") == PNG
    assert served.info("in/photo.png").content_type == "image/png"


async def test_signed_put_streams_a_chunked_body(
    client: httpx.AsyncClient, served: Storage
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for i in range(4):
            yield bytes([i]) * 1024

    response = await client.put(served.upload_url("in/chunked.bin"), content=body())
    assert response.status_code == 201
    assert served.get("in/chunked.bin") == b"".join(bytes([i]) * 1024 for i in range(4))


async def test_chunked_body_over_the_cap_is_413_and_stores_nothing(
    client: httpx.AsyncClient, served: Storage
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 1024

    response = await client.put(served.upload_url("in/big.bin"), content=body())
    _problem(response, 413)
    assert not served.exists("in/big.bin")


async def test_declared_length_over_the_cap_is_413(
    client: httpx.AsyncClient, served: Storage
) -> None:
    _problem(await client.put(served.upload_url("in/big.bin"), content=b"x" * 4097), 413)
    assert not served.exists("in/big.bin")


async def test_tampered_put_is_403(client: httpx.AsyncClient, served: Storage) -> None:
    url = served.upload_url("in/a.png", content_type="image/png")
    headers = {"Content-Type": "image/png"}
    _problem(await client.put(_with_query(url, sig="B" * 43), content=PNG, headers=headers), 403)
    _problem(await client.put(_with_query(url, ct="text/html"), content=PNG, headers=headers), 403)
    _problem(await client.put(url, content=PNG, headers={"Content-Type": "text/html"}), 403)
    _problem(await client.put(served.url("in/a.png"), content=PNG, headers=headers), 403)
    assert not served.exists("in/a.png")


# -- UploadFile ------------------------------------------------------------------------


async def _post(
    client: httpx.AsyncClient, key: str, content: bytes, mimetype: str
) -> httpx.Response:
    return await client.post(f"/upload/{key}", files={"file": ("up.bin", content, mimetype)})


async def test_upload_file_of_an_allowed_type(client: httpx.AsyncClient, served: Storage) -> None:
    response = await _post(client, "av/1.png", PNG, "image/png")
    assert response.status_code == 200
    assert response.json() == {"key": "av/1.png", "content_type": "image/png"}
    assert served.get("av/1.png") == PNG


async def test_upload_file_with_a_spoofed_type_is_415(
    client: httpx.AsyncClient, served: Storage
) -> None:
    _problem(await _post(client, "av/1.png", PDF, "image/png"), 415)
    assert not served.exists("av/1.png")


async def test_upload_file_size_cap_boundary(client: httpx.AsyncClient, served: Storage) -> None:
    ok = await _post(client, "av/ok.png", PNG + bytes(2048 - len(PNG)), "image/png")
    assert ok.status_code == 200
    _problem(await _post(client, "av/big.png", PNG + bytes(2049 - len(PNG)), "image/png"), 413)
    assert not served.exists("av/big.png")


async def test_upload_file_accepts_async_storage(served: Storage) -> None:
    app = FastAPI()
    files = AsyncStorage(served)

    @app.post("/up")
    async def up(file: UploadFile) -> dict[str, int]:
        info = await save_upload_file(files, "t.txt", file, max_bytes=100, allowed_types=None)
        return {"size": info.size}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as test_client:
        response = await test_client.post("/up", files={"file": ("t.txt", b"hi", "text/plain")})
    assert response.json() == {"size": 2}


# -- problem handlers and router set-up ------------------------------------------------


async def test_errors_in_app_routes_are_problem_json(client: httpx.AsyncClient) -> None:
    body = _problem(await client.get("/missing"), 404)
    assert body["detail"] == "no object at 'x'"


def test_router_needs_a_storage_that_verifies_urls() -> None:
    class NoVerify:
        def put(self) -> None: ...

        def open(self) -> None: ...

    with pytest.raises(ConfigurationError, match="cannot verify signed URLs"):
        storage_router(NoVerify())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_upload_bytes"):
        storage_router(MemoryStorage(), max_upload_bytes=-1)


# -- flat memory -----------------------------------------------------------------------

# httpx's ASGI transport collects the whole response, so this drives the ASGI app
# directly: the body goes in 1 MiB messages and the response is counted, not kept.
_FLAT_MEMORY_SCRIPT = """
import asyncio, json, resource, sys
from urllib.parse import unquote, urlsplit
from fastapi import FastAPI
from kit_storage import LocalStorage
from kit_storage.fastapi import storage_router

root, size = sys.argv[1], int(sys.argv[2])
chunk = bytes(range(256)) * 4096  # 1 MiB
storage = LocalStorage(root, base_url="http://files.test/files", secret=b"m" * 32)
app = FastAPI()
app.include_router(storage_router(storage, max_upload_bytes=size))

async def call(method, url, body_size=0):
    parts = urlsplit(url)
    headers = [(b"host", b"files.test")]
    if method == "PUT":
        headers.append((b"content-length", str(body_size).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": unquote(parts.path),
             "raw_path": parts.path.encode(), "query_string": parts.query.encode(),
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
             "server": ("files.test", 80)}
    state = {"left": body_size, "final": False, "status": None, "received": 0}
    async def receive():
        if not state["final"]:
            n = min(state["left"], len(chunk))
            state["left"] -= n
            state["final"] = state["left"] == 0
            return {"type": "http.request", "body": chunk[:n], "more_body": not state["final"]}
        await asyncio.Event().wait()  # the client never disconnects
    async def send(message):
        if message["type"] == "http.response.start":
            state["status"] = message["status"]
        elif message["type"] == "http.response.body":
            state["received"] += len(message.get("body", b""))
    await app(scope, receive, send)
    return state

async def main():
    await call("GET", "/files/warm-up")  # first-request imports before the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    put = await call("PUT", storage.upload_url("big.bin", expires_in=600), size)
    got = await call("GET", storage.url("big.bin"))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"put_status": put["status"], "get_status": got["status"],
                      "stored": storage.info("big.bin").size, "received": got["received"],
                      "growth_kib": after - before}))

asyncio.run(main())
"""


@pytest.mark.slow
def test_large_put_and_get_stream_with_flat_memory(tmp_path: Path) -> None:
    size = 256 * 1024 * 1024
    result = subprocess.run(
        [sys.executable, "-c", _FLAT_MEMORY_SCRIPT, str(tmp_path / "root"), str(size)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    figures = json.loads(result.stdout)
    assert (figures["put_status"], figures["get_status"]) == (201, 200)
    assert figures["stored"] == size
    assert figures["received"] == size
    assert figures["growth_kib"] < 64 * 1024, f"peak RSS grew by {figures['growth_kib']} KiB"
