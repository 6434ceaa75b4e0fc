"""GCSStorage specifics, with the real google-cloud-storage client over HTTP.

Most tests talk to gcp-storage-emulator (tests/gcs_emulator.py, a subprocess on loopback).
Where the emulator cannot show a behaviour of real GCS, a small local HTTP server stands in
for the Google endpoint and answers the way Google documents (403, 412, 503, IAM
signBlob); the client, its transport and GCSStorage are always the real ones:

- the emulator ignores ``ifGenerationMatch=0`` (it overwrites where GCS answers 412), so
  ``if_not_exists`` is checked by the request the client sends and the 412 answer;
- the emulator serves signed URLs without checking signatures, so V4 signatures are
  verified here by rebuilding the canonical request and string-to-sign from the URL and
  checking ``X-Goog-Signature`` with the service account's public key;
- the emulator has no authentication (no 401/403).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import resource
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import google.oauth2.credentials
import psutil  # type: ignore[import-untyped,unused-ignore]
import pytest
import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature as BadSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from gcs_emulator import (
    EmulatorServer,
    admin_client,
    emulator,
    fresh_bucket,
    gcs_storage_for_test,
    service_account_info,
    service_account_json,
)
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[import-untyped]

from kit_storage.exceptions import (
    AlreadyExists,
    BackendUnavailable,
    BucketNotFound,
    ConfigurationError,
    CredentialsError,
    InvalidData,
    NotFound,
)
from kit_storage.gcs import GCSStorage

MiB = 1024 * 1024
SIGNER_EMAIL = "kit-signer@kit-test.iam.gserviceaccount.com"
HUGE = 1024 * MiB  # the flat-memory round trip


@pytest.fixture
def gcs(request: pytest.FixtureRequest) -> Iterator[GCSStorage]:
    with gcs_storage_for_test(request) as store:
        yield store


@pytest.fixture
def server() -> EmulatorServer:
    """The session's emulator (started once, on first use)."""
    return emulator()


def pattern(size: int, seed: bytes = b"kit") -> bytes:
    block = hashlib.sha256(seed).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


class Generated(io.RawIOBase):
    """``size`` bytes made on the fly, of unknown length to the reader (no seek, no len):
    what a streamed request body looks like. Never holds more than one read."""

    def __init__(self, size: int, block: int = 64 * 1024) -> None:
        self._left = size
        self._block = pattern(block, b"gen")
        self.max_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = min(len(view), self._left)
        self.max_read = max(self.max_read, len(view))
        done = 0
        while done < count:
            piece = min(len(self._block), count - done)
            view[done : done + piece] = self._block[:piece]
            done += piece
        self._left -= count
        return count


def generated_md5(size: int, block: int = 64 * 1024) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    stream = Generated(size, block)
    while chunk := stream.read(MiB):
        digest.update(chunk)
    return digest.hexdigest()


# -- credentials --------------------------------------------------------------------


def credential_email(url: str) -> str:
    query = dict(parse_qsl(urlsplit(url).query))
    return query["X-Goog-Credential"].split("/")[0]


@pytest.mark.parametrize("form", ["json-str", "dict", "file-str", "file-path"])
def test_credentials_forms(form: str, tmp_path: Path, server: EmulatorServer) -> None:
    key_file = tmp_path / "sa.json"
    key_file.write_text(service_account_json())
    credentials: Any = {
        "json-str": service_account_json(),
        "dict": service_account_info(),
        "file-str": str(key_file),
        "file-path": key_file,
    }[form]
    with fresh_bucket() as bucket:
        store = GCSStorage(bucket, credentials=credentials, base_url=server.url)
        store.put("a.txt", b"hi")
        assert store.get("a.txt") == b"hi"
        assert credential_email(store.url("a.txt")) == SIGNER_EMAIL


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        ('{"type": "service_account", ', r"inline credentials JSON is not valid JSON \(line 1"),
        ("{[1, 2]}", "inline credentials JSON is not valid JSON"),
        ('{"type": "service_account"}', "inline credentials JSON is not usable credentials"),
        ({"type": "external_account"}, "type 'external_account'"),
        ({"type": "service_account", "private_key": "-----BEGIN nope"}, "missing fields"),
        ("/nonexistent/key.json", "no credentials file at '/nonexistent/key.json'"),
        (42, "not int"),
    ],
)
def test_credentials_errors_say_which(credentials: Any, message: str) -> None:
    with pytest.raises(CredentialsError, match=message) as caught:
        GCSStorage("some-bucket", credentials=credentials, base_url="http://127.0.0.1:9")
    assert "BEGIN" not in str(caught.value)  # never echoes key material


def test_credentials_file_with_bad_json(tmp_path: Path) -> None:
    key_file = tmp_path / "sa.json"
    key_file.write_text('{"type": "service_account",\n "private_key": "secret-value"')
    with pytest.raises(CredentialsError, match=r"sa\.json' is not valid JSON \(line 2") as caught:
        GCSStorage("some-bucket", credentials=key_file)
    assert "secret-value" not in str(caught.value)


def test_application_default_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key_file = tmp_path / "adc.json"
    key_file.write_text(service_account_json())
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    store = GCSStorage("prod-bucket")
    url = store.url("docs/a.pdf", expires_in=60)  # signed locally: no network needed
    assert url.startswith("https://storage.googleapis.com/prod-bucket/docs/a.pdf?")
    assert credential_email(url) == SIGNER_EMAIL
    assert store.client.project == "kit-test"


def test_missing_application_default_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(CredentialsError, match="no application default credentials"):
        GCSStorage("prod-bucket")


def test_storage_emulator_host_means_anonymous(
    monkeypatch: pytest.MonkeyPatch, server: EmulatorServer
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    with fresh_bucket() as bucket:
        store = GCSStorage(bucket)
        store.put("x", b"1")
        assert [item.key for item in store.list()] == ["x"]  # type: ignore[union-attr]
        with pytest.raises(ConfigurationError, match="no credentials to sign URLs"):
            store.url("x")


def test_constructor_validation() -> None:
    with pytest.raises(ConfigurationError, match="gs://"):
        GCSStorage("gs://bucket", base_url="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="multiple of 256 KiB"):
        GCSStorage("bucket", base_url="http://127.0.0.1:9", chunk_size=1000)
    with pytest.raises(ConfigurationError, match="page_size"):
        GCSStorage("bucket", base_url="http://127.0.0.1:9", page_size=0)


def test_explicit_client(server: EmulatorServer) -> None:
    with fresh_bucket() as bucket:
        store = GCSStorage(bucket, client=admin_client(), credentials=service_account_info())
        store.put("k", b"v")
        assert store.client.bucket(bucket).blob("k").download_as_bytes() == b"v"
        assert credential_email(store.url("k")) == SIGNER_EMAIL


# -- missing bucket, refused credentials, outages -----------------------------------


def test_missing_bucket(server: EmulatorServer) -> None:
    store = GCSStorage("kit-no-such-bucket", base_url=server.url, retry_timeout=0)
    calls: list[Callable[[], object]] = [
        store.check,
        lambda: store.get("k"),
        lambda: store.put("k", b"1"),
        lambda: store.info("k"),
        lambda: store.exists("k"),
        lambda: store.delete("k"),
        lambda: list(store.list()),
        lambda: store.open("k"),
    ]
    for call in calls:
        with pytest.raises(BucketNotFound, match="bucket 'kit-no-such-bucket' does not exist"):
            call()


@dataclass
class StandIn:
    """A local HTTP server standing in for a Google endpoint: answers every request with
    ``status`` and ``body`` and records what it was sent."""

    status: int
    body: dict[str, Any]
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""


@contextmanager
def stand_in(status: int, message: str) -> Iterator[StandIn]:
    state = StandIn(status, {"error": {"code": status, "message": message}})

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            state.requests.append((self.command, self.path))
            payload = json.dumps(state.body).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_if_not_exists_sends_a_generation_precondition() -> None:
    # gcp-storage-emulator ignores ifGenerationMatch=0 and overwrites; real GCS answers
    # 412 conditionNotMet. So: check the real client sends the precondition, and that
    # GCS's 412 answer (from the stand-in) becomes AlreadyExists.
    with stand_in(412, "At least one of the pre-conditions you specified did not hold.") as api:
        store = GCSStorage("taken-bucket", base_url=api.url, retry_timeout=0)
        with pytest.raises(AlreadyExists, match=r"'avatars/1\.png'"):
            store.put("avatars/1.png", b"png", if_not_exists=True)
        with pytest.raises(AlreadyExists, match=r"'b\.txt'"):
            store.copy("a.txt", "b.txt", if_not_exists=True)
    # (the client also fetches bucket metadata in the background: GETs, not counted)
    posts = [path for method, path in api.requests if method == "POST"]
    put_path, copy_path = posts
    assert put_path.startswith("/upload/storage/v1/b/taken-bucket/o?")
    assert "ifGenerationMatch=0" in put_path.split("?")[1].split("&")
    assert "/o/a.txt/rewriteTo/b/taken-bucket/o/b.txt?" in copy_path
    assert "ifGenerationMatch=0" in copy_path.split("?")[1].split("&")


def test_if_not_exists_on_the_emulator(gcs: GCSStorage) -> None:
    # What the emulator can show: a free key is written (the precondition is accepted).
    info = gcs.put("fresh.txt", b"first", if_not_exists=True)
    assert info.size == 5
    assert gcs.get("fresh.txt") == b"first"


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials(status: int) -> None:
    with stand_in(status, "caller does not have storage.objects.get access") as api:
        store = GCSStorage("locked-bucket", base_url=api.url, retry_timeout=0)
        for call in (lambda: store.get("k"), lambda: store.put("k", b"1"), store.check):
            with pytest.raises(
                CredentialsError, match="credentials were refused for bucket 'locked-bucket'"
            ):
                call()


def test_server_errors_are_backend_unavailable() -> None:
    with stand_in(503, "backend error") as api:
        store = GCSStorage("busy-bucket", base_url=api.url, retry_timeout=0)
        for call in (
            lambda: store.get("k"),
            lambda: store.put("k", b"1"),
            lambda: list(store.list()),
        ):
            with pytest.raises(BackendUnavailable, match="bucket 'busy-bucket'"):
                call()


def test_network_down_is_backend_unavailable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = GCSStorage("far-bucket", base_url=f"http://127.0.0.1:{port}", retry_timeout=0)
    for call in (lambda: store.get("k"), lambda: store.put("k", b"1"), lambda: store.exists("k")):
        with pytest.raises(BackendUnavailable, match="bucket 'far-bucket'") as caught:
            call()
        assert "BEGIN" not in str(caught.value)


# -- uploads and downloads ----------------------------------------------------------


class CountingSession(requests.Session):
    """The client's HTTP session, counting the upload requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        headers = {k.lower(): v for k, v in (kwargs.get("headers") or {}).items()}
        if method == "PUT" and "content-range" in headers:
            self.chunks.append(headers["content-range"])
        return super().request(method, url, *args, **kwargs)


def test_resumable_upload_of_20_mib_in_small_chunks(server: EmulatorServer) -> None:
    session = CountingSession()
    client = storage.Client(
        project="kit-test",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": server.url},
        _http=session,
    )
    size = 20 * MiB
    with fresh_bucket() as bucket:
        store = GCSStorage(bucket, client=client, chunk_size=MiB)
        source = Generated(size)
        info = store.put("big/video.bin", cast(IO[bytes], source))
        assert source.max_read <= MiB  # read as it went, never whole
        assert len(session.chunks) == 20 + 1  # 20 chunks of 1 MiB, then the final size
        assert session.chunks[0] == "bytes 0-1048575/*"
        assert info.size == size
        assert info.md5 == generated_md5(size)
        assert store.info("big/video.bin").md5 == info.md5


def test_upload_from_a_path_and_a_partly_read_file(gcs: GCSStorage, tmp_path: Path) -> None:
    data = pattern(3 * MiB + 17)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert gcs.put("from-path", path).md5 == hashlib.md5(data, usedforsecurity=False).hexdigest()
    with path.open("rb") as handle:
        handle.seek(100)  # put() uploads from where the stream stands
        info = gcs.put("from-offset", handle)
    assert info.size == len(data) - 100
    assert gcs.get("from-offset") == data[100:]


def test_ranges_across_chunks(gcs: GCSStorage, server: EmulatorServer) -> None:
    data = pattern(3 * MiB + 5)
    gcs.put("r.bin", data)
    store = GCSStorage(gcs.bucket, base_url=server.url, chunk_size=256 * 1024)
    for start, end in [
        (0, None),
        (1, 2),
        (256 * 1024 - 1, 256 * 1024 + 1),
        (MiB, 3 * MiB),
        (5, 10 * MiB),
    ]:
        with store.open("r.bin", start=start, end=end) as stream:
            assert stream.read() == data[start:end]
    with store.open("r.bin", start=100) as stream:  # small reads, many ranged requests
        pieces = []
        while piece := stream.read(100_000):
            pieces.append(piece)
    assert b"".join(pieces) == data[100:]
    with store.open("r.bin", start=len(data) + 10) as stream:
        assert stream.read() == b""
    with pytest.raises(InvalidData, match="start"):
        store.open("r.bin", start=-1)
    with pytest.raises(NotFound):
        store.open("missing.bin")


def test_download_to_is_atomic_and_checked(gcs: GCSStorage, tmp_path: Path) -> None:
    data = pattern(2 * MiB)
    gcs.put("d.bin", data)
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    info = gcs.download_to("d.bin", target)
    assert target.read_bytes() == data
    assert info.md5 == hashlib.md5(data, usedforsecurity=False).hexdigest()
    with pytest.raises(NotFound):
        gcs.download_to("missing", target)
    assert target.read_bytes() == data  # a failed download leaves the file whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no temp files left


def test_list_pages_lazily(server: EmulatorServer) -> None:
    with fresh_bucket() as bucket:
        store = GCSStorage(bucket, base_url=server.url, page_size=2)
        for name in ["a/1", "a/2", "a/b/3", "c"]:
            store.put(name, b"")
        assert [
            getattr(e, "key", getattr(e, "prefix", None)) for e in store.list("a/", delimiter="/")
        ] == [
            "a/1",
            "a/2",
            "a/b/",
        ]
        assert [e.key for e in store.list()] == ["a/1", "a/2", "a/b/3", "c"]  # type: ignore[union-attr]


# -- V4 signed URLs -------------------------------------------------------------------


def public_key() -> rsa.RSAPublicKey:
    key = serialization.load_pem_private_key(service_account_info()["private_key"].encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.public_key()


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def v4_string_to_sign(url: str, method: str, headers: dict[str, str] | None = None) -> str:
    """The V4 string-to-sign rebuilt from a signed URL, per
    https://cloud.google.com/storage/docs/authentication/signatures."""
    parts = urlsplit(url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "X-Goog-Signature"
    ]
    canonical_query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query))
    all_headers = {"host": parts.netloc, **{k.lower(): v for k, v in (headers or {}).items()}}
    signed = dict(query)["X-Goog-SignedHeaders"].split(";")
    assert sorted(all_headers) == signed
    canonical_headers = "".join(f"{name}:{all_headers[name].strip()}\n" for name in signed)
    canonical_request = "\n".join(
        [
            method,
            parts.path,
            canonical_query,
            canonical_headers,
            ";".join(signed),
            "UNSIGNED-PAYLOAD",
        ]
    )
    params = dict(query)
    scope = params["X-Goog-Credential"].split("/", 1)[1]
    return "\n".join(
        [
            params["X-Goog-Algorithm"],
            params["X-Goog-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )


def verify_v4(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    now: datetime | None = None,
) -> None:
    """Raise if the URL's signature does not match or it has expired: what GCS does."""
    params = dict(parse_qsl(urlsplit(url).query))
    signature = bytes.fromhex(params["X-Goog-Signature"])
    public_key().verify(
        signature,
        v4_string_to_sign(url, method, headers).encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    signed_at = datetime.strptime(params["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if (now or datetime.now(UTC)) > signed_at + timedelta(seconds=int(params["X-Goog-Expires"])):
        raise BadSignature("expired")


def test_signed_download_url(gcs: GCSStorage, server: EmulatorServer) -> None:
    gcs.put("docs/q1 report.pdf", b"%PDF-1.7 ...", content_type="application/pdf")
    url = gcs.url("docs/q1 report.pdf", expires_in=600, download_name="Rapport T1 é.pdf")
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    assert f"{parts.scheme}://{parts.netloc}" == server.url
    assert unquote(parts.path) == f"/{gcs.bucket}/docs/q1 report.pdf"
    assert params["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert params["X-Goog-Expires"] == "600"
    assert params["X-Goog-Credential"].startswith(f"{SIGNER_EMAIL}/")
    assert params["response-content-disposition"] == (
        "attachment; filename=\"Rapport T1 _.pdf\"; filename*=UTF-8''Rapport%20T1%20%C3%A9.pdf"
    )
    verify_v4(url)
    # the emulator serves it (without checking the signature: verified above instead)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"%PDF-1.7 ..."
    assert response.headers["Content-Disposition"] == params["response-content-disposition"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda url: url.replace("/docs/a.txt?", "/docs/b.txt?"),
        lambda url: url.replace("X-Goog-Expires=60", "X-Goog-Expires=6000"),
        lambda url: url.replace("X-Goog-Signature=", "X-Goog-Signature=00")[:-2],
        lambda url: url + "&response-content-type=text%2Fhtml",
    ],
)
def test_tampered_signed_urls_do_not_verify(gcs: GCSStorage, tamper: Callable[[str], str]) -> None:
    url = gcs.url("docs/a.txt", expires_in=60)
    verify_v4(url)
    with pytest.raises(BadSignature):
        verify_v4(tamper(url))


def test_signed_urls_expire_and_are_bound_to_the_method(gcs: GCSStorage) -> None:
    url = gcs.url("a.txt", expires_in=60)
    verify_v4(url, now=datetime.now(UTC) + timedelta(seconds=30))
    with pytest.raises(BadSignature, match="expired"):
        verify_v4(url, now=datetime.now(UTC) + timedelta(seconds=61))
    with pytest.raises(BadSignature):
        verify_v4(url, method="PUT")
    with pytest.raises(InvalidData, match="expires_in"):
        gcs.url("a.txt", expires_in=7 * 24 * 3600 + 1)


def test_signed_upload_url(gcs: GCSStorage) -> None:
    url = gcs.upload_url("incoming/photo.png", expires_in=300, content_type="image/png")
    verify_v4(url, "PUT", {"content-type": "image/png"})
    with pytest.raises(BadSignature):  # another content type is another signature
        verify_v4(url, "PUT", {"content-type": "text/html"})
    response = requests.put(
        url, data=b"\x89PNG...", headers={"Content-Type": "image/png"}, timeout=10
    )
    assert response.status_code == 200
    info = gcs.info("incoming/photo.png")
    assert (info.size, info.content_type) == (7, "image/png")


# -- IAM signBlob (no private key) --------------------------------------------------


@dataclass
class SignBlobRecord:
    connect: list[str] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)


def _self_signed(tmp_path: Path, host: str) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "iam.pem", tmp_path / "iam.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def iam_stand_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int = 200
) -> Iterator[SignBlobRecord]:
    """The client POSTs to https://iamcredentials.googleapis.com (the host is fixed but for
    the universe domain, so it cannot point at loopback). An HTTPS proxy (HTTPS_PROXY, which
    requests honours) takes the CONNECT, ends TLS with a certificate for that host trusted
    through REQUESTS_CA_BUNDLE, and answers signBlob by signing with the test key, as IAM
    signs with the service account's Google-held key."""
    host = "iamcredentials.googleapis.com"
    cert_path, key_path = _self_signed(tmp_path, host)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    private = serialization.load_pem_private_key(
        service_account_info()["private_key"].encode(), None
    )
    assert isinstance(private, rsa.RSAPrivateKey)
    signer: rsa.RSAPrivateKey = private
    record = SignBlobRecord()

    class Inner(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            record.requests.append((self.path, dict(self.headers), body))
            if status == 200:
                signature = signer.sign(
                    base64.b64decode(body["payload"]), padding.PKCS1v15(), hashes.SHA256()
                )
                answer: dict[str, Any] = {
                    "keyId": "k1",
                    "signedBlob": base64.b64encode(signature).decode(),
                }
            else:
                answer = {
                    "error": {
                        "code": status,
                        "message": "Permission 'iam.serviceAccounts.signBlob' denied",
                    }
                }
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_CONNECT(self) -> None:
            record.connect.append(self.path)
            self.send_response(200, "Connection established")
            self.end_headers()
            self.wfile.flush()
            with context.wrap_socket(self.connection, server_side=True) as tls:
                Inner(tls, self.client_address, self.server)
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_path))
    for name in ("NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield record
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join()


def test_sign_blob_when_there_is_no_private_key(
    gcs: GCSStorage, server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Token-only credentials, as on Cloud Run / Compute Engine (no private key).
    token = google.oauth2.credentials.Credentials(token="ya29.kit-test-token")  # type: ignore[no-untyped-call]
    store = GCSStorage(
        gcs.bucket, base_url=server.url, credentials=token, service_account_email=SIGNER_EMAIL
    )
    gcs.put("a.txt", b"signed by IAM")
    with iam_stand_in(tmp_path, monkeypatch) as iam:
        url = store.url("a.txt", expires_in=120)
    assert iam.connect == ["iamcredentials.googleapis.com:443"]
    ((path, headers, body),) = iam.requests
    assert path == f"/v1/projects/-/serviceAccounts/{SIGNER_EMAIL}:signBlob?alt=json"
    assert headers["Authorization"] == "Bearer ya29.kit-test-token"
    assert base64.b64decode(body["payload"]).decode() == v4_string_to_sign(url, "GET")
    verify_v4(url)
    assert credential_email(url) == SIGNER_EMAIL
    assert requests.get(url, timeout=10).content == b"signed by IAM"


def test_sign_blob_refused_and_missing_email(
    gcs: GCSStorage, server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = google.oauth2.credentials.Credentials(token="ya29.kit-test-token")  # type: ignore[no-untyped-call]
    store = GCSStorage(
        gcs.bucket, base_url=server.url, credentials=token, service_account_email=SIGNER_EMAIL
    )
    with (
        iam_stand_in(tmp_path, monkeypatch, status=403),
        pytest.raises(CredentialsError, match="IAM signBlob refused") as caught,
    ):
        store.upload_url("a.txt")
    assert "ya29" not in str(caught.value)
    no_email = GCSStorage(gcs.bucket, base_url=server.url, credentials=token)
    with pytest.raises(ConfigurationError, match="service_account_email="):
        no_email.url("a.txt")


# -- 1 GiB with flat memory ---------------------------------------------------------


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 5 ms,
    plus the kernel's high-water mark when it moved)."""

    def __enter__(self) -> PeakRSS:
        self._process = psutil.Process()
        self.baseline = self._process.memory_info().rss
        self._maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if maxrss > self._maxrss_before:
            self.peak = max(self.peak, maxrss)

    @property
    def growth_mib(self) -> float:
        return float(self.peak - self.baseline) / MiB


def test_one_gib_round_trip_with_flat_memory(gcs: GCSStorage, tmp_path: Path) -> None:
    # The emulator is another process: only this process's memory is measured.
    size = HUGE
    expected = generated_md5(size)
    with PeakRSS() as upload:
        info = gcs.put("huge.bin", cast(IO[bytes], Generated(size)))
    assert (info.size, info.md5) == (size, expected)
    with PeakRSS() as reading:
        digest = hashlib.md5(usedforsecurity=False)
        with gcs.open("huge.bin") as stream:
            while chunk := stream.read(MiB):
                digest.update(chunk)
    assert digest.hexdigest() == expected
    target = tmp_path / "huge.bin"
    with PeakRSS() as download:
        gcs.download_to("huge.bin", target)
    assert target.stat().st_size == size
    target.unlink()
    for name, peak in [("upload", upload), ("open", reading), ("download_to", download)]:
        assert peak.growth_mib < 64, f"{name}: RSS grew {peak.growth_mib:.0f} MiB"
