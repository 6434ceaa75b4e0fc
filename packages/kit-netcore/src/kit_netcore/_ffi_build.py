"""cffi builder (API mode) of ``kit_netcore._native``: the C library of csrc/ over libbpf.

Build-time only: ``hatch_build.py`` runs this file by path and calls
``ffibuilder.compile(tmpdir=...)``; the wheel excludes it. For a quick in-place build while
working on the C code::

    python packages/kit-netcore/src/kit_netcore/_ffi_build.py /tmp/nc-ffi

The declarations come from the headers themselves, so they cannot drift: ``csrc/netcore.h``
(every function, enum and constant) and ``bpf/nc_common.h`` (the structs, for
``ffi.new``/``ffi.sizeof``, and the constants). cffi's ``cdef`` takes plain C declarations
and ``#define NAME ...`` only, so comments and preprocessor lines are stripped and every
object-like macro becomes ``#define NAME ...``, its value then read from the real header by
the C compiler. In API mode the compiler also checks every struct layout and prototype
declared here against the headers.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from cffi import FFI

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
CSRC = PACKAGE_ROOT / "csrc"
BPF = PACKAGE_ROOT / "bpf"
# nc_common.h first: netcore.h forward-declares struct nc_pkt, which nc_common.h defines.
HEADERS = (BPF / "nc_common.h", CSRC / "netcore.h")

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_DEFINE = re.compile(r"#\s*define\s+([A-Za-z_]\w*)(\(?)(.*)")


def cdef_from_header(text: str) -> str:
    """The part of a C header cffi's ``cdef`` accepts.

    Example::

        >>> cdef_from_header("#ifndef H\\n#define H\\n#define N (1u << 2) /* n */\\nint f(void);\\n#endif")
        '#define N ...\\nint f(void);'
    """
    text = _COMMENT.sub(" ", text)
    text = re.sub(r"\\\n", " ", text)  # continued lines
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            match = _DEFINE.match(line)
            # object-like macros with a value; include guards and function-like macros go
            if match and not match.group(2) and match.group(3).strip():
                lines.append(f"#define {match.group(1)} ...")
            continue
        lines.append(raw.rstrip())
    return "\n".join(lines)


# nc_common.h takes the kernel's fixed-width names from <linux/types.h>; cffi learns their
# exact C types from the compiler.
PRELUDE = (
    "typedef int... __u8;\ntypedef int... __u16;\ntypedef int... __u32;\ntypedef int... __u64;"
)

ffibuilder = FFI()
ffibuilder.cdef("\n".join([PRELUDE, *(cdef_from_header(h.read_text()) for h in HEADERS)]))
ffibuilder.set_source(
    "kit_netcore._native",
    '#include "netcore.h"\n#include "nc_common.h"\n',
    sources=[str(p) for p in sorted(CSRC.glob("*.c"))],
    include_dirs=[str(CSRC), str(BPF)],
    # libbpf.so pulls libelf and zlib in itself
    libraries=["bpf"],
    extra_compile_args=["-O2", "-Wall", "-std=gnu11"],
)

if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/ffi").resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(ffibuilder.compile(tmpdir=str(out), verbose=True))
