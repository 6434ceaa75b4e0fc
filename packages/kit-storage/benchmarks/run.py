"""kit-storage against what a user would otherwise write, in one process and one run.

    python packages/kit-storage/benchmarks/run.py --out kit-storage.json [--quick]

Writes ``{"package": "kit-storage", "results": [...]}``, the format ``tools/bench_table.py``
prints (``nox -s bench``): one row per comparison, ``ratio`` = kit time / peer time, so
below 1 means kit is faster. Both sides run in interleaved rounds (the order rotates) and
the fastest round counts. Missing a target is reported in the table, never an error.

- ``LocalStorage`` streaming ``put`` and ``open`` of 256 MiB (64 MiB with ``--quick``) vs
  ``shutil.copyfileobj`` between files, with the same durability on both sides (the
  default ``put`` fsyncs and renames; the ``fsync=False`` row compares with a bare copy).
- ``GCSStorage`` ``put``/``download_to`` against gcp-storage-emulator (a subprocess on
  loopback) vs the raw client's ``upload_from_file``/``download_to_file``, same sizes,
  same 8 MiB chunks.
- Peak memory (RSS growth, MiB) of a 1 GiB round trip (256 MiB with ``--quick``),
  measured in a fresh child process per side: info rows, ``kit_us``/``peer_us`` carry
  MiB there (``"unit": "MiB"``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any, cast

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[import-untyped]

from kit_storage._local import LocalStorage
from kit_storage._types import CHUNK_SIZE
from kit_storage.gcs import DEFAULT_CHUNK_SIZE, GCSStorage

PACKAGE = "kit-storage"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Mode:
    local_size: int
    gcs_size: int
    memory_size: int
    rounds: int


FULL = Mode(256 * MiB, 256 * MiB, 1024 * MiB, 7)
QUICK = Mode(64 * MiB, 64 * MiB, 256 * MiB, 3)


@dataclass
class Side:
    """One side of a comparison: ``run()`` does one transfer and returns its wall time."""

    label: str
    run: Callable[[], float]
    samples: list[float] = field(default_factory=list)


def interleave(sides: list[Side], rounds: int) -> None:
    for round_no in range(rounds):
        shift = round_no % len(sides)
        for side in sides[shift:] + sides[:shift]:
            gc.collect()
            side.samples.append(side.run())


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def row(
    name: str, sides: list[Side], rounds: int, size: int, target: str, limit: float
) -> dict[str, Any]:
    """Interleave ``rounds`` transfers of each side; the row of the fastest rounds."""
    interleave(sides, rounds)
    kit, peer = sides
    kit_s, peer_s = min(kit.samples), min(peer.samples)
    ratio = kit_s / peer_s
    result = {
        "name": name,
        "kit": PACKAGE,
        "peer": peer.label,
        "kit_us": round(kit_s * 1e6, 1),
        "peer_us": round(peer_s * 1e6, 1),
        "ratio": round(ratio, 4),
        "target": target,
        "verdict": "meets target" if ratio <= limit else "misses target",
        "kit_mib_per_s": round(size / MiB / kit_s, 1),
        "peer_mib_per_s": round(size / MiB / peer_s, 1),
        "median_ratio": round(
            sorted(kit.samples)[len(kit.samples) // 2]
            / sorted(peer.samples)[len(peer.samples) // 2],
            4,
        ),
        "rounds": len(kit.samples),
        "bytes": size,
        "stat": "fastest of interleaved rounds, one transfer",
    }
    print(
        f"{name}: kit {result['kit_mib_per_s']} MiB/s vs {peer.label} "
        f"{result['peer_mib_per_s']} MiB/s ({ratio:.3f}x time, target {target}) {result['verdict']}"
    )
    return result


def write_file(path: Path, size: int) -> None:
    block = os.urandom(MiB)
    with path.open("wb") as out:
        for _ in range(size // MiB):
            out.write(block)
        out.write(block[: size % MiB])


class Generated(io.RawIOBase):
    """``size`` bytes made on the fly, length unknown to the reader."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._pos = 0
        self._block = os.urandom(MiB)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = min(len(view), self._left)  # a full read: the raw client takes a short
        done = 0  # read for the end of the stream
        while done < count:
            piece = min(len(self._block), count - done)
            view[done : done + piece] = self._block[:piece]
            done += piece
        self._left -= count
        self._pos += count
        return count

    def tell(self) -> int:  # the raw client's resumable upload asks where the stream is
        return self._pos


# --------------------------------------------------------------------------- local


def local_rows(mode: Mode, work: Path) -> list[dict[str, Any]]:
    size = mode.local_size
    source = work / "source.bin"
    write_file(source, size)
    durable = LocalStorage(work / "durable")
    fast = LocalStorage(work / "fast", fsync=False)
    out = work / "out"
    out.mkdir()

    def kit_put(store: LocalStorage) -> float:
        with source.open("rb") as stream:
            return timed(lambda: store.put("bench/object.bin", stream))

    def peer_copy(durable: bool) -> float:
        target = out / "copy.bin"

        def copy() -> None:
            tmp = out / f".tmp-{uuid.uuid4().hex}"
            with source.open("rb") as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_SIZE)
                if durable:
                    dst.flush()
                    os.fsync(dst.fileno())
            os.replace(tmp, target)
            if durable:
                fd = os.open(out, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

        return timed(copy)

    def kit_get() -> float:
        def read() -> None:
            with durable.open("bench/object.bin") as src, (out / "got.bin").open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_SIZE)

        return timed(read)

    def peer_get() -> float:
        def read() -> None:
            with source.open("rb") as src, (out / "got.bin").open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_SIZE)

        return timed(read)

    rows = []
    mb = size // MiB
    sides = [
        Side("LocalStorage.put", lambda: kit_put(durable)),
        Side("shutil.copyfileobj + fsync + rename", lambda: peer_copy(True)),
    ]
    rows.append(
        row(
            f"LocalStorage put {mb} MiB stream (fsync, atomic)",
            sides,
            mode.rounds,
            size,
            "<= 1.11x (>= 0.9x throughput)",
            1.11,
        )
    )
    sides = [
        Side("LocalStorage.put", lambda: kit_put(fast)),
        Side("shutil.copyfileobj", lambda: peer_copy(False)),
    ]
    rows.append(
        row(
            f"LocalStorage put {mb} MiB stream (fsync=False)",
            sides,
            mode.rounds,
            size,
            "<= 1.11x (>= 0.9x throughput)",
            1.11,
        )
    )
    sides = [Side("LocalStorage.open", kit_get), Side("shutil.copyfileobj", peer_get)]
    rows.append(
        row(
            f"LocalStorage open+read {mb} MiB into a file",
            sides,
            mode.rounds,
            size,
            "<= 1.11x (>= 0.9x throughput)",
            1.11,
        )
    )
    return rows


# --------------------------------------------------------------------------- gcs


@contextmanager
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator in memory, in a subprocess on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "gcp_storage_emulator",
            "start",
            "--host=127.0.0.1",
            f"--port={port}",
            "--in-memory",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError("gcp-storage-emulator exited at start-up")
            try:
                with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2):  # noqa: S310
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gcp-storage-emulator did not answer on {url}") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def raw_client(url: str) -> Any:
    return storage.Client(
        project="kit-bench",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": url},
    )


def gcs_rows(mode: Mode, work: Path, url: str) -> list[dict[str, Any]]:
    size = mode.gcs_size
    source = work / "gcs-source.bin"
    write_file(source, size)
    client = raw_client(url)
    bucket_name = f"kit-bench-{uuid.uuid4().hex[:12]}"
    bucket = client.create_bucket(bucket_name)
    store = GCSStorage(bucket_name, client=raw_client(url), chunk_size=DEFAULT_CHUNK_SIZE)

    def kit_up() -> float:
        with source.open("rb") as stream:
            return timed(lambda: store.put("kit.bin", stream))

    def peer_up() -> float:
        blob = bucket.blob("raw.bin", chunk_size=DEFAULT_CHUNK_SIZE)
        with source.open("rb") as stream:
            return timed(
                lambda: blob.upload_from_file(
                    stream, size=size, content_type="application/octet-stream"
                )
            )

    def kit_down() -> float:
        return timed(lambda: store.download_to("kit.bin", work / "kit-down.bin"))

    def peer_down() -> float:
        def download() -> None:
            with (work / "raw-down.bin").open("wb") as out:
                bucket.blob("raw.bin").download_to_file(out)

        return timed(download)

    rows = []
    mb = size // MiB
    sides = [
        Side("GCSStorage.put", kit_up),
        Side(
            f"Blob.upload_from_file (google-cloud-storage {version('google-cloud-storage')})",
            peer_up,
        ),
    ]
    rows.append(
        row(
            f"GCSStorage put {mb} MiB (emulator, 8 MiB chunks)",
            sides,
            mode.rounds,
            size,
            "<= 1.053x (>= 0.95x throughput)",
            1.053,
        )
    )
    sides = [
        Side("GCSStorage.download_to", kit_down),
        Side(
            f"Blob.download_to_file (google-cloud-storage {version('google-cloud-storage')})",
            peer_down,
        ),
    ]
    rows.append(
        row(
            f"GCSStorage download_to {mb} MiB (emulator)",
            sides,
            mode.rounds,
            size,
            "<= 1.053x (>= 0.95x throughput)",
            1.053,
        )
    )
    for blob in client.list_blobs(bucket_name):
        blob.delete()
    bucket.delete()
    return rows


# --------------------------------------------------------------------------- memory


def probe(kind: str, size: int, url: str, work: Path) -> float:
    """One round trip of ``size`` generated bytes; the RSS high-water mark's growth, MiB."""
    target = work / f"probe-{kind}.bin"
    if kind in ("gcs", "gcs-raw"):
        client = raw_client(url)
        bucket_name = f"kit-probe-{uuid.uuid4().hex[:12]}"
        bucket = client.create_bucket(bucket_name)
        store = GCSStorage(bucket_name, client=client)
        store.put("warm", b"x")  # imports and connections before the baseline
        store.download_to("warm", target)
    else:
        store_local = LocalStorage(work / "probe-root")
        store_local.put("warm", b"x")
    gc.collect()
    with contextlib.suppress(OSError):  # Linux: restart the high-water mark (VmHWM) here
        Path("/proc/self/clear_refs").write_text("5")
    baseline = _status_bytes("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    source = cast(IO[bytes], Generated(size))
    if kind == "gcs":
        store.put("big.bin", source)
        store.download_to("big.bin", target)
    elif kind == "gcs-raw":
        blob = bucket.blob("big.bin", chunk_size=DEFAULT_CHUNK_SIZE)
        blob.upload_from_file(source)
        with target.open("wb") as out:
            bucket.blob("big.bin").download_to_file(out)
    elif kind == "local":
        store_local.put("big.bin", source)
        store_local.download_to("big.bin", target)
    else:
        with (work / "copy.bin").open("wb") as out:
            shutil.copyfileobj(source, out, CHUNK_SIZE)
        with (work / "copy.bin").open("rb") as src, target.open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK_SIZE)
    peak = _status_bytes("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if target.stat().st_size != size:
        raise RuntimeError(f"{kind}: round trip gave {target.stat().st_size} bytes, not {size}")
    return (peak - baseline) / MiB


def _status_bytes(field: str) -> int:
    """A ``/proc/self/status`` memory figure in bytes (0 where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_rows(mode: Mode, work: Path, url: str) -> list[dict[str, Any]]:
    def child(kind: str) -> float:
        out = subprocess.run(  # noqa: S603 - our own interpreter and script
            [
                sys.executable,
                __file__,
                "--probe",
                kind,
                "--size",
                str(mode.memory_size),
                "--url",
                url,
                "--work",
                str(work),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return float(out.stdout.strip().splitlines()[-1])

    rows = []
    gib = (
        f"{mode.memory_size / 1024 / MiB:g} GiB"
        if mode.memory_size >= 1024 * MiB
        else f"{mode.memory_size // MiB} MiB"
    )
    for name, kit_kind, peer_kind, peer in [
        ("GCSStorage", "gcs", "gcs-raw", "raw google-cloud-storage client"),
        ("LocalStorage", "local", "copy", "shutil.copyfileobj"),
    ]:
        kit_mib, peer_mib = child(kit_kind), child(peer_kind)
        rows.append(
            {
                "name": f"{name} peak RSS growth, {gib} round trip (MiB)",
                "kit": PACKAGE,
                "peer": peer,
                "kit_us": round(kit_mib, 1),
                "peer_us": round(peer_mib, 1),
                "ratio": round(kit_mib / peer_mib, 4) if peer_mib > 0 else None,
                "target": "info: < 64 MiB growth",
                "verdict": "info",
                "unit": "MiB",
                "info": f"kit {kit_mib:.1f} MiB, peer {peer_mib:.1f} MiB peak RSS growth for put + download of {gib}",
            }
        )
        print(f"{rows[-1]['name']}: kit {kit_mib:.1f} MiB vs {peer} {peer_mib:.1f} MiB")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, help="where to write the JSON")
    parser.add_argument("--quick", action="store_true", help="smaller files, fewer rounds")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(probe(args.probe, args.size, args.url, args.work))
        return 0
    if args.out is None:
        parser.error("--out is required")
    mode = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="kit-storage-bench-") as tmp, gcs_emulator() as url:
        work = Path(tmp)
        results = local_rows(mode, work) + gcs_rows(mode, work, url) + memory_rows(mode, work, url)
    args.out.write_text(json.dumps({"package": PACKAGE, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
