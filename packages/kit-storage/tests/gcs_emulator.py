"""gcp-storage-emulator for the tests: one in-memory server per test session, in its own
process on a free loopback port (so its memory never counts against the test process).

The real google-cloud-storage client reaches it through ``client_options.api_endpoint``
(``GCSStorage(base_url=...)``) with anonymous credentials; ``os.environ`` is not touched.
Each test gets a fresh bucket, deleted afterwards.
"""

from __future__ import annotations

import atexit
import functools
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[import-untyped]

from kit_storage.gcs import GCSStorage

_STARTUP_TIMEOUT_S = 30.0


class EmulatorServer:
    """A running ``gcp-storage-emulator start --in-memory`` subprocess."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gcp_storage_emulator",
                "start",
                "--host=127.0.0.1",
                f"--port={self.port}",
                "--in-memory",
                "--quiet",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"gcp-storage-emulator exited at start-up:\n{err}")
            try:
                probe = f"{self.url}/storage/v1/b"  # http on loopback, built here
                with urllib.request.urlopen(probe, timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gcp-storage-emulator did not answer on {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()

    @property
    def pid(self) -> int:
        return self.process.pid


@functools.cache
def emulator() -> EmulatorServer:
    """The session's emulator, started on first use and stopped when Python exits."""
    server = EmulatorServer()
    atexit.register(server.stop)
    return server


@pytest.fixture(scope="session")
def gcs_emulator() -> EmulatorServer:
    """The running emulator (``.url``, ``.pid``)."""
    return emulator()


def admin_client(url: str | None = None) -> Any:
    """A raw google-cloud-storage client on the emulator (for set-up and peer checks)."""
    return storage.Client(
        project="kit-test",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": url or emulator().url},
    )


@functools.cache
def service_account_info() -> dict[str, str]:
    """A service-account key made up on the spot (a fresh RSA key): enough to sign V4
    URLs locally, never sent anywhere."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "kit-test",
        "private_key_id": "kit-test-key-1",
        "private_key": pem,
        "client_email": "kit-signer@kit-test.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def service_account_json() -> str:
    return json.dumps(service_account_info())


def unique_bucket_name() -> str:
    return f"kit-test-{uuid.uuid4().hex[:16]}"


@contextmanager
def fresh_bucket() -> Iterator[str]:
    """A new, empty bucket on the emulator; deleted (with its objects) afterwards."""
    client = admin_client()
    name = unique_bucket_name()
    client.create_bucket(name)
    try:
        yield name
    finally:
        for blob in client.list_blobs(name):  # delete(force=True) stops at 256 objects
            blob.delete()
        client.bucket(name).delete()


@contextmanager
def gcs_storage_for_test(request: pytest.FixtureRequest, **options: Any) -> Iterator[GCSStorage]:
    """A GCSStorage on a fresh bucket of the session's emulator, able to sign URLs (with a
    local throw-away service-account key); the bucket is deleted afterwards. ``request``
    is the calling fixture's (kept for per-test options); ``options`` go to GCSStorage."""
    options.setdefault("credentials", service_account_info())
    options.setdefault("retry_timeout", 5.0)
    with fresh_bucket() as bucket:
        yield GCSStorage(bucket, base_url=emulator().url, **options)
