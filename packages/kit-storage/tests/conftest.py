"""The ``storage`` fixture: every backend, so one contract suite runs against each.

``memory`` and ``local`` need nothing; ``gcs`` is the real google-cloud-storage client
talking HTTP to gcp-storage-emulator, started by ``gcs_emulator.py`` on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kit_storage import LocalStorage, MemoryStorage, Storage

BACKENDS = ["memory", "local", "gcs"]
SECRET = b"s" * 32


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """One fresh, empty storage per test, for each backend in turn."""
    if request.param == "memory":
        yield MemoryStorage(base_url="http://files.test/files", secret=SECRET)
    elif request.param == "local":
        yield LocalStorage(tmp_path / "root", base_url="http://files.test/files", secret=SECRET)
    else:
        from gcs_emulator import gcs_storage_for_test

        with gcs_storage_for_test(request) as gcs:
            yield gcs
