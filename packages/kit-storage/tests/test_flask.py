"""The Flask adapter with the real Flask test client: signed-URL serving (Range,
conditional requests, 403s), signed PUT uploads, checked form uploads and the extension."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from kit_storage import (
    ConfigurationError,
    LocalStorage,
    MemoryStorage,
    NotFound,
    Storage,
)
from kit_storage._signing import URLSigner
from kit_storage.flask import (
    KitStorage,
    get_storage,
    save_upload_from_request,
    storage_blueprint,
)

SECRET = b"f" * 32
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
def client(served: Storage) -> Iterator[FlaskClient]:
    app = Flask(__name__)
    KitStorage(app, storage=served)  # problem+json for errors raised in the app's own views
    app.register_blueprint(storage_blueprint(served, url_prefix="/files", max_upload_bytes=4096))

    @app.post("/upload/<path:key>")
    def upload(key: str) -> dict[str, object]:
        info = save_upload_from_request(
            served, key, max_bytes=2048, allowed_types={"image/png", "text/plain"}
        )
        return {"key": info.key, "content_type": info.content_type}

    with app.test_client() as test_client:
        yield test_client


def _problem(response: TestResponse, status: int) -> dict[str, object]:
    assert response.status_code == status, response.data
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    return body  # type: ignore[no-any-return]


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {**_query(url), **changes}
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


# -- GET -------------------------------------------------------------------------------


def test_full_get_has_the_right_headers(client: FlaskClient, served: Storage) -> None:
    info = served.put("docs/report.bin", DATA, content_type="application/x-report")
    response = client.get(served.url("docs/report.bin"))
    assert response.status_code == 200
    assert response.data == DATA
    headers = response.headers
    assert headers["Content-Type"] == "application/x-report"
    assert headers["Content-Length"] == str(len(DATA))
    assert headers["ETag"] == f'"{info.etag}"'
    assert headers["Last-Modified"].endswith(" GMT")
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Disposition"] == "inline"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"].startswith("private, max-age=")


def test_keys_with_spaces_percent_and_unicode(client: FlaskClient, served: Storage) -> None:
    key = "dir/my file #1 %41 \u00e9\u6f22.txt"
    served.put(key, b"odd")
    response = client.get(served.url(key))
    assert response.status_code == 200
    assert response.data == b"odd"


def test_head_sends_headers_only(client: FlaskClient, served: Storage) -> None:
    served.put("a.bin", DATA)
    response = client.head(served.url("a.bin"))
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(DATA))
    assert response.data == b""


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 10),  # first bytes
        ("bytes=-10", len(DATA) - 10, len(DATA)),  # suffix
        ("bytes=1000-", 1000, len(DATA)),  # open-ended
        ("bytes=1020-5000", 1020, len(DATA)),  # clipped to the end
        ("bytes=-5000", 0, len(DATA)),  # suffix longer than the file
    ],
)
def test_range_gives_206(
    client: FlaskClient, served: Storage, header: str, start: int, end: int
) -> None:
    served.put("r.bin", DATA)
    response = client.get(served.url("r.bin"), headers={"Range": header})
    assert response.status_code == 206
    assert response.data == DATA[start:end]
    assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert response.headers["Content-Length"] == str(end - start)


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_range_is_416(client: FlaskClient, served: Storage, header: str) -> None:
    served.put("r.bin", DATA)
    response = client.get(served.url("r.bin"), headers={"Range": header})
    _problem(response, 416)
    assert response.headers["Content-Range"] == f"bytes */{len(DATA)}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-1", "bytes=9-2", "bytes=x-"])
def test_multiple_or_malformed_ranges_are_ignored(
    client: FlaskClient, served: Storage, header: str
) -> None:
    served.put("r.bin", DATA)
    response = client.get(served.url("r.bin"), headers={"Range": header})
    assert response.status_code == 200
    assert response.data == DATA


def test_if_none_match_gives_304(client: FlaskClient, served: Storage) -> None:
    served.put("c.bin", DATA)
    url = served.url("c.bin")
    etag = client.get(url).headers["ETag"]
    response = client.get(url, headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert client.get(url, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    # Changed content, new etag: the old one no longer matches.
    served.put("c.bin", DATA[::-1])
    fresh = client.get(url, headers={"If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.data == DATA[::-1]


def test_if_range_with_a_stale_etag_sends_everything(client: FlaskClient, served: Storage) -> None:
    served.put("c.bin", DATA)
    url = served.url("c.bin")
    etag = client.get(url).headers["ETag"]
    same = client.get(url, headers={"Range": "bytes=0-1", "If-Range": etag})
    assert same.status_code == 206
    stale = client.get(url, headers={"Range": "bytes=0-1", "If-Range": '"stale"'})
    assert stale.status_code == 200
    assert stale.data == DATA


def test_download_name_gives_content_disposition(client: FlaskClient, served: Storage) -> None:
    served.put("x/1.pdf", PDF)
    response = client.get(served.url("x/1.pdf", download_name="Facture n\u00b01.pdf"))
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"Facture n_1.pdf\"; filename*=UTF-8''Facture%20n%C2%B01.pdf"
    )


def test_html_is_never_served_inline(client: FlaskClient, served: Storage) -> None:
    served.put("page.html", b"<html><script>alert(1)</script></html>")
    response = client.get(served.url("page.html"))
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Content-Disposition"].startswith("attachment;")


def test_expired_url_is_403(client: FlaskClient, served: Storage) -> None:
    served.put("e.txt", b"x")
    expired = URLSigner(SECRET, BASE).sign("GET", "e.txt", 60, now=time.time() - 3600)
    body = _problem(client.get(expired), 403)
    assert "expired" in str(body["detail"])


@pytest.mark.parametrize(
    "tamper",
    [
        lambda url: _with_query(url, sig="A" * 43),
        lambda url: _with_query(url, expires=str(int(_query(url)["expires"]) + 3600)),
        lambda url: _with_query(url, dl="evil.exe"),
        lambda url: url.replace("/files/t.txt", "/files/other.txt"),
        lambda url: url.split("?")[0],
    ],
    ids=["sig", "expires", "download-name", "key", "unsigned"],
)
def test_tampered_url_is_403(client: FlaskClient, served: Storage, tamper: object) -> None:
    served.put("t.txt", b"secret")
    served.put("other.txt", b"other secret")
    url = served.url("t.txt")
    body = _problem(client.get(tamper(url)), 403)  # type: ignore[operator]
    assert body["type"] == "https://kit.dev/problems/invalid-signature"


def test_valid_url_for_a_missing_object_is_404(client: FlaskClient, served: Storage) -> None:
    _problem(client.get(served.url("gone.txt")), 404)


def test_traversal_in_the_path_is_refused(client: FlaskClient, served: Storage) -> None:
    url = served.url("a.txt").replace("/files/a.txt", "/files/x/%2E%2E/a.txt")
    body = _problem(client.get(url), 400)
    assert body["type"] == "https://kit.dev/problems/invalid-key"


def test_upload_url_cannot_be_used_to_download(client: FlaskClient, served: Storage) -> None:
    served.put("u.txt", b"x")
    _problem(client.get(served.upload_url("u.txt")), 403)


# -- signed PUT ------------------------------------------------------------------------


def test_signed_put_stores_the_body(client: FlaskClient, served: Storage) -> None:
    url = served.upload_url("in/photo.png", content_type="image/png")
    response = client.put(url, data=PNG, headers={"Content-Type": "image/png"})
    assert response.status_code == 201
    assert response.get_json()["size"] == len(PNG)
    assert served.get("in/photo.png") == PNG
    assert served.info("in/photo.png").content_type == "image/png"


def test_signed_put_without_a_signed_type_guesses_from_the_key(
    client: FlaskClient, served: Storage
) -> None:
    url = served.upload_url("in/notes.txt")
    response = client.put(url, data=b"hi", headers={"Content-Type": "text/html"})
    assert response.status_code == 201
    assert served.info("in/notes.txt").content_type == "text/plain"


def test_signed_put_with_another_content_type_is_403(client: FlaskClient, served: Storage) -> None:
    url = served.upload_url("in/photo.png", content_type="image/png")
    _problem(client.put(url, data=PNG, headers={"Content-Type": "text/html"}), 403)
    assert not served.exists("in/photo.png")


def test_tampered_or_download_url_cannot_upload(client: FlaskClient, served: Storage) -> None:
    url = served.upload_url("in/a.bin")
    _problem(client.put(_with_query(url, sig="B" * 43), data=b"x"), 403)
    _problem(client.put(url.replace("/in/a.bin", "/in/b.bin"), data=b"x"), 403)
    _problem(client.put(served.url("in/a.bin"), data=b"x"), 403)
    assert not served.exists("in/a.bin")
    assert not served.exists("in/b.bin")


def test_signed_put_over_the_cap_is_413(client: FlaskClient, served: Storage) -> None:
    url = served.upload_url("in/big.bin")
    assert client.put(url, data=b"x" * 4096).status_code == 201
    _problem(client.put(served.upload_url("in/big2.bin"), data=b"x" * 4097), 413)
    assert not served.exists("in/big2.bin")


# -- form uploads ----------------------------------------------------------------------


def _post(
    client: FlaskClient, key: str, content: bytes, mimetype: str, field: str = "file"
) -> TestResponse:
    return client.post(
        f"/upload/{key}",
        data={field: (io.BytesIO(content), "upload.bin", mimetype)},
        content_type="multipart/form-data",
    )


def test_form_upload_of_an_allowed_type(client: FlaskClient, served: Storage) -> None:
    response = _post(client, "av/1.png", PNG, "image/png")
    assert response.status_code == 200
    assert response.get_json() == {"key": "av/1.png", "content_type": "image/png"}
    assert served.get("av/1.png") == PNG


def test_form_upload_with_a_spoofed_type_is_415(client: FlaskClient, served: Storage) -> None:
    _problem(_post(client, "av/1.png", PDF, "image/png"), 415)
    assert not served.exists("av/1.png")


def test_form_upload_over_the_cap_is_413(client: FlaskClient, served: Storage) -> None:
    assert _post(client, "av/ok.png", PNG + bytes(2048 - len(PNG)), "image/png").status_code == 200
    _problem(_post(client, "av/big.png", PNG + bytes(2049 - len(PNG)), "image/png"), 413)
    assert not served.exists("av/big.png")


def test_form_upload_without_the_field_is_400(client: FlaskClient, served: Storage) -> None:
    body = _problem(_post(client, "av/1.png", PNG, "image/png", field="other"), 400)
    assert "'file'" in str(body["detail"])


# -- the extension ---------------------------------------------------------------------


def test_extension_builds_local_storage_and_mounts_the_route(tmp_path: Path) -> None:
    app = Flask(__name__)
    app.config.update(
        KIT_STORAGE_ROOT=str(tmp_path / "files"),
        KIT_STORAGE_SECRET="k" * 32,
        KIT_STORAGE_BASE_URL="https://app.example/media/",
    )
    ext = KitStorage(app)
    with app.app_context():
        storage = get_storage()
    assert storage is ext.storage
    assert isinstance(storage, LocalStorage)
    storage.put("a.txt", b"hello")
    url = storage.url("a.txt")
    assert url.startswith("https://app.example/media/a.txt?")

    @app.get("/missing")
    def missing() -> str:
        raise NotFound("no object at 'x'")

    client = app.test_client()
    assert client.get(url).data == b"hello"
    _problem(client.get("/missing"), 404)


def test_extension_without_root_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="KIT_STORAGE_ROOT"):
        KitStorage(Flask(__name__))


def test_extension_with_a_given_storage_and_init_app() -> None:
    storage = MemoryStorage()
    ext = KitStorage(storage=storage)
    app = Flask(__name__)
    ext.init_app(app)
    assert get_storage(app) is storage
    with pytest.raises(ConfigurationError, match="not initialised"):
        get_storage(Flask(__name__))


def test_blueprint_needs_a_storage_that_verifies_urls(tmp_path: Path) -> None:
    class NoVerify:
        pass

    with pytest.raises(ConfigurationError, match="cannot verify signed URLs"):
        storage_blueprint(NoVerify())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_upload_bytes"):
        storage_blueprint(MemoryStorage(), max_upload_bytes=0)


# -- flat memory -----------------------------------------------------------------------

_FLAT_MEMORY_SCRIPT = """
import json, resource, sys
from flask import Flask
from kit_storage import LocalStorage
from kit_storage.flask import storage_blueprint

root, size = sys.argv[1], int(sys.argv[2])
chunk = bytes(range(256)) * 4096  # 1 MiB
storage = LocalStorage(root, base_url="http://files.test/files", secret=b"m" * 32)
app = Flask(__name__)
app.register_blueprint(storage_blueprint(storage, max_upload_bytes=size))
client = app.test_client()

class Body:  # size bytes made up on the fly, seekable as werkzeug's test client wants
    pos = 0
    def tell(self): return self.pos
    def seek(self, offset, whence=0):
        self.pos = offset + (size if whence == 2 else 0)
        return self.pos
    def read(self, n=-1):
        n = min(size - self.pos, len(chunk) if n < 0 else n)
        self.pos += n
        return chunk[:n]

client.get("/files/warm-up")  # first-request imports before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
put = client.put(storage.upload_url("big.bin", expires_in=600), input_stream=Body(),
                 content_length=size)
assert put.status_code == 201, put.data
response = client.get(storage.url("big.bin"), buffered=False)
received = 0
for part in response.response:
    received += len(part)
response.close()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"put": put.get_json()["size"], "received": received,
                  "growth_kib": after - before}))
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
    assert figures["put"] == size
    assert figures["received"] == size
    assert figures["growth_kib"] < 64 * 1024, f"peak RSS grew by {figures['growth_kib']} KiB"
