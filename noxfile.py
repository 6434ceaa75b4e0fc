"""kit's task runner: every task is a nox session.

    nox -l                         # the whole matrix
    nox -s ci                      # what CI runs (the README's test command)
    nox -s "tests-3.12(kit-cache)" # one package on one Python
    nox -t kit-cache               # every session of one package
    nox -s bench                   # benchmark ratios of every package, one table
    nox -s demo                    # the demo on embedded defaults

Packages are discovered from ``packages/kit-*/pyproject.toml``; Pythons are those of
3.11, 3.12 and 3.13 found on this machine (on PATH or installed through pyenv).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests"]

ROOT = Path(__file__).resolve().parent
PACKAGES_DIR = ROOT / "packages"
SERVICES_PLUGIN = ROOT / "tools" / "pytest-kit-services"
WANTED_PYTHONS = ("3.11", "3.12", "3.13")
# Pinned: new ruff releases add rules and formatting changes; bump deliberately.
RUFF = "ruff==0.17.6"


# --------------------------------------------------------------------------- discovery


def _runs(executable: str) -> bool:
    try:
        subprocess.run([executable, "-c", "pass"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _find_pythons() -> list[str]:
    """Return the wanted Python versions present here, making each one resolvable.

    pyenv shims answer ``python3.12`` only for the active versions, so versions installed
    through pyenv but not active are linked into ``.nox/.pythons``, which goes first on PATH.
    """
    link_dir = ROOT / ".nox" / ".pythons"
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found: list[str] = []
    for version in WANTED_PYTHONS:
        name = f"python{version}"
        candidate = shutil.which(name)
        if candidate and _runs(candidate):
            found.append(version)
            continue
        installs = sorted(
            pyenv_root.glob(f"versions/{version}.*/bin/{name}"),
            key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)],
        )
        if installs and _runs(str(installs[-1])):
            link_dir.mkdir(parents=True, exist_ok=True)
            link = link_dir / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(installs[-1])
            found.append(version)
    if (link_dir).is_dir():
        os.environ["PATH"] = f"{link_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    return found


def _load_pyproject(package: str) -> dict[str, Any]:
    with (PACKAGES_DIR / package / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


PACKAGES = sorted(p.name for p in PACKAGES_DIR.glob("kit-*") if (p / "pyproject.toml").is_file())
PYTHONS = _find_pythons() or [WANTED_PYTHONS[0]]
LOWEST_PYTHON = PYTHONS[0]


def _package_params() -> list[Any]:
    return [nox.param(p, id=p, tags=[p]) for p in PACKAGES]


def _extras(package: str) -> list[str]:
    """Every extra except the aggregate ``all``."""
    extras = _load_pyproject(package)["project"].get("optional-dependencies", {})
    return sorted(e for e in extras if e != "all")


def _group(package: str, name: str) -> list[str]:
    return list(nox.project.dependency_groups(_load_pyproject(package), name))


def _spec(package: str, extras: list[str] | None = None) -> str:
    extras = _extras(package) if extras is None else extras
    path = str(PACKAGES_DIR / package)
    return f"{path}[{','.join(extras)}]" if extras else path


def _services_requirements(package: str) -> list[str]:
    """The shared fixture layer, with the service extras the package's tests declare."""
    services = _load_pyproject(package).get("tool", {}).get("kit", {}).get("test-services", [])
    extras = f"[{','.join(services)}]" if services else ""
    return [f"{SERVICES_PLUGIN}{extras}"]


def _pytest(session: nox.Session, package: str) -> None:
    session.run(
        "pytest",
        str(PACKAGES_DIR / package / "tests"),
        f"--rootdir={ROOT}",
        "-p",
        "no:cacheprovider",
        *session.posargs,
    )


# --------------------------------------------------------------------------- sessions


@nox.session(python=PYTHONS)
@nox.parametrize("package", _package_params())
def tests(session: nox.Session, package: str) -> None:
    """Run one package's tests on one Python, with only that package and its test group."""
    session.install(_spec(package), *_group(package, "test"), *_services_requirements(package))
    _pytest(session, package)


@nox.session(python=LOWEST_PYTHON, venv_backend="uv")
@nox.parametrize("package", _package_params())
def lowest(session: nox.Session, package: str) -> None:
    """Run one package's tests with its direct dependencies at their declared floors."""
    session.install("--resolution", "lowest-direct", _spec(package))
    session.install(*_group(package, "test"), *_services_requirements(package), "packaging")
    session.run("uv", "pip", "list", silent=False)
    session.run("python", str(ROOT / "tools" / "check_floors.py"), str(PACKAGES_DIR / package))
    _pytest(session, package)


@nox.session(python=LOWEST_PYTHON)
@nox.parametrize("package", _package_params())
def slim(session: nox.Session, package: str) -> None:
    """Install with no extras: the core imports; each adapter names the extra it needs."""
    session.install(_spec(package, extras=[]))
    session.run("python", str(ROOT / "tools" / "check_slim.py"), package)


@nox.session(python=LOWEST_PYTHON)
def services(session: nox.Session) -> None:
    """The shared test-service layer's own tests: throwaway Redis, PostgreSQL and MariaDB."""
    session.install(f"{SERVICES_PLUGIN}[all]", "mypy>=1.18", "types-PyMySQL")
    session.run("pytest", str(SERVICES_PLUGIN / "tests"), f"--rootdir={ROOT}", *session.posargs)
    session.run("mypy", str(SERVICES_PLUGIN / "src"))


@nox.session(python=LOWEST_PYTHON)
def isolation(session: nox.Session) -> None:
    """Build every wheel and sdist; install each wheel alone; no other kit package comes along."""
    session.install("uv")
    dist = Path(session.create_tmp()) / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for package in PACKAGES:
        out = dist / package
        session.run("uv", "build", "--quiet", "--out-dir", str(out), str(PACKAGES_DIR / package))
        session.run("python", str(ROOT / "tools" / "check_sdist.py"), package, str(out))
        wheel = next(out.glob("*.whl"))
        venv = dist / f"venv-{package}"
        session.run("uv", "venv", "--quiet", "--python", session.python or LOWEST_PYTHON, str(venv))
        python = str(venv / "bin" / "python")
        session.run("uv", "pip", "install", "--quiet", "--python", python, str(wheel))
        session.run(python, str(ROOT / "tools" / "check_isolation.py"), package, external=True)


@nox.session(python=LOWEST_PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=LOWEST_PYTHON)
@nox.parametrize("package", _package_params())
def typecheck(session: nox.Session, package: str) -> None:
    """mypy --strict over one package's source, with every extra installed."""
    session.install(_spec(package), *_group(package, "typecheck"), "mypy>=1.18")
    session.run("mypy", str(PACKAGES_DIR / package / "src"))


@nox.session(python=LOWEST_PYTHON)
def bench(session: nox.Session) -> None:
    """Run every package's benchmarks against its peers and print one table of ratios."""
    results = Path(session.create_tmp()) / "bench"
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True)
    session.install(f"{SERVICES_PLUGIN}[redis,postgresql]")
    for package in PACKAGES:
        runner = PACKAGES_DIR / package / "benchmarks" / "run.py"
        if not runner.is_file():
            continue
        session.install(_spec(package), *_group(package, "bench"))
        out = results / f"{package}.json"
        session.run("python", str(runner), "--out", str(out), *session.posargs)
    session.run("python", str(ROOT / "tools" / "bench_table.py"), *map(str, results.glob("*.json")))


@nox.session(python=LOWEST_PYTHON)
def docs(session: nox.Session) -> None:
    """Build the mkdocs site with --strict (broken links and bad references fail)."""
    session.install("mkdocs-material>=9.5", "mkdocstrings[python]>=0.27", RUFF)
    for package in PACKAGES:
        session.install(_spec(package))
    site = Path(session.create_tmp()) / "site"
    env = {"NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's end-of-life banner
    session.run("mkdocs", "build", "--strict", "--site-dir", str(site), env=env)


EXAMPLES_DIR = ROOT / "examples"
EXAMPLES = (
    sorted(p.name for p in EXAMPLES_DIR.iterdir() if (p / "requirements.txt").is_file())
    if EXAMPLES_DIR.is_dir()
    else []
)


def _example_requirements(example: str) -> list[str]:
    """An example's requirements.txt, with every kit package taken from this tree."""
    specs: list[str] = []
    for raw in (EXAMPLES_DIR / example / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"(kit-[a-z]+)(\[[a-z,\-]+\])?", line)
        if match and (PACKAGES_DIR / match.group(1)).is_dir():
            specs.append(f"{PACKAGES_DIR / match.group(1)}{match.group(2) or ''}")
        else:
            specs.append(line)
    return specs


@nox.session(python=LOWEST_PYTHON)
@nox.parametrize("example", [nox.param(e, id=e) for e in EXAMPLES])
def examples(session: nox.Session, example: str) -> None:
    """One example's tests: the kit packages it composes, installed from this tree, against
    real servers (throwaway Redis and PostgreSQL from pytest-kit-services) and a browser."""
    session.install(*_example_requirements(example), f"{SERVICES_PLUGIN}[redis,postgresql]")
    session.run(
        "pytest",
        str(EXAMPLES_DIR / example / "tests"),
        f"--rootdir={ROOT}",
        "-p",
        "no:cacheprovider",
        *session.posargs,
    )


@nox.session(python=LOWEST_PYTHON)
def demo(session: nox.Session) -> None:
    """The README's first command: the FastAPI example on embedded defaults (no servers),
    walked through a scripted tour over HTTP. ``nox -s demo -- --serve`` leaves it running."""
    if (EXAMPLES_DIR / "fastapi_app" / "tour.py").is_file():
        session.install(*_example_requirements("fastapi_app"))
        session.run("python", str(EXAMPLES_DIR / "fastapi_app" / "tour.py"), *session.posargs)
        return
    session.install(str(PACKAGES_DIR / "kit-cache"))
    session.run("python", str(EXAMPLES_DIR / "script" / "cache_demo.py"), *session.posargs)


@nox.session(python=False)
def ci(session: nox.Session) -> None:
    """The README's test command: queue every check CI needs, in a sensible order."""
    queued = ["lint", "services"]
    queued += [f"typecheck({p})" for p in PACKAGES]
    queued += [f"tests-{py}({p})" for p in PACKAGES for py in PYTHONS]
    queued += [f"lowest({p})" for p in PACKAGES]
    queued += [f"slim({p})" for p in PACKAGES]
    queued += [f"examples({e})" for e in EXAMPLES]
    queued += ["isolation", "docs", "demo"]
    for name in queued:
        session.notify(name)
    session.notify("bench", ["--quick"])
