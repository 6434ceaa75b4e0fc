"""Hostile keys never escape LocalStorage's root; symlinks under the root are never followed."""

from __future__ import annotations

import os
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kit_storage._keys import validate_key
from kit_storage._local import LocalStorage
from kit_storage._types import ObjectInfo
from kit_storage.exceptions import InvalidKey

HOSTILE_PIECES = [
    "..", ".", "", "a", "b.txt", "etc", "passwd", "link", "filelink",
    "\x00", "\n", "\r", "\t", "\x7f", "\x85", "C:", "c:", "~", "%2e%2e", "%2f",
    "\uff0e\uff0e",  # fullwidth full stops
    "\u2024\u2024",  # one dot leaders
    "\ufe52",  # small full stop
    "e\u0301",  # NFD é
    "\u212b",  # Angstrom sign (NFC: Å)
    "\u202e",  # right-to-left override
    "\u2066", "\u200f", "\u2028", "\ufeff", "\u0338",  # isolates, marks, separators
    "\uff0f", "\u2215", "\u29f8",  # slash look-alikes
    ".kit", ".kit-tmp-x", "con", "NUL", " ", "...", "x" * 300,
]  # fmt: skip
SEPARATORS = ["/", "\\", "//", "", "/./", "/../", "\\..\\"]

hostile_keys = st.one_of(
    st.lists(
        st.tuples(st.sampled_from(HOSTILE_PIECES), st.sampled_from(SEPARATORS)),
        min_size=1,
        max_size=6,
    ).map(lambda pairs: "".join(p + s for p, s in pairs)),
    st.sampled_from(["/", "\\"]).flatmap(
        lambda lead: st.text(min_size=1, max_size=30).map(lambda t: lead + t)
    ),
    st.text(max_size=40),
    # odd but mostly valid Unicode segments: these get stored, so containment is checked
    st.lists(
        st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=12),
        min_size=1,
        max_size=4,
    ).map("/".join),
    st.text(alphabet=st.sampled_from("./\\\x00a\u0301\u202e\uff0e"), max_size=20),
)


def tree_realpaths(top: Path) -> list[str]:
    found: list[str] = []
    for folder, dirnames, filenames in os.walk(top, followlinks=False):
        found.extend(os.path.realpath(os.path.join(folder, n)) for n in dirnames + filenames)
    return found


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=hostile_keys)
def test_hostile_keys_are_refused_or_stay_inside_root(key: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        outside = top / "outside"
        outside.mkdir()
        (outside / "passwd").write_bytes(b"secret")
        root = top / "root"
        storage = LocalStorage(root, fsync=False)
        (root / "link").symlink_to(outside)  # a folder link leading out of the root
        (root / "filelink").symlink_to(outside / "passwd")  # a file link leading out
        try:
            storage.put(key, b"payload")
        except InvalidKey:
            stored = False
        else:
            stored = True
        event("stored" if stored else "refused")
        real_root = str(storage.root) + os.sep
        for path in tree_realpaths(root):
            if path in (str(outside), str(outside / "passwd")):
                continue  # the two planted links, which must not have been used
            assert path.startswith(real_root), (key, path)
        assert sorted(p.name for p in outside.iterdir()) == ["passwd"]
        assert (outside / "passwd").read_bytes() == b"secret"
        if stored:
            normalized = validate_key(key)
            assert normalized == unicodedata.normalize("NFC", key)
            assert storage.get(key) == b"payload"
            assert os.path.realpath(root / normalized).startswith(real_root)
            assert (root / normalized).read_bytes() == b"payload"
            listed = [i.key for i in storage.list() if isinstance(i, ObjectInfo)]
            assert listed == [normalized]
            assert storage.delete(key)


@pytest.fixture
def planted(tmp_path: Path) -> tuple[LocalStorage, Path]:
    """A storage whose root holds links to a folder and a file outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"top secret")
    storage = LocalStorage(tmp_path / "root")
    (storage.root / "escape").symlink_to(outside)
    (storage.root / "secret-link").symlink_to(outside / "secret.txt")
    (storage.root / "dir").mkdir()
    (storage.root / "dir" / "up").symlink_to("../../outside")  # relative link
    return storage, outside


LINKED_KEYS = ["escape/secret.txt", "escape/new.txt", "secret-link", "dir/up/secret.txt"]


@pytest.mark.parametrize("key", LINKED_KEYS)
def test_symlinks_are_never_followed(planted: tuple[LocalStorage, Path], key: str) -> None:
    storage, outside = planted
    calls: list[Callable[[], object]] = [
        lambda: storage.put(key, b"overwrite"),
        lambda: storage.put(key, b"overwrite", if_not_exists=True),
        lambda: storage.get(key),
        lambda: storage.open(key),
        lambda: storage.info(key),
        lambda: storage.exists(key),
        lambda: storage.delete(key),
        lambda: storage.copy(key, "copied.txt"),
        lambda: storage.move(key, "moved.txt"),
    ]
    storage.put("inside.txt", b"inside")
    calls += [
        lambda: storage.copy("inside.txt", key),
        lambda: storage.move("inside.txt", key),
    ]
    for call in calls:
        with pytest.raises(InvalidKey, match="symbolic link"):
            call()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"top secret"
    assert storage.get("inside.txt") == b"inside"
    assert not storage.exists("copied.txt")
    assert not storage.exists("moved.txt")


def test_list_does_not_follow_links(planted: tuple[LocalStorage, Path]) -> None:
    storage, _outside = planted
    storage.put("dir/real.txt", b"x")
    assert [i.key for i in storage.list() if isinstance(i, ObjectInfo)] == ["dir/real.txt"]
    assert list(storage.list("escape/")) == []


def test_a_symlinked_root_is_resolved_once(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    storage = LocalStorage(tmp_path / "alias")
    storage.put("a/b.txt", b"x")
    assert (tmp_path / "real" / "a" / "b.txt").read_bytes() == b"x"
