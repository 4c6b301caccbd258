"""Sessions: ``nox -s tests lint typecheck docs``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"  # the CPU wheel; a looser pin pulls gigabytes of CUDA packages


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The whole suite, with every extra installed (torch pinned first)."""
    session.install(TORCH)
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def tests_minimal(session: nox.Session) -> None:
    """Core only: proves optional packages are imported lazily."""
    session.install("-e", ".", "pytest", "pytest-asyncio", "pytest-xdist", "hypothesis")
    session.run(
        "pytest",
        "tests/test_types.py",
        "tests/test_generator.py",
        "tests/test_drivers.py",
        "tests/test_exports.py",
        "tests/core",
        *session.posargs,
    )


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run(
        "ruff", "check", "src", "tests", "benchmarks", "examples", "docs/hooks", "noxfile.py"
    )
    session.run(
        "ruff",
        "format",
        "--check",
        "src",
        "tests",
        "benchmarks",
        "examples",
        "docs/hooks",
        "noxfile.py",
    )


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    session.install(TORCH)
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict", "src")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    session.install(TORCH)
    session.install("-e", ".[dev]")
    session.run("mkdocs", "build", "--strict")
