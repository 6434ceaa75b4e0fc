"""AsyncStorage: every Storage call from async code, run off the event loop, on every
backend."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from kit_storage import (
    ConfigurationError,
    Folder,
    InvalidData,
    InvalidKey,
    InvalidUpload,
    LocalStorage,
    MemoryStorage,
    NotFound,
    ObjectInfo,
    Storage,
)
from kit_storage._async import AsyncReader, AsyncStorage
from kit_storage._uploads import capped_chunks


async def test_round_trip_on_every_backend(storage: Storage, tmp_path: Path) -> None:
    files = AsyncStorage(storage)
    info = await files.put("docs/a.txt", b"hello world", metadata={"owner": "7"})
    assert info.size == 11
    assert await files.get("docs/a.txt") == b"hello world"
    assert await files.exists("docs/a.txt")
    assert not await files.exists("docs/missing.txt")
    assert (await files.info("docs/a.txt")).metadata == {"owner": "7"}

    await files.put("docs/sub/b.txt", b"b")
    keys = [item.key async for item in files.list("docs/") if isinstance(item, ObjectInfo)]
    assert keys == ["docs/a.txt", "docs/sub/b.txt"]
    shallow = [item async for item in files.list("docs/", delimiter="/")]
    assert [getattr(i, "key", None) or getattr(i, "prefix", None) for i in shallow] == [
        "docs/a.txt",
        "docs/sub/",
    ]
    assert isinstance(shallow[1], Folder)

    await files.copy("docs/a.txt", "docs/c.txt")
    await files.move("docs/c.txt", "docs/d.txt")
    assert not await files.exists("docs/c.txt")
    target = tmp_path / "out.txt"
    assert (await files.download_to("docs/d.txt", target)).size == 11
    assert target.read_bytes() == b"hello world"

    assert await files.delete("docs/d.txt")
    assert not await files.delete("docs/d.txt")
    assert await files.delete_many(iter(["docs/a.txt", "docs/sub/b.txt", "docs/none"])) == 2
    assert [item async for item in files.list()] == []


async def test_chunks_and_ranges(storage: Storage) -> None:
    files = AsyncStorage(storage)
    data = bytes(range(256)) * 40  # 10 KiB
    await files.put("blob.bin", data)
    chunks = [c async for c in files.aiter_chunks("blob.bin", chunk_size=4096)]
    assert [len(c) for c in chunks] == [4096, 4096, 2048]
    assert b"".join(chunks) == data
    part = b"".join([c async for c in files.aiter_chunks("blob.bin", 100, 300)])
    assert part == data[100:300]
    tail = b"".join([c async for c in files.aiter_chunks("blob.bin", start=10_000)])
    assert tail == data[10_000:]


async def test_open_raises_not_found_before_streaming(storage: Storage) -> None:
    files = AsyncStorage(storage)
    with pytest.raises(NotFound):
        await files.open("nope.bin")
    with pytest.raises(NotFound):
        async for _ in files.aiter_chunks("nope.bin"):
            pass


async def test_async_reader_reads_and_closes_once() -> None:
    files = AsyncStorage(MemoryStorage())
    await files.put("a.txt", b"abcdef")
    async with await files.open("a.txt", start=1, end=4) as reader:
        assert isinstance(reader, AsyncReader)
        assert await reader.read(2) == b"bc"
        assert await reader.read() == b"d"
    assert await reader.read() == b""
    await reader.aclose()  # idempotent
    assert [c async for c in reader] == []


async def test_put_from_an_async_iterable(storage: Storage) -> None:
    files = AsyncStorage(storage)

    async def body() -> AsyncIterator[bytes]:
        for i in range(50):
            yield bytes([i]) * 1000
            yield b""  # empty chunks are skipped, not taken for the end
            await asyncio.sleep(0)

    info = await files.put("stream.bin", body(), content_type="application/x-test")
    assert info.size == 50_000
    assert info.content_type == "application/x-test"
    assert (await files.get("stream.bin"))[1000:1001] == b"\x01"


@pytest.mark.parametrize("backend", ["memory", "local"])
async def test_capped_async_upload_stores_nothing(backend: str, tmp_path: Path) -> None:
    storage: Storage = MemoryStorage() if backend == "memory" else LocalStorage(tmp_path / "r")
    files = AsyncStorage(storage)
    closed = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        try:
            for _ in range(10):
                yield b"x" * 1000
        finally:
            closed.set()

    with pytest.raises(InvalidUpload, match="5000-byte limit"):
        await files.put("big.bin", capped_chunks(body(), 5000))
    assert not await files.exists("big.bin")
    assert closed.is_set()

    exact = await files.put("exact.bin", capped_chunks(body(), 10_000))
    assert exact.size == 10_000


async def test_a_failing_source_stores_nothing() -> None:
    files = AsyncStorage(MemoryStorage())

    async def body() -> AsyncIterator[bytes]:
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await files.put("x.bin", body())
    assert not await files.exists("x.bin")


async def test_non_bytes_chunks_are_refused() -> None:
    async def body() -> AsyncIterator[Any]:
        yield "text"

    with pytest.raises(InvalidData, match="str chunks"):
        await AsyncStorage(MemoryStorage()).put("x.bin", body())


class _ThreadRecorder(MemoryStorage):
    """A real MemoryStorage that notes which thread each read ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def get(self, key: str) -> bytes:
        self.threads.add(threading.get_ident())
        return super().get(key)

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> IO[bytes]:
        self.threads.add(threading.get_ident())
        return super().open(key, start=start, end=end)


async def test_blocking_calls_run_off_the_loop_thread() -> None:
    recorder = _ThreadRecorder()
    files = AsyncStorage(recorder)
    await files.put("a", b"x")
    await files.get("a")
    async for _ in files.aiter_chunks("a"):
        pass
    assert recorder.threads
    assert threading.get_ident() not in recorder.threads


async def test_list_comes_in_batches_in_key_order() -> None:
    storage = MemoryStorage()
    for i in range(600):
        storage.put(f"k/{i:04d}", b"")
    keys = [
        item.key async for item in AsyncStorage(storage).list("k/") if isinstance(item, ObjectInfo)
    ]
    assert keys == [f"k/{i:04d}" for i in range(600)]


async def test_bad_arguments_are_refused() -> None:
    files = AsyncStorage(MemoryStorage())
    with pytest.raises(InvalidKey):
        async for _ in files.list("../x"):
            pass
    with pytest.raises(InvalidData, match="delimiter"):
        async for _ in files.list("", delimiter=":"):
            pass
    with pytest.raises(InvalidData, match="chunk_size"):
        async for _ in files.aiter_chunks("a", chunk_size=0):
            pass
    with pytest.raises(InvalidData, match="end="):
        async for _ in files.aiter_chunks("a", 5, 2):
            pass
    with pytest.raises(ConfigurationError, match="not another AsyncStorage"):
        AsyncStorage(files)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs a Storage"):
        AsyncStorage(object())  # type: ignore[arg-type]


async def test_signed_urls() -> None:
    files = AsyncStorage(MemoryStorage(base_url="/files", secret=b"s" * 32))
    url = await files.url("a.txt", download_name="A.txt")
    params = dict(parse_qsl(urlsplit(url).query))
    assert files.verify_signed_url("a.txt", params).download_name == "A.txt"
    put_url = await files.upload_url("a.txt", content_type="text/plain")
    put_params = dict(parse_qsl(urlsplit(put_url).query))
    assert files.verify_signed_url("a.txt", put_params, method="PUT").content_type == "text/plain"
    with pytest.raises(ConfigurationError, match="cannot make signed URLs"):
        await AsyncStorage(MemoryStorage()).url("a.txt")
