"""LocalStorage specifics: layout, sidecars, atomic writes under a kill -9, disk errors,
and the 1 GiB round trip with flat memory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kit_storage._local import LocalStorage
from kit_storage._memory import MemoryStorage
from kit_storage._types import ObjectInfo
from kit_storage.exceptions import (
    ConfigurationError,
    InvalidKey,
    NotFound,
)

WRITER = Path(__file__).with_name("_writer_proc.py")
SECRET = b"k" * 32


def run_writer(*args: str, timeout: float = 600) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(WRITER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- root and configuration ---------------------------------------------------------------


def test_root_is_created_and_resolved(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    storage = LocalStorage(tmp_path / "link" / "new" / "root")
    assert storage.root == tmp_path / "real" / "new" / "root"
    assert storage.root.is_dir()


def test_missing_root_without_create(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="create=True"):
        LocalStorage(tmp_path / "nope", create=False)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(ConfigurationError, match="not a folder"):
        LocalStorage(tmp_path / "file")
    with pytest.raises(ConfigurationError, match="not an existing folder"):
        LocalStorage(tmp_path / "file", create=False)


def test_signed_urls_need_base_url_and_secret(tmp_path: Path) -> None:
    plain = LocalStorage(tmp_path)
    with pytest.raises(ConfigurationError, match=r"base_url= .* secret="):
        plain.url("a.txt")
    with pytest.raises(ConfigurationError, match=r"base_url= .* secret="):
        plain.upload_url("a.txt")
    with pytest.raises(ConfigurationError, match="secret is missing"):
        LocalStorage(tmp_path, base_url="/files")
    with pytest.raises(ConfigurationError, match="base_url is missing"):
        MemoryStorage(secret=SECRET)
    with pytest.raises(ConfigurationError, match="at least 32"):
        LocalStorage(tmp_path, base_url="/files", secret=b"short")
    assert "k" * 32 not in repr(LocalStorage(tmp_path, base_url="/f", secret=SECRET)._signer)


# -- layout, sidecars -------------------------------------------------------------------


def test_objects_are_plain_files_under_root(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("a/b/c.txt", b"content", metadata={"k": "v"})
    assert (tmp_path / "a" / "b" / "c.txt").read_bytes() == b"content"
    assert files_under(tmp_path) == [".kit/meta/a/b/c.txt", "a/b/c.txt"]
    sidecar = json.loads((tmp_path / ".kit/meta/a/b/c.txt").read_text())
    assert sidecar["content_type"] == "text/plain"
    assert sidecar["metadata"] == {"k": "v"}


@pytest.mark.parametrize("key", [".kit/meta/x", ".kit", "a/.kit-tmp-123", "a/.kitten", ".kitx/y"])
def test_reserved_names_are_not_keys(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path)
    for call in (lambda: storage.put(key, b"x"), lambda: storage.get(key)):
        with pytest.raises(InvalidKey, match="reserves"):
            call()


def test_a_stale_or_missing_sidecar_is_ignored(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("doc.txt", b"v1", content_type="application/json", metadata={"k": "v"})
    assert storage.info("doc.txt").content_type == "application/json"
    # Replaced behind kit's back (or a crash between the data and sidecar renames):
    replacement = tmp_path / "replacement"
    replacement.write_bytes(b"version 2")
    os.replace(replacement, tmp_path / "doc.txt")
    info = storage.info("doc.txt")
    assert (info.size, info.content_type, dict(info.metadata)) == (9, "text/plain", {})
    (tmp_path / ".kit/meta/doc.txt").write_text("{not json")
    assert storage.info("doc.txt").content_type == "text/plain"
    (tmp_path / ".kit/meta/doc.txt").unlink()
    assert storage.info("doc.txt").content_type == "text/plain"


def test_the_metadata_tree_is_never_listed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("a.txt", b"x")
    for prefix in ("", ".kit", ".kit/", ".kit/meta/", ".kit-tmp-"):
        assert [i.key for i in storage.list(prefix) if isinstance(i, ObjectInfo)] == (
            ["a.txt"] if prefix == "" else []
        )


def test_files_placed_by_hand_are_listed(tmp_path: Path) -> None:
    (tmp_path / "hand").mkdir()
    (tmp_path / "hand" / "made.csv").write_bytes(b"a,b")
    storage = LocalStorage(tmp_path)
    [info] = storage.list()
    assert isinstance(info, ObjectInfo)
    assert (info.key, info.size, info.content_type) == ("hand/made.csv", 3, "text/csv")


def test_a_key_cannot_be_both_file_and_folder(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("a", b"file")
    with pytest.raises(InvalidKey, match="folder"):
        storage.put("a/b", b"x")
    storage.put("c/d", b"x")
    with pytest.raises(InvalidKey, match="folder"):
        storage.put("c", b"x")
    with pytest.raises(NotFound):
        storage.get("c")
    assert storage.get("a") == b"file"
    assert files_under(tmp_path / "c") == ["d"]


def test_delete_removes_empty_folders_and_sidecars(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("x/y/z.txt", b"1")
    storage.put("x/keep.txt", b"2")
    assert storage.delete("x/y/z.txt")
    assert not (tmp_path / "x" / "y").exists()
    assert (tmp_path / "x" / "keep.txt").exists()
    assert not (tmp_path / ".kit/meta/x/y").exists()
    storage.move("x/keep.txt", "moved.txt")
    assert not (tmp_path / "x").exists()
    assert files_under(tmp_path) == [".kit/meta/moved.txt", "moved.txt"]
    storage.put("x", b"the folder x is gone, so x can be a file")


def test_temp_files_are_never_listed_and_can_be_cleaned(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("a/real.txt", b"x")
    leftover = tmp_path / "a" / ".kit-tmp-0123456789abcdef"
    leftover.write_bytes(b"half a write")
    assert [i.key for i in storage.list() if isinstance(i, ObjectInfo)] == ["a/real.txt"]
    assert storage.cleanup_temp() == 0  # recent: may be a write in progress
    old = time.time() - 7200
    os.utime(leftover, (old, old))
    assert storage.cleanup_temp() == 1
    assert not leftover.exists()
    assert storage.get("a/real.txt") == b"x"


def test_fsync_off_still_writes(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, fsync=False)
    storage.put("quick", b"data")
    assert storage.get("quick") == b"data"


def test_concurrent_writers_leave_one_whole_version(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    versions = [bytes([i]) * 300_000 for i in range(8)]
    errors: list[BaseException] = []

    def write(data: bytes) -> None:
        try:
            for _ in range(5):
                storage.put("shared.bin", data)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert storage.get("shared.bin") in versions
    assert files_under(tmp_path) == [".kit/meta/shared.bin", "shared.bin"]


def test_concurrent_put_and_delete_in_one_folder(tmp_path: Path) -> None:
    # delete() prunes empty folders; a put racing with it must still land.
    storage = LocalStorage(tmp_path, fsync=False)
    errors: list[BaseException] = []

    def churn(worker: int) -> None:
        try:
            for round_ in range(150):
                key = f"shared/deep/{worker}-{round_}"
                storage.put(key, b"x")
                assert storage.get(key) == b"x"
                assert storage.delete(key)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert list(storage.list()) == []


# -- crash safety --------------------------------------------------------------------------


def test_write_killed_halfway_leaves_old_content(tmp_path: Path) -> None:
    root = tmp_path / "root"
    storage = LocalStorage(root)
    storage.put("report.bin", b"the old, complete content", metadata={"v": "1"})
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), "slow", str(root), "report.bin", str(32 * 1024 * 1024)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "halfway"
        leftovers = [p for p in root.iterdir() if p.name.startswith(".kit-tmp-")]
        assert len(leftovers) == 1
        assert leftovers[0].stat().st_size >= 16 * 1024 * 1024  # really halfway through
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
        assert writer.stdout is not None
        writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL
    assert storage.get("report.bin") == b"the old, complete content"
    assert dict(storage.info("report.bin").metadata) == {"v": "1"}
    assert [i.key for i in storage.list() if isinstance(i, ObjectInfo)] == ["report.bin"]
    # The temp file stays on disk (nobody was left to remove it) until cleanup_temp.
    assert any(p.name.startswith(".kit-tmp-") for p in root.iterdir())
    assert storage.cleanup_temp(older_than=0) == 1
    assert sorted(p.name for p in root.iterdir()) == [".kit", "report.bin"]


# -- disk errors ---------------------------------------------------------------------------


def test_file_too_large_for_the_disk_is_backend_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "root"
    storage = LocalStorage(root)
    storage.put("video.bin", b"old")
    # RLIMIT_FSIZE makes the kernel refuse the write (EFBIG) as a full disk would (ENOSPC);
    # it needs no privileges and nothing to unmount afterwards.
    result = run_writer("fsize", str(root), "video.bin", str(1024 * 1024), str(3 * 1024 * 1024))
    assert result["error"] == "BackendUnavailable"
    assert "video.bin" in result["message"]
    assert str(root) in result["message"]
    assert storage.get("video.bin") == b"old"
    assert sorted(p.name for p in root.iterdir()) == [".kit", "video.bin"]  # temp removed


def test_permission_denied_is_backend_unavailable() -> None:
    # A world-readable root owned by root; the writer drops to 'nobody' (as root) so the
    # kernel really refuses the write, instead of a chmod that root would bypass. The root
    # is made outside pytest's tmp_path, whose parents are private to the current user.
    root = Path(tempfile.mkdtemp(prefix="kit-storage-perm-"))
    try:
        root.chmod(0o755)
        storage = LocalStorage(root)
        storage.put("existing.txt", b"x")
        if os.geteuid() != 0:
            root.chmod(0o555)
        result = run_writer("nobody", str(root), "new.txt")
        root.chmod(0o755)
        assert result["error"] == "BackendUnavailable"
        assert "Permission denied" in result["message"]
        assert "new.txt" in result["message"]
        assert not storage.exists("new.txt")
        assert storage.get("existing.txt") == b"x"
    finally:
        root.chmod(0o755)
        shutil.rmtree(root)


# -- 1 GiB with flat memory ------------------------------------------------------------------


@pytest.mark.slow
def test_one_gib_round_trip_with_flat_memory(tmp_path: Path) -> None:
    size = 1024 * 1024 * 1024
    result = run_writer("roundtrip", str(tmp_path / "root"), str(size), timeout=1200)
    assert result["matches"]
    assert result["size"] == size
    assert result["downloaded_size"] == size
    assert result["growth_kib"] < 64 * 1024, f"peak RSS grew by {result['growth_kib']} KiB"
