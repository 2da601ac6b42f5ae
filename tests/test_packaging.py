"""Packaging: one version string, and the files a wheel must ship (py.typed).

.ci/wheel runs these (with the rest of the library tests) against the built wheel
installed in a fresh venv, where the package comes from site-packages, not this tree.
"""

import importlib.resources
import os
import re
import subprocess
import sys

import pytest

import jaxpool
from tests.helpers import REPO


def test_version_is_the_one_declared_in_pyproject():
    if jaxpool.__version__ == "0+unknown":
        pytest.skip("jaxpool is not installed here (a bare checkout on sys.path)")
    declared = re.search(
        r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), flags=re.M
    ).group(1)
    assert jaxpool.__version__ == declared, "reinstall: the installed metadata is stale"


def test_a_checkout_that_was_never_installed_imports():
    """Without distribution metadata (a source tree on sys.path) the version is a PEP 440
    placeholder instead of an import error."""
    program = (
        "import importlib.metadata as metadata\n"
        "def version(name):\n"
        "    raise metadata.PackageNotFoundError(name)\n"
        "metadata.version = version\n"
        "import jaxpool\n"
        "print(jaxpool.__version__)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["0+unknown"]


def test_package_ships_py_typed():
    """PEP 561: type checkers read jaxpool's annotations only when py.typed is installed."""
    assert (importlib.resources.files("jaxpool") / "py.typed").is_file()


def _requirements():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = list(project["dependencies"])
    for extra in ("test", "examples"):
        listed += project["optional-dependencies"][extra]
    return listed


def test_lower_bound_pins_are_the_declared_lower_bounds():
    """.ci/lower-bounds.txt pins exactly (==) what pyproject.toml declares as the oldest
    supported release (>=, or == for torch), so CI tests the versions users are promised."""
    declared = {}
    for requirement in _requirements():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(>=|==)([0-9.]+)", requirement.replace(" ", ""))
        if match:
            declared[match.group(1).lower()] = match.group(3)
    pins = {}
    for line in (REPO / ".ci" / "lower-bounds.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    for name in ("jax", "jaxlib", "flax", "numpy", "chex", "optax", "orbax-checkpoint", "torch"):
        assert name in pins, f"{name} is not pinned in .ci/lower-bounds.txt"
        # 0.9 and 0.9.0 name the same release.
        assert pins[name].removesuffix(".0") == declared[name].removesuffix(".0"), name


def test_the_wheel_check_leaves_out_exactly_the_example_tests():
    """.ci/wheel installs the library's test extra, not the example's: every test module
    that imports the example must be left out there, and only those."""
    script = (REPO / ".ci" / "wheel").read_text()
    ignored = set(re.findall(r"--ignore=(tests/test_\w+\.py)", script))
    example_tests = {
        f"tests/{path.name}" for path in (REPO / "tests").glob("test_*.py")
        if re.search(r"^(from|import) examples\b", path.read_text(), flags=re.M)
    }
    assert ignored == example_tests
