"""The contract every backend honours: each test runs for memory, local and gcs.

The ``storage`` fixture (tests/conftest.py) gives a fresh, empty storage per test; the gcs
one is the real google-cloud-storage client over HTTP against gcp-storage-emulator.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from kit_storage._signing import URLSigner
from kit_storage._types import CHUNK_SIZE, Folder, ObjectInfo, Storage
from kit_storage.exceptions import (
    AlreadyExists,
    InvalidData,
    InvalidKey,
    InvalidSignature,
    NotFound,
)

SECRET = b"s" * 32  # the fixture's secret (tests/conftest.py)
BASE_URL = "http://files.test/files"


def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.node.callspec.params["storage"]
    return name


class ChunkedOnly:
    """A binary stream that refuses whole reads: proves ``put`` streams in chunks."""

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > CHUNK_SIZE:
            raise AssertionError(f"read({size!r}): put() must read in chunks <= CHUNK_SIZE")
        self.reads += 1
        return self._stream.read(size)


def payload(size: int) -> bytes:
    block = hashlib.sha256(str(size).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def keys_of(items: Iterator[ObjectInfo | Folder]) -> list[str]:
    return [item.key if isinstance(item, ObjectInfo) else item.prefix for item in items]


# -- put / get --------------------------------------------------------------------


def test_backend_satisfies_the_protocol(storage: Storage) -> None:
    assert isinstance(storage, Storage)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_put_get_round_trip_bytes(storage: Storage, wrap: Callable[[bytes], Any]) -> None:
    info = storage.put("docs/a.bin", wrap(b"\x00hello\xff"))
    assert info.key == "docs/a.bin"
    assert info.size == 7
    assert storage.get("docs/a.bin") == b"\x00hello\xff"


def test_put_empty_object(storage: Storage) -> None:
    assert storage.put("empty", b"").size == 0
    assert storage.get("empty") == b""
    assert storage.info("empty").size == 0


def test_put_streams_a_file_object_in_chunks(storage: Storage) -> None:
    data = payload(3 * CHUNK_SIZE + 123)
    stream = ChunkedOnly(data)
    info = storage.put("big/stream.bin", stream)  # type: ignore[arg-type]
    assert stream.reads >= 4
    assert info.size == len(data)
    assert storage.get("big/stream.bin") == data


def test_put_from_a_path(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "source.txt"
    source.write_bytes(b"from disk")
    info = storage.put("from/path.txt", source)
    assert info.size == 9
    assert info.content_type == "text/plain"
    assert storage.get("from/path.txt") == b"from disk"


def test_put_refuses_what_it_cannot_store(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(InvalidData, match="str"):
        storage.put("a.txt", "text is ambiguous")  # type: ignore[arg-type]
    with pytest.raises(InvalidData, match="no local file"):
        storage.put("a.txt", tmp_path / "missing.txt")
    with pytest.raises(InvalidData, match="text-mode"):
        storage.put("a.txt", io.StringIO("x"))  # type: ignore[arg-type]
    with pytest.raises(InvalidData):
        storage.put("a.txt", 42)  # type: ignore[arg-type]
    assert not storage.exists("a.txt")


def test_put_replaces_existing_content(storage: Storage) -> None:
    first = storage.put("k.txt", b"one")
    second = storage.put("k.txt", b"second version")
    assert storage.get("k.txt") == b"second version"
    assert second.size == 14
    assert first.etag != second.etag


def test_content_type_is_guessed_from_the_key(storage: Storage) -> None:
    assert storage.put("img/logo.png", b"\x89PNG").content_type == "image/png"
    assert storage.put("noext", b"x").content_type == "application/octet-stream"
    assert storage.info("img/logo.png").content_type == "image/png"
    assert storage.info("noext").content_type == "application/octet-stream"


def test_explicit_content_type_wins(storage: Storage) -> None:
    storage.put("data.bin", b"{}", content_type="application/json")
    assert storage.info("data.bin").content_type == "application/json"


@pytest.mark.parametrize("bad", ["text", "text/plain\r\nX-Evil: 1", "a/b/c", ""])
def test_invalid_content_type_is_refused(storage: Storage, bad: str) -> None:
    with pytest.raises(InvalidData, match="content_type"):
        storage.put("a.txt", b"x", content_type=bad)
    assert not storage.exists("a.txt")


def test_metadata_round_trip(storage: Storage) -> None:
    meta = {"owner": "42", "original-name": "Résumé final.pdf", "x.y_z": ""}
    info = storage.put("cv.pdf", b"%PDF", metadata=meta)
    assert dict(info.metadata) == meta
    assert dict(storage.info("cv.pdf").metadata) == meta
    listed = next(iter(storage.list()))
    assert isinstance(listed, ObjectInfo)
    assert dict(listed.metadata) == meta


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"bad key": "v"}, "metadata key"),
        ({"": "v"}, "metadata key"),
        ({"k": "line\r\nX-Injected: 1"}, "control"),
        ({"k": 1}, "must be a str"),
        ({"k": "v" * 9000}, "bytes"),
    ],
)
def test_invalid_metadata_is_refused(
    storage: Storage, metadata: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidData, match=message):
        storage.put("m.txt", b"x", metadata=metadata)
    assert not storage.exists("m.txt")


def test_info_fields(storage: Storage) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)
    storage.put("info/a.txt", b"hello", metadata={"a": "b"})
    info = storage.info("info/a.txt")
    assert info.key == "info/a.txt"
    assert info.size == 5
    assert info.content_type == "text/plain"
    assert isinstance(info.etag, str)
    assert info.etag
    assert info.md5 in (None, hashlib.md5(b"hello", usedforsecurity=False).hexdigest())
    assert info.updated.tzinfo is not None
    assert info.updated.utcoffset() == timedelta(0)
    assert before <= info.updated <= datetime.now(UTC) + timedelta(minutes=5)
    assert dict(info.metadata) == {"a": "b"}


# -- if_not_exists, exists, delete --------------------------------------------------


def emulator_ignores_preconditions(request: pytest.FixtureRequest) -> bool:
    """gcp-storage-emulator accepts ``ifGenerationMatch=0`` on an existing object, where
    real GCS answers 412, so against it a taken key cannot be refused: for gcs these tests
    check only that the call is accepted, and test_gcs.py checks that the precondition is
    sent with the request."""
    return backend(request) == "gcs"


def test_if_not_exists(storage: Storage, request: pytest.FixtureRequest) -> None:
    storage.put("once.txt", b"first", if_not_exists=True)
    assert storage.get("once.txt") == b"first"
    if emulator_ignores_preconditions(request):
        return
    with pytest.raises(AlreadyExists, match=r"once\.txt"):
        storage.put("once.txt", b"second", if_not_exists=True)
    assert storage.get("once.txt") == b"first"


def test_exists_delete_delete_many(storage: Storage) -> None:
    assert not storage.exists("a/1")
    for name in ("a/1", "a/2", "b/3"):
        storage.put(name, name.encode())
    assert storage.exists("a/1")
    assert not storage.exists("a")  # a folder is not an object
    assert storage.delete("a/1") is True
    assert storage.delete("a/1") is False
    assert not storage.exists("a/1")
    assert storage.delete_many(["a/2", "b/3", "nothing/here"]) == 2
    assert list(storage.list()) == []
    assert storage.delete_many([]) == 0


def test_missing_keys_raise_not_found(storage: Storage, tmp_path: Path) -> None:
    calls: list[Callable[[], object]] = [
        lambda: storage.get("missing.txt"),
        lambda: storage.open("missing.txt"),
        lambda: storage.info("missing.txt"),
        lambda: storage.download_to("missing.txt", tmp_path / "out"),
        lambda: storage.copy("missing.txt", "other.txt"),
        lambda: storage.move("missing.txt", "other.txt"),
        lambda: storage.get("no/such/folder/x"),
    ]
    for call in calls:
        with pytest.raises(NotFound, match=r"missing\.txt|no/such"):
            call()
    assert not (tmp_path / "out").exists()
    assert not storage.exists("other.txt")


# -- list ---------------------------------------------------------------------------


def test_list_in_key_order_with_prefix(storage: Storage) -> None:
    names = ["b.txt", "a/z.txt", "a-c.txt", "a/b/c.txt", "a0.txt", "a/a.txt", "ab/x"]
    for name in names:
        storage.put(name, b"x")
    assert keys_of(storage.list()) == sorted(names)
    assert keys_of(storage.list("a/")) == ["a/a.txt", "a/b/c.txt", "a/z.txt"]
    assert keys_of(storage.list("a")) == sorted(n for n in names if n.startswith("a"))
    assert keys_of(storage.list("a/b")) == ["a/b/c.txt"]
    assert keys_of(storage.list("zzz/")) == []
    assert all(isinstance(i, ObjectInfo) and i.size == 1 for i in storage.list())


def test_list_with_delimiter_gives_folders(storage: Storage) -> None:
    for name in ["top.txt", "a/1.txt", "a/2/deep.txt", "a/3.txt", "b/x/y.txt", "c.txt"]:
        storage.put(name, b"x")
    root = list(storage.list(delimiter="/"))
    assert {i.prefix for i in root if isinstance(i, Folder)} == {"a/", "b/"}
    assert {i.key for i in root if isinstance(i, ObjectInfo)} == {"top.txt", "c.txt"}
    inside = list(storage.list("a/", delimiter="/"))
    assert [i.key for i in inside if isinstance(i, ObjectInfo)] == ["a/1.txt", "a/3.txt"]
    assert [i.prefix for i in inside if isinstance(i, Folder)] == ["a/2/"]
    with pytest.raises(InvalidData, match="delimiter"):
        list(storage.list(delimiter="|"))


def test_list_is_lazy_over_many_pages(storage: Storage) -> None:
    count = 1_100  # more than one page of the GCS JSON API (1,000)
    names = [f"many/{i:05d}" for i in range(count)]
    for name in names:
        storage.put(name, b"")
    listing = storage.list("many/")
    assert isinstance(listing, Iterator)
    assert not isinstance(listing, list)
    first = next(listing)
    assert isinstance(first, ObjectInfo)
    assert first.key == names[0]
    assert [first.key, *keys_of(listing)] == names


def test_list_of_an_empty_storage(storage: Storage) -> None:
    assert list(storage.list()) == []
    assert list(storage.list("x/", delimiter="/")) == []


# -- copy / move --------------------------------------------------------------------


def test_copy_keeps_content_type_and_metadata(storage: Storage) -> None:
    storage.put("src.bin", b"payload", content_type="image/webp", metadata={"k": "v"})
    info = storage.copy("src.bin", "dst/copy.bin")
    assert info.key == "dst/copy.bin"
    assert info.size == 7
    copied = storage.info("dst/copy.bin")
    assert copied.content_type == "image/webp"
    assert dict(copied.metadata) == {"k": "v"}
    assert storage.get("dst/copy.bin") == b"payload"
    assert storage.get("src.bin") == b"payload"


def test_copy_if_not_exists(storage: Storage, request: pytest.FixtureRequest) -> None:
    storage.put("src", b"new")
    storage.copy("src", "fresh", if_not_exists=True)
    assert storage.get("fresh") == b"new"
    storage.put("dst", b"old")
    if not emulator_ignores_preconditions(request):
        with pytest.raises(AlreadyExists):
            storage.copy("src", "dst", if_not_exists=True)
        assert storage.get("dst") == b"old"
    storage.copy("src", "dst")
    assert storage.get("dst") == b"new"


def test_move(storage: Storage) -> None:
    storage.put("from/a.txt", b"moving", metadata={"k": "v"})
    info = storage.move("from/a.txt", "to/b.txt")
    assert info.key == "to/b.txt"
    assert not storage.exists("from/a.txt")
    assert storage.get("to/b.txt") == b"moving"
    moved = storage.info("to/b.txt")
    assert moved.content_type == "text/plain"
    assert dict(moved.metadata) == {"k": "v"}
    assert keys_of(storage.list()) == ["to/b.txt"]


def test_move_if_not_exists_keeps_both(storage: Storage, request: pytest.FixtureRequest) -> None:
    storage.put("a", b"A")
    storage.move("a", "fresh", if_not_exists=True)
    assert storage.get("fresh") == b"A"
    assert not storage.exists("a")
    storage.put("a", b"A")
    storage.put("b", b"B")
    if not emulator_ignores_preconditions(request):
        with pytest.raises(AlreadyExists):
            storage.move("a", "b", if_not_exists=True)
        assert storage.get("a") == b"A"
        assert storage.get("b") == b"B"
    storage.move("a", "b")
    assert storage.get("b") == b"A"
    assert not storage.exists("a")


def test_copy_and_move_onto_themselves(storage: Storage) -> None:
    storage.put("same", b"x")
    assert storage.copy("same", "same").size == 1
    assert storage.move("same", "same").size == 1
    assert storage.get("same") == b"x"
    with pytest.raises(AlreadyExists):
        storage.copy("same", "same", if_not_exists=True)


# -- open / download_to -------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, b"0123456789"),
        (3, None, b"3456789"),
        (0, 4, b"0123"),
        (2, 5, b"234"),
        (5, 5, b""),
        (7, 100, b"789"),  # clipped at the end
        (10, None, b""),
        (12, 20, b""),  # entirely past the end
    ],
)
def test_open_ranges(storage: Storage, start: int, end: int | None, expected: bytes) -> None:
    storage.put("digits.txt", b"0123456789")
    with storage.open("digits.txt", start=start, end=end) as reader:
        assert reader.read() == expected


def test_open_streams_in_pieces(storage: Storage) -> None:
    data = payload(2 * CHUNK_SIZE + 17)
    storage.put("big.bin", data)
    with storage.open("big.bin", start=5, end=len(data) - 5) as reader:
        pieces = []
        while piece := reader.read(65536):
            assert len(piece) <= 65536
            pieces.append(piece)
    assert b"".join(pieces) == data[5:-5]


@pytest.mark.parametrize(("start", "end"), [(-1, None), (5, 4), (0, -1)])
def test_open_refuses_bad_ranges(storage: Storage, start: int, end: int | None) -> None:
    storage.put("r.txt", b"0123456789")
    with pytest.raises(InvalidData):
        storage.open("r.txt", start=start, end=end)


def test_download_to(storage: Storage, tmp_path: Path) -> None:
    data = payload(CHUNK_SIZE + 1)
    storage.put("dl/file.bin", data, metadata={"k": "v"})
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    target = downloads / "out.bin"
    target.write_bytes(b"previous")
    info = storage.download_to("dl/file.bin", target)
    assert info.size == len(data)
    assert target.read_bytes() == data
    assert os.listdir(downloads) == ["out.bin"]  # no temp file left
    with pytest.raises(InvalidData, match="no folder"):
        storage.download_to("dl/file.bin", tmp_path / "missing" / "out.bin")


# -- signed URLs ----------------------------------------------------------------------


def _params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def test_url_and_upload_url_name_the_key(storage: Storage) -> None:
    storage.put("docs/report.pdf", b"%PDF")
    url = storage.url("docs/report.pdf", expires_in=60, download_name="Report.pdf")
    upload = storage.upload_url("docs/new.pdf", content_type="application/pdf")
    assert isinstance(url, str)
    assert isinstance(upload, str)
    assert quote("docs/report.pdf") in url
    assert quote("docs/new.pdf") in upload


@pytest.mark.parametrize("expires_in", [0, -5, 7 * 24 * 3600 + 1, "60", True])
def test_url_expiry_is_validated(storage: Storage, expires_in: Any) -> None:
    with pytest.raises(InvalidData, match="expires_in"):
        storage.url("a.txt", expires_in=expires_in)
    with pytest.raises(InvalidData, match="expires_in"):
        storage.upload_url("a.txt", expires_in=expires_in)


def test_local_signed_urls_verify(storage: Storage, request: pytest.FixtureRequest) -> None:
    if backend(request) == "gcs":
        # GCS URLs are V4 signatures checked by Google; test_gcs.py recomputes them.
        assert storage.url("a.txt").startswith("http")
        return
    verify = storage.verify_signed_url  # type: ignore[attr-defined]
    url = storage.url("docs/a b.txt", download_name="A.txt")
    assert url.startswith(BASE_URL + "/docs/a%20b.txt?")
    granted = verify("docs/a b.txt", _params(url))
    assert granted.download_name == "A.txt"
    upload = storage.upload_url("docs/up.txt", content_type="text/plain")
    assert verify("docs/up.txt", _params(upload), method="PUT").content_type == "text/plain"

    tampered = [
        ("docs/other.txt", {**_params(url)}),  # another key
        ("docs/a b.txt", {**_params(url), "dl": "evil.exe"}),
        ("docs/a b.txt", {**_params(url), "expires": str(int(time.time()) + 10**6)}),
        ("docs/a b.txt", {**_params(url), "sig": "A" + _params(url)["sig"][1:]}),
        ("docs/a b.txt", {k: v for k, v in _params(url).items() if k != "sig"}),
        ("docs/up.txt", {**_params(upload), "ct": "text/html"}),
    ]
    for key, params in tampered:
        with pytest.raises(InvalidSignature):
            verify(key, params)
    with pytest.raises(InvalidSignature):
        verify("docs/up.txt", _params(upload), method="GET")  # an upload URL is not a download
    with pytest.raises(InvalidSignature):
        verify("docs/a b.txt", _params(url), method="PUT")

    expired = URLSigner(SECRET, BASE_URL).sign("GET", "a.txt", 60, now=time.time() - 120)
    with pytest.raises(InvalidSignature, match="expired"):
        verify("a.txt", _params(expired))


# -- keys -----------------------------------------------------------------------------

BAD_KEYS = ["", "/abs", "../up", "a/../../b", "a//b", "a/./b", "dir/", "a\\b", "nul\x00", "C:x"]


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_invalid_keys_are_refused_by_every_method(
    storage: Storage, bad: str, tmp_path: Path
) -> None:
    calls: list[Callable[[], object]] = [
        lambda: storage.put(bad, b"x"),
        lambda: storage.get(bad),
        lambda: storage.open(bad),
        lambda: storage.info(bad),
        lambda: storage.exists(bad),
        lambda: storage.delete(bad),
        lambda: storage.delete_many(["fine", bad]),
        lambda: storage.download_to(bad, tmp_path / "out"),
        lambda: storage.copy(bad, "fine"),
        lambda: storage.copy("fine", bad),
        lambda: storage.move(bad, "fine"),
        lambda: storage.move("fine", bad),
        lambda: storage.url(bad),
        lambda: storage.upload_url(bad),
        lambda: list(storage.list(bad if bad not in ("", "dir/") else "/")),
    ]
    storage.put("fine", b"ok")
    for call in calls:
        with pytest.raises(InvalidKey):
            call()
    assert storage.get("fine") == b"ok"  # delete_many validated every key before deleting
    assert keys_of(storage.list()) == ["fine"]


def test_keys_are_unicode_normalized(storage: Storage) -> None:
    storage.put("cafe\u0301.txt", b"nfd")  # NFD on the way in
    assert storage.get("caf\u00e9.txt") == b"nfd"  # NFC finds it
    assert keys_of(storage.list()) == ["caf\u00e9.txt"]
