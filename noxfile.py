"""Sessions: tests, lint, packaging, docs, benchmarks and the demo.

``nox -t ci`` runs what CI runs (the test suite, lint and the packaging
check). Every install goes through ``constraints.txt`` so that versions are
pinned and torch, when a later session needs it, is the CPU build.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False
nox.options.sessions = ["tests", "tests_torch", "tests_frameworks", "lint", "packaging"]

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))


def _install(session: nox.Session, *packages: str) -> None:
    session.install("--upgrade", "pip", *CONSTRAINTS)
    session.install(*CONSTRAINTS, *packages)


@nox.session(tags=["ci"])
def tests(session: nox.Session) -> None:
    """The core test suite against a regular (non-editable) install."""
    _install(session, ".[test,data]")
    required = {
        "RPG_REQUIRE_BACKENDS": os.environ.get("RPG_REQUIRE_BACKENDS", "numpy"),
        "RPG_REQUIRE_DATA": "1",
    }
    session.run("pytest", *session.posargs, env=required)
    _doctests(session, skip=FRAMEWORK_BACKENDS)


TORCH_FILES = ("backends/torch/", "adapters/torch/")
OTHER_FRAMEWORK_FILES = (
    "backends/jax/",
    "backends/tensorflow/",
    "adapters/jax/",
    "adapters/keras/",
)
FRAMEWORK_BACKENDS = TORCH_FILES + OTHER_FRAMEWORK_FILES
"""Files that import a framework: their examples run in that framework's session."""
KERAS_BACKENDS = ("tensorflow", "jax", "torch")
EVERY_FRAMEWORK = "numpy,torch,jax,tensorflow,keras,flax,equinox"
KERAS_TESTS = (
    "tests/test_keras_*.py",
    "tests/test_cross_framework*.py",
    "tests/test_adapter_contract.py",
)
"""What runs again under each further Keras backend (Keras picks one per process)."""
KERAS_SELECTED = (("tests/test_resume.py", "keras"),)
"""Files whose Keras tests (chosen by ``-k``) also run again under each further backend."""


def _doctests(
    session: nox.Session, *, only: tuple[str, ...] = (), skip: tuple[str, ...] = ()
) -> None:
    """Run the installed package's docstring examples, from outside the checkout.

    ``only`` and ``skip`` name files, or folders ending in ``/``, relative to
    the installed ``rpgcore/``.
    """
    session.chdir(session.create_tmp())
    where = session.run(
        "python", "-c", "import os, rpgcore; print(os.path.dirname(rpgcore.__file__))", silent=True
    )
    package = Path(str(where).strip())
    files = [
        str(path)
        for path in sorted(package.rglob("*.py"))
        if path.name != "__main__.py"
        and (not only or path.relative_to(package).as_posix().startswith(only))
        and not path.relative_to(package).as_posix().startswith(skip)
    ]
    session.run("pytest", "--doctest-modules", "-q", "-p", "no:cacheprovider", *files)
    session.chdir(ROOT)


@nox.session(tags=["ci"])
def tests_torch(session: nox.Session) -> None:
    """The whole suite again with PyTorch (CPU build, pinned): torch must not be skipped."""
    _install(session, ".[test,torch,data]")
    required = {"RPG_REQUIRE_BACKENDS": "numpy,torch", "RPG_REQUIRE_DATA": "1"}
    session.run("pytest", *session.posargs, env=required)
    _doctests(session, only=TORCH_FILES)


@nox.session(tags=["ci"])
def tests_frameworks(session: nox.Session) -> None:
    """Every framework installed: the whole suite with Keras on TensorFlow, then the Keras
    and cross-framework tests again on Keras' JAX and torch backends, one process each.
    No framework may be skipped."""
    _install(session, ".[test,torch,jax,equinox,tensorflow,keras,data]")
    base = {"RPG_REQUIRE_BACKENDS": EVERY_FRAMEWORK, "RPG_REQUIRE_DATA": "1"}
    first, *others = KERAS_BACKENDS
    session.run("pytest", *session.posargs, env={**base, "KERAS_BACKEND": first})
    for backend in others:
        tests = sorted(str(p.relative_to(ROOT)) for g in KERAS_TESTS for p in ROOT.glob(g))
        session.run("pytest", "-q", *tests, env={**base, "KERAS_BACKEND": backend})
        for test_file, selection in KERAS_SELECTED:
            session.run(
                "pytest", "-q", test_file, "-k", selection, env={**base, "KERAS_BACKEND": backend}
            )
    _doctests(session, only=OTHER_FRAMEWORK_FILES)


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff over the whole tree; mypy (strict) over the installed package."""
    _install(session, ".[lint,test,torch,jax,equinox,tensorflow,keras,data]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # mypy resolves rpgcore.backends and rpgcore.adapters through the install,
    # so it runs from a folder where the source tree cannot shadow it.
    session.chdir(session.create_tmp())
    session.run("mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "rpgcore")


@nox.session(tags=["ci"])
def packaging(session: nox.Session) -> None:
    """Build the wheel and check both install kinds import the same way."""
    _install(session, "build")
    dist = Path(session.create_tmp()) / "dist"
    session.run("python", "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT))
    check = str(ROOT / "tests" / "packaging_check.py")
    (wheel,) = dist.glob("rpgcore-*.whl")
    session.run("python", check, "--wheel", str(wheel))
    session.install(str(wheel), "--force-reinstall", *CONSTRAINTS)
    session.run("python", check, "--installed", "regular")
    session.install(*CONSTRAINTS, "-e", str(ROOT))
    session.run("python", check, "--installed", "editable")


FUZZ_TESTS = ("tests/test_fuzz_ringfile.py", "tests/test_fuzz_plan.py")


@nox.session
def fuzz(session: nox.Session) -> None:
    """A long fuzz campaign over the ring file loader and the plan parser (docs/reliability.md).

    ``RPG_FUZZ_EXAMPLES`` sets the examples per fuzz test (default 5000, about
    60,000 in all); each run draws fresh examples, and pytest prints how many it
    tried. Replay a run with ``nox -s fuzz -- --hypothesis-seed=N``.
    """
    _install(session, ".[test]")
    examples = os.environ.get("RPG_FUZZ_EXAMPLES", "5000")
    session.run(
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--hypothesis-show-statistics",
        *FUZZ_TESTS,
        *session.posargs,
        env={"RPG_FUZZ_EXAMPLES": examples},
    )


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Generator speed and memory against numpy's permutation, same run."""
    _install(session, ".")
    session.run("python", str(ROOT / "benchmarks" / "generator.py"), *session.posargs)


@nox.session
def benchmarks_torch(session: nox.Session) -> None:
    """The PyTorch generator against a naive one, and training steps against vanilla."""
    _install(session, ".[torch]")
    session.run("python", str(ROOT / "benchmarks" / "torch_generator.py"))
    session.run("python", str(ROOT / "benchmarks" / "torch_training_step.py"))


@nox.session
def benchmarks_jax(session: nox.Session) -> None:
    """JAX training steps (jitted) of RPG models against the same vanilla models."""
    _install(session, ".[jax]")
    session.run("python", str(ROOT / "benchmarks" / "jax_training_step.py"))


@nox.session
def benchmarks_keras(session: nox.Session) -> None:
    """Keras training steps of RPG models against vanilla ones, on each Keras backend."""
    _install(session, ".[torch,jax,tensorflow,keras]")
    for backend in KERAS_BACKENDS:
        script = str(ROOT / "benchmarks" / "keras_training_step.py")
        session.run("python", script, env={"KERAS_BACKEND": backend})


@nox.session
def benchmarks_adapters(session: nox.Session) -> None:
    """ResNet-18-RPG training steps over vanilla in every adapter (each Keras backend apart)."""
    _install(session, ".[torch,jax,tensorflow,keras]")
    script = str(ROOT / "benchmarks" / "adapter_steps.py")
    for framework in ("torch", "jax"):
        session.run("python", script, "--framework", framework)
    for backend in KERAS_BACKENDS:
        session.run("python", script, "--framework", "keras", env={"KERAS_BACKEND": backend})


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: RPG against narrower vanilla networks of the same DoF on embedded MNIST.

    Writes the table, the plot and a ring file to ``rpgcore-demo/`` (or the
    folder given after ``--``), then inspects the ring file.
    """
    _install(session, ".[torch,data]")
    out = Path(session.posargs[0] if session.posargs else ROOT / "rpgcore-demo").resolve()
    session.run("rpgcore", "demo", "--out", str(out))
    session.run("rpgcore", "inspect", str(out / "demo.rpg.safetensors"))


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly and run its code examples."""
    _install(session, ".[docs,test,torch,jax,keras,tensorflow,data]")
    session.run("pytest", "tests/test_docs.py", "-q")
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", str(Path(session.create_tmp()) / "site")
    )
