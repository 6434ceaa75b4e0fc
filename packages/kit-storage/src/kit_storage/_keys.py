"""Object keys are validated in one place, the same way for every backend.

A key is a relative, ``/``-separated path such as ``avatars/42/original.png``. It is
normalized to Unicode NFC (so the same name typed on macOS and Linux is one key) and then
refused, with :class:`~kit_storage.InvalidKey`, when it:

- is empty or longer than 1024 bytes in UTF-8 (Google Cloud Storage's limit);
- starts with ``/`` or a Windows drive (``C:``), or ends with ``/``;
- contains a ``.`` or ``..`` segment, an empty segment (``a//b``) or a backslash;
- contains a control character (NUL, CR, LF, DEL, C1 controls), a Unicode line or
  paragraph separator, or a bidirectional override (which disguises file names);
- has a segment longer than 255 bytes (the usual file-system limit).

Refusing instead of "cleaning" means a key never silently becomes another one.
"""

from __future__ import annotations

import re
import unicodedata

from kit_storage.exceptions import InvalidKey

__all__ = ["FORBIDDEN_CHARACTERS", "MAX_KEY_BYTES", "validate_key", "validate_prefix"]

MAX_KEY_BYTES = 1024
_MAX_SEGMENT_BYTES = 255
#: C0 and C1 controls, DEL, line/paragraph separators, bidi embeddings/overrides/isolates:
#: refused in keys and in metadata values alike.
FORBIDDEN_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_DRIVE = re.compile(r"[A-Za-z]:")


def validate_key(key: str) -> str:
    """Return ``key`` in NFC form, or raise :class:`~kit_storage.InvalidKey` saying why.

    Example::

        >>> validate_key("avatars/42/original.png")
        'avatars/42/original.png'
        >>> validate_key("avatars/../../etc/passwd")
        Traceback (most recent call last):
        ...
        kit_storage.exceptions.InvalidKey: key 'avatars/../../etc/passwd' has a '..' segment; keys are relative paths without '.' or '..'
    """
    if not isinstance(key, str):
        raise InvalidKey(f"a key must be a string, not {type(key).__name__}")
    normalized = unicodedata.normalize("NFC", key)
    shown = _shown(key)
    if not normalized:
        raise InvalidKey("the key is empty; give a relative path such as 'uploads/report.pdf'")
    if FORBIDDEN_CHARACTERS.search(normalized):
        raise InvalidKey(f"key {shown} contains a control or invisible formatting character")
    if len(normalized.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"key {shown} is longer than {MAX_KEY_BYTES} bytes in UTF-8")
    if "\\" in normalized:
        raise InvalidKey(f"key {shown} contains a backslash; separate folders with '/'")
    if normalized.startswith("/") or _DRIVE.match(normalized):
        raise InvalidKey(f"key {shown} is absolute; keys are relative paths")
    if normalized.endswith("/"):
        raise InvalidKey(f"key {shown} ends with '/'; a key names a file, not a folder")
    for segment in normalized.split("/"):
        if segment in ("", ".", ".."):
            what = "an empty" if not segment else f"a {segment!r}"
            raise InvalidKey(
                f"key {shown} has {what} segment; keys are relative paths without '.' or '..'"
            )
        if len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
            raise InvalidKey(f"key {shown} has a segment over {_MAX_SEGMENT_BYTES} bytes")
    return normalized


def validate_prefix(prefix: str) -> str:
    """A listing prefix: ``""`` (everything), or a key prefix that may end with ``/``.

    Example::

        >>> validate_prefix("avatars/"), validate_prefix("")
        ('avatars/', '')
    """
    if not isinstance(prefix, str):
        raise InvalidKey(f"a prefix must be a string, not {type(prefix).__name__}")
    if prefix == "":
        return ""
    if prefix.endswith("/"):
        return validate_key(prefix[:-1]) + "/"
    return validate_key(prefix)


def _shown(key: str) -> str:
    text = key if len(key) <= 80 else key[:77] + "..."
    return repr(text)
