"""``ping()``: the health check of every backend and of ``AsyncStorage``, against a real
directory, the GCS emulator, a port nobody listens on and a server that never answers."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from gcs_emulator import emulator, fresh_bucket, unique_bucket_name

from kit_storage import AsyncStorage, ConfigurationError, LocalStorage, MemoryStorage, Storage
from kit_storage.exceptions import BackendUnavailable
from kit_storage.gcs import GCSStorage


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_every_backend_is_healthy_when_usable(storage: Storage) -> None:
    assert isinstance(storage, Storage)
    assert storage.ping() is True
    assert storage.ping(timeout=1) is True
    storage.put("a.txt", b"x")
    assert storage.ping() is True
    assert [item.key for item in storage.list()] == ["a.txt"]  # the probe left nothing


def test_local_ping_leaves_no_file_behind(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    for _ in range(3):
        assert storage.ping() is True
    assert os.listdir(storage.root) == []


def test_local_ping_is_false_when_the_root_is_gone_and_true_again_when_back(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path / "root")
    storage.put("keep/a.txt", b"x")
    shutil.rmtree(storage.root)
    assert storage.ping() is False
    storage.root.mkdir()
    assert storage.ping() is True


def test_local_ping_is_false_when_a_file_replaced_the_root(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    storage.root.rmdir()
    storage.root.write_bytes(b"not a folder")
    assert storage.ping() is False


def test_local_ping_is_false_when_the_root_became_a_symlink(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    storage.root.rmdir()
    storage.root.symlink_to(elsewhere)  # LocalStorage never follows links
    assert storage.ping() is False
    assert os.listdir(elsewhere) == []


def test_gcs_ping_is_false_for_a_bucket_that_does_not_exist() -> None:
    with fresh_bucket() as bucket:
        assert GCSStorage(bucket, base_url=emulator().url, retry_timeout=0).ping() is True
    missing = GCSStorage(unique_bucket_name(), base_url=emulator().url, retry_timeout=0)
    assert missing.ping() is False


def test_gcs_ping_is_false_when_nothing_listens() -> None:
    store = GCSStorage("kit-ping", base_url=f"http://127.0.0.1:{_free_port()}")
    assert store.ping(timeout=0.5) is False


def test_gcs_ping_is_false_for_a_server_that_never_answers(silent_port: int) -> None:
    store = GCSStorage("kit-ping", base_url=f"http://127.0.0.1:{silent_port}")
    assert store.ping(timeout=0.3) is False


async def test_async_storage_pings_the_wrapped_storage(tmp_path: Path) -> None:
    assert await AsyncStorage(MemoryStorage()).ping() is True
    local = LocalStorage(tmp_path / "root")
    files = AsyncStorage(local)
    assert await files.ping() is True
    shutil.rmtree(local.root)
    assert await files.ping() is False
    with fresh_bucket() as bucket:
        assert await AsyncStorage(GCSStorage(bucket, base_url=emulator().url)).ping() is True


class _NoPing:
    """A storage-like object from before ping(): only put/open/exists."""

    def __init__(self, healthy: bool) -> None:
        self.healthy = healthy

    def put(self, *args: object, **kwargs: object) -> None: ...

    def open(self, *args: object, **kwargs: object) -> None: ...

    def exists(self, key: str) -> bool:
        if not self.healthy:
            raise BackendUnavailable("down")
        return False


async def test_async_storage_probes_a_storage_without_ping_with_exists() -> None:
    assert await AsyncStorage(_NoPing(healthy=True)).ping() is True  # type: ignore[arg-type]
    assert await AsyncStorage(_NoPing(healthy=False)).ping() is False  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), "1", True, None])
async def test_a_bad_timeout_is_refused(tmp_path: Path, timeout: object) -> None:
    for storage in (
        MemoryStorage(),
        LocalStorage(tmp_path / "root"),
        GCSStorage("kit-ping", base_url="http://127.0.0.1:9"),
    ):
        with pytest.raises(ConfigurationError, match="timeout="):
            storage.ping(timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timeout="):
        await AsyncStorage(MemoryStorage()).ping(timeout=timeout)  # type: ignore[arg-type]
