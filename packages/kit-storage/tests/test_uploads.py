"""Upload checks: the size cap, the content-type allow-list against the leading bytes,
and that a refused upload stores nothing, on every backend."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit_storage import (
    ConfigurationError,
    InvalidKey,
    InvalidUpload,
    LocalStorage,
    MemoryStorage,
    Storage,
)
from kit_storage._uploads import (
    PEEK_BYTES,
    CappedReader,
    check_upload_type,
    content_disposition,
    save_upload,
    sniff_types,
)

PNG_HEAD = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR"
PNG = PNG_HEAD + bytes(200)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n" + bytes(100)
GIF = b"GIF89a" + bytes(100)


def _png(size: int) -> bytes:
    return PNG_HEAD + b"\x01" * (size - len(PNG_HEAD))


@pytest.fixture(params=["memory", "local", "gcs"])
def aborting(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """Like conftest's ``storage``, for tests whose uploads are cut off halfway. On GCS
    such an upload leaves a resumable session the emulator cannot cancel, and it then
    refuses to delete the bucket (409): the bucket is left in the in-memory emulator,
    which ends with the test session."""
    if request.param == "memory":
        yield MemoryStorage()
    elif request.param == "local":
        yield LocalStorage(tmp_path / "root")
    else:
        from gcs_emulator import admin_client, emulator, service_account_info, unique_bucket_name

        from kit_storage.gcs import GCSStorage

        bucket = unique_bucket_name()
        admin_client().create_bucket(bucket)
        yield GCSStorage(bucket, base_url=emulator().url, credentials=service_account_info())


# -- type checks ---------------------------------------------------------------------


def test_allowed_type_is_recognised_from_the_bytes() -> None:
    assert check_upload_type(PNG, allowed_types={"image/png"}) == "image/png"
    assert check_upload_type(PNG, allowed_types={"image/*"}, declared_type="image/png") == (
        "image/png"
    )
    # Aliases and parameters in the declared type do not matter.
    assert check_upload_type(PNG, allowed_types={"IMAGE/PNG"}, declared_type="image/x-png") == (
        "image/png"
    )


def test_declared_type_contradicted_by_the_bytes_is_415() -> None:
    with pytest.raises(
        InvalidUpload, match="sent as image/png but its content is application/pdf"
    ) as err:
        check_upload_type(
            PDF, allowed_types={"image/png", "application/pdf"}, declared_type="image/png"
        )
    assert err.value.status == 415


def test_type_not_on_the_allow_list_is_415() -> None:
    with pytest.raises(InvalidUpload, match="application/pdf files are not accepted") as err:
        check_upload_type(PDF, allowed_types={"image/*"})
    assert err.value.status == 415
    assert err.value.problem()["status"] == 415


def test_generic_declared_type_means_unknown() -> None:
    assert (
        check_upload_type(
            GIF, allowed_types={"image/gif"}, declared_type="application/octet-stream"
        )
        == "image/gif"
    )


@pytest.mark.parametrize(
    ("content", "declared", "expected"),
    [
        (b"name,age\nbob,3\n", "text/csv", "text/csv"),
        # puremagic thinks "BM..." is a bitmap, at low confidence: the text rule wins.
        (b"BMW,car\n1,2\n", "text/csv", "text/csv"),
        (b"hello\n", None, "text/plain"),
        ("h\u00e9llo w\u00f6rld\n".encode(), "text/plain; charset=utf-8", "text/plain"),
        (b"", None, "text/plain"),
    ],
)
def test_text_is_accepted_when_it_decodes_as_utf8(
    content: bytes, declared: str | None, expected: str
) -> None:
    allowed = {"text/plain", "text/csv"}
    # The UTF-8 check passed, so the stored type says so.
    assert (
        check_upload_type(content, allowed_types=allowed, declared_type=declared, complete=True)
        == f"{expected}; charset=utf-8"
    )


@pytest.mark.parametrize(
    ("content", "declared"),
    [
        (b"a\x00b,c\n", "text/csv"),  # NUL: binary
        (b"caf\xe9,1\n", "text/csv"),  # Latin-1, not UTF-8
        (b"<!DOCTYPE html><script>alert(1)</script>", "text/plain"),  # confidently HTML
        (GIF + b",text\n", "text/csv"),
        (b"a,b\n", "image/png"),  # text declared as an image
    ],
)
def test_disguised_text_is_refused(content: bytes, declared: str) -> None:
    with pytest.raises(InvalidUpload) as err:
        check_upload_type(
            content, allowed_types={"text/plain", "text/csv", "image/png"}, declared_type=declared
        )
    assert err.value.status == 415


def test_a_multibyte_character_cut_by_the_peek_is_still_text() -> None:
    head = ("x" * (PEEK_BYTES - 1) + "\u00e9").encode()[:PEEK_BYTES]
    assert head.endswith(b"\xc3")
    assert check_upload_type(head, allowed_types={"text/plain"}, complete=False) == (
        "text/plain; charset=utf-8"
    )
    with pytest.raises(InvalidUpload):
        check_upload_type(head, allowed_types={"text/plain"}, complete=True)


def test_unrecognised_binary_needs_octet_stream_on_the_list() -> None:
    blob = bytes(range(256)) * 4
    with pytest.raises(InvalidUpload, match="cannot be recognised"):
        check_upload_type(blob, allowed_types={"image/png"})
    assert (
        check_upload_type(blob, allowed_types={"application/octet-stream"})
        == "application/octet-stream"
    )


@pytest.mark.parametrize("allowed", ["image/png", [], [""]])
def test_a_malformed_allow_list_is_a_configuration_error(allowed: object) -> None:
    with pytest.raises(ConfigurationError, match="allowed_types"):
        check_upload_type(PNG, allowed_types=allowed)  # type: ignore[arg-type]


def test_sniff_types_lists_candidates() -> None:
    types, confidence = sniff_types(PNG)
    assert types[0] == "image/png"
    assert confidence > 0.5
    assert sniff_types(b"") == ([], 0.0)


# -- the capped reader ---------------------------------------------------------------


def test_capped_reader_passes_exactly_max_bytes() -> None:
    reader = CappedReader(io.BytesIO(b"0123456789"), 10, head=b"")
    assert reader.read(4) + reader.read(100) == b"0123456789"
    assert reader.read(10) == b""
    assert reader.count == 10


def test_capped_reader_refuses_one_byte_more() -> None:
    reader = CappedReader(io.BytesIO(b"6789x"), 10, head=b"012345")
    assert reader.read(3) == b"012"
    with pytest.raises(InvalidUpload, match="10-byte limit") as err:
        reader.read()
    assert err.value.status == 413


@pytest.mark.parametrize("max_bytes", [0, -1, 1.5, True])
def test_capped_reader_needs_a_positive_int(max_bytes: object) -> None:
    with pytest.raises(ConfigurationError, match="max_bytes"):
        CappedReader(io.BytesIO(b""), max_bytes)  # type: ignore[arg-type]


# -- save_upload on every backend ------------------------------------------------------


@pytest.mark.parametrize("max_bytes", [100, PEEK_BYTES, 50_000])
def test_size_cap_exact_boundary(aborting: Storage, max_bytes: int) -> None:
    storage = aborting
    info = save_upload(
        storage,
        "up/exact.png",
        io.BytesIO(_png(max_bytes)),
        max_bytes=max_bytes,
        allowed_types={"image/png"},
        declared_type="image/png",
    )
    assert info.size == max_bytes
    assert info.content_type == "image/png"
    assert storage.get("up/exact.png") == _png(max_bytes)

    with pytest.raises(InvalidUpload, match=f"{max_bytes}-byte limit") as err:
        save_upload(
            storage,
            "up/over.png",
            io.BytesIO(_png(max_bytes + 1)),
            max_bytes=max_bytes,
            allowed_types={"image/png"},
        )
    assert err.value.status == 413
    assert not storage.exists("up/over.png")


def test_spoofed_type_stores_nothing(storage: Storage) -> None:
    with pytest.raises(InvalidUpload) as err:
        save_upload(
            storage,
            "up/avatar.png",
            io.BytesIO(PDF),
            max_bytes=10_000,
            allowed_types={"image/png"},
            declared_type="image/png",
        )
    assert err.value.status == 415
    assert not storage.exists("up/avatar.png")
    assert list(storage.list("up/")) == []


def test_refused_upload_keeps_the_previous_version(aborting: Storage) -> None:
    storage = aborting
    storage.put("up/a.png", PNG)
    with pytest.raises(InvalidUpload):
        save_upload(storage, "up/a.png", io.BytesIO(_png(5000)), max_bytes=4000, allowed_types=None)
    assert storage.get("up/a.png") == PNG


def test_metadata_and_sniffed_type_are_stored(storage: Storage) -> None:
    info = save_upload(
        storage,
        "up/doc",
        io.BytesIO(PDF),
        max_bytes=10_000,
        allowed_types={"application/pdf"},
        metadata={"owner": "42"},
    )
    assert storage.info("up/doc").content_type == "application/pdf"
    assert info.metadata == {"owner": "42"}


def test_without_an_allow_list_the_content_decides_the_type() -> None:
    storage = MemoryStorage()
    info = save_upload(
        storage, "x.png", io.BytesIO(PDF), max_bytes=10_000, allowed_types=None,
        declared_type="image/png",
    )  # fmt: skip
    assert info.content_type == "application/pdf"
    info = save_upload(
        storage, "y.bin", io.BytesIO(b"\x00\x01\x02"), max_bytes=10, allowed_types=None
    )
    assert info.content_type == "application/octet-stream"


def test_invalid_key_is_refused_before_reading() -> None:
    stream = io.BytesIO(PNG)
    with pytest.raises(InvalidKey):
        save_upload(MemoryStorage(), "../x.png", stream, max_bytes=10, allowed_types=None)
    assert stream.tell() == 0


def test_local_refusal_leaves_no_temp_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    storage = LocalStorage(root)
    with pytest.raises(InvalidUpload):
        save_upload(
            storage, "deep/er/big.png", io.BytesIO(_png(300_000)), max_bytes=200_000,
            allowed_types={"image/png"},
        )  # fmt: skip
    leftovers = [
        os.path.join(folder, name)
        for folder, _dirs, names in os.walk(root)
        for name in names
        if ".kit-tmp-" in name or name == "big.png"
    ]
    assert leftovers == []


def test_content_disposition() -> None:
    assert content_disposition(None, "image/png", "a/b.png") == "inline"
    assert content_disposition('r\u00e9sum\u00e9 "1".pdf', "application/pdf", "a/b.pdf") == (
        "attachment; filename=\"r_sum_ _1_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.pdf"
    )
    # Active content is never shown inline on the app's origin.
    assert content_disposition(None, "text/html; charset=utf-8", "x/page.html") == (
        "attachment; filename=\"page.html\"; filename*=UTF-8''page.html"
    )
