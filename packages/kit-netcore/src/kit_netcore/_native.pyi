# The cffi extension compiled from csrc/ (see _ffi_build.py): untyped C calls.
from typing import Any

ffi: Any
lib: Any
