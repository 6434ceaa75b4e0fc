"""libFuzzer over the parser and the engine's decision, under ASan and UBSan.

``fuzz/fuzz_parse.c`` is compiled with clang against ``csrc/engine.c`` (no libbpf), seeded
with frames from the corpus and run for ``KIT_NETCORE_FUZZ_SECONDS`` (default 20). A crash,
a sanitizer report or a broken invariant leaves an artifact and a non-zero exit status.
Without clang or its fuzzer runtime the test is skipped, except in CI where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from _corpus import corpus

PACKAGE = Path(__file__).resolve().parent.parent
SEEDS = 200


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def _clang() -> str:
    for name in ("clang", "clang-14"):
        found = shutil.which(name)
        if found:
            return found
    _unavailable("clang is not installed")
    raise AssertionError("unreachable")


def _compile(tmp_path: Path) -> Path:
    binary = tmp_path / "fuzz_parse"
    command = [
        _clang(),
        "-g",
        "-O1",
        "-fsanitize=fuzzer,address,undefined",
        "-fno-sanitize-recover=all",
        f"-I{PACKAGE / 'bpf'}",
        f"-I{PACKAGE / 'csrc'}",
        str(PACKAGE / "fuzz" / "fuzz_parse.c"),
        str(PACKAGE / "csrc" / "engine.c"),
        "-lpthread",
        "-o",
        str(binary),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        missing = "cannot find" in result.stderr or "No such file" in result.stderr
        if missing and ("clang_rt" in result.stderr or "fuzzer" in result.stderr):
            _unavailable(f"clang's libFuzzer/sanitizer runtime is missing:\n{result.stderr}")
        pytest.fail(f"fuzz_parse.c does not compile:\n{result.stderr}")
    return binary


def _seed(directory: Path) -> None:
    directory.mkdir()
    frames = [frame for frame in corpus() if frame.data]
    step = max(1, len(frames) // SEEDS)
    for index, frame in enumerate(frames[::step][:SEEDS]):
        (directory / f"seed-{index:03d}-{frame.kind}").write_bytes(frame.data)


@pytest.mark.slow
def test_fuzz_parse_and_decide(tmp_path: Path) -> None:
    binary = _compile(tmp_path)
    seeds, work, artifacts = tmp_path / "seeds", tmp_path / "work", tmp_path / "artifacts"
    _seed(seeds)
    work.mkdir()
    artifacts.mkdir()
    seconds = int(os.environ.get("KIT_NETCORE_FUZZ_SECONDS", "20"))
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=1:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    result = subprocess.run(
        [
            str(binary),
            f"-max_total_time={seconds}",
            "-max_len=4096",
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/",
            str(work),
            str(seeds),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 300,
        check=False,
    )
    found = sorted(artifacts.iterdir())
    details = "\n".join(f"{path.name}: {path.read_bytes().hex()}" for path in found)
    headlines = "\n".join(
        line
        for line in result.stderr.splitlines()
        if "invariant failed" in line or "ERROR:" in line or "runtime error" in line
    )
    assert result.returncode == 0 and not found, (
        f"fuzz_parse exited {result.returncode}\n{headlines}\n{details}\n{result.stderr[-6000:]}"
    )
    executed = re.search(r"stat::number_of_executed_units:\s*(\d+)", result.stderr)
    assert executed, result.stderr[-2000:]
    print(f"fuzz_parse: {executed.group(1)} inputs in {seconds} s, no finding")  # -rP shows it
    assert int(executed.group(1)) > SEEDS  # it ran past the seeds
