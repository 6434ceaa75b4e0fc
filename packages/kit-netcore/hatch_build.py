"""Build hook: compile the XDP object and the cffi extension into the kit-netcore wheel.

hatchling runs it for the wheel target only (``[tool.hatch.build.targets.wheel.hooks.custom]``);
the sdist ships this file with ``bpf/`` and ``csrc/`` so that a wheel builds from it.

- ``bpf/shield.bpf.c`` -> ``kit_netcore/bpf/shield.bpf.o`` (``clang -target bpf``), next to
  the BPF sources (``bpf/*.h``, ``bpf/*.c``) the benchmarks compile variants from;
- ``src/kit_netcore/_ffi_build.py`` (cffi, API mode, ``csrc/*.c`` linked with ``-lbpf``)
  -> ``kit_netcore/_native{EXT_SUFFIX}``.

A wheel gets the outputs through ``force_include``; an editable install imports
``kit_netcore`` from ``src/``, so there they are copied into ``src/kit_netcore/`` (ignored
by git) instead. The wheel is tagged for this interpreter and platform
(``cp311-cp311-linux_x86_64``), never ``py3-none-any``; a compiler failure fails the build.

Environment: ``CLANG`` names the compiler for the BPF object (default ``clang``); ``CC`` and
``CFLAGS`` reach the extension build through cffi/setuptools as usual.
"""

from __future__ import annotations

import ctypes.util
import os
import runpy
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

DEBIAN_PACKAGES = "clang llvm libbpf-dev libelf-dev"
BPF_PROGRAM = "shield.bpf.c"
MODULE = "kit_netcore"


class BuildError(RuntimeError):
    """The XDP object or the extension could not be built; the message says what to install."""


def _missing_toolchain_message(missing: list[str]) -> str:
    return (
        "kit-netcore compiles an XDP program and a libbpf extension when it is built, and "
        f"this machine lacks: {', '.join(missing)}. On Debian/Ubuntu: "
        f"apt-get install {DEBIAN_PACKAGES}"
    )


def _include_dirs() -> list[Path]:
    dirs = [Path(d) for d in os.environ.get("CPATH", "").split(os.pathsep) if d]
    dirs += [Path(d) for d in os.environ.get("C_INCLUDE_PATH", "").split(os.pathsep) if d]
    return [*dirs, Path("/usr/local/include"), Path("/usr/include")]


def _has_header(name: str) -> bool:
    return any((d / name).is_file() for d in _include_dirs())


def _multiarch_include() -> Path | None:
    """``/usr/include/<triplet>``: where Debian keeps ``asm/types.h``, which clang's bpf
    target does not search (``'asm/types.h' file not found`` otherwise)."""
    triplet = sysconfig.get_config_var("MULTIARCH")
    if not triplet:
        gcc = shutil.which("gcc") or shutil.which("cc")
        if gcc:
            out = subprocess.run(  # noqa: S603 - the compiler found on PATH, fixed arguments
                [gcc, "-print-multiarch"], capture_output=True, text=True, check=False
            )
            triplet = out.stdout.strip()
    if triplet and (Path("/usr/include") / triplet).is_dir():
        return Path("/usr/include") / triplet
    return None


class NetcoreBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles the BPF object and the cffi extension (wheel target only)."""

    PLUGIN_NAME = "custom"
    _tmp: Path | None = None

    def _outputs_in_tree(self) -> list[Path]:
        package = Path(self.root) / "src" / MODULE
        return [*package.glob("_native*.so"), package / "_native.c", package / "bpf"]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        clang = self._check_toolchain()
        self._tmp = Path(tempfile.mkdtemp(prefix="kit-netcore-build-"))
        try:
            obj = self._compile_bpf(clang, root, self._tmp / "bpf")
            native = self._compile_extension(root, self._tmp / "ffi")
        except BaseException:
            self.finalize(version, build_data, "")
            raise
        sources = sorted([*(root / "bpf").glob("*.h"), *(root / "bpf").glob("*.c")])
        outputs = {
            native: f"{MODULE}/{native.name}",
            obj: f"{MODULE}/bpf/{obj.name}",
            **{source: f"{MODULE}/bpf/{source.name}" for source in sources},
        }

        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version == "editable":
            # kit_netcore is imported from src/: put the outputs there. Each file is swapped
            # in atomically (a running process keeps its mapping of the old .so), and the
            # _native of other Python versions' editable installs stays.
            for src, dest in outputs.items():
                target = root / "src" / dest
                target.parent.mkdir(exist_ok=True)
                fresh = target.with_name(f".{target.name}.new")
                shutil.copy2(src, fresh)
                os.replace(fresh, target)
            return
        force_include = build_data.setdefault("force_include", {})
        for src, dest in outputs.items():
            force_include[str(src)] = dest

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def clean(self, versions: list[str]) -> None:
        for path in self._outputs_in_tree():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    # ------------------------------------------------------------------ steps

    def _check_toolchain(self) -> str:
        missing = []
        clang = shutil.which(os.environ.get("CLANG", "clang"))
        if clang is None:
            missing.append("clang (the BPF compiler)")
        if not _has_header("bpf/libbpf.h") or not _has_header("bpf/bpf_helpers.h"):
            missing.append("the libbpf headers (bpf/libbpf.h, bpf/bpf_helpers.h)")
        if not _has_header("linux/bpf.h"):
            missing.append("the kernel UAPI headers (linux/bpf.h)")
        if ctypes.util.find_library("bpf") is None:
            missing.append("libbpf (libbpf.so)")
        if ctypes.util.find_library("elf") is None:
            missing.append("libelf (libelf.so)")
        if missing or clang is None:
            raise BuildError(_missing_toolchain_message(missing))
        return clang

    def _compile_bpf(self, clang: str, root: Path, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True)
        source = root / "bpf" / BPF_PROGRAM
        obj = out_dir / BPF_PROGRAM.replace(".c", ".o")
        command = [clang, "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall"]
        command += [f"-I{root / 'bpf'}"]
        multiarch = _multiarch_include()
        if multiarch is not None:
            command += [f"-I{multiarch}"]
        command += ["-c", str(source), "-o", str(obj)]
        self.app.display_info(" ".join(command))
        # the compiler found on PATH (or $CLANG) on this package's own sources
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0 or not obj.is_file():
            raise BuildError(
                f"clang could not compile {source.relative_to(root)} "
                f"(exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )
        if result.stderr:
            self.app.display_warning(result.stderr)
        return obj

    def _compile_extension(self, root: Path, tmpdir: Path) -> Path:
        tmpdir.mkdir(parents=True)
        script = root / "src" / MODULE / "_ffi_build.py"
        # By path: importing kit_netcore here would need the extension being built.
        ffibuilder = runpy.run_path(str(script))["ffibuilder"]
        try:
            built = Path(ffibuilder.compile(tmpdir=str(tmpdir), verbose=True))
        except Exception as exc:
            raise BuildError(
                f"the cffi extension {MODULE}._native did not compile: {exc}\n"
                f"(it links the system libbpf: apt-get install {DEBIAN_PACKAGES})"
            ) from exc
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        if built.name != f"_native{suffix}":
            raise BuildError(f"cffi produced {built.name}, expected _native{suffix}")
        return built
