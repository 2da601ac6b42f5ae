"""The README's Python examples run as written, and its commands are the ones CI runs."""

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


def test_python_blocks_run_in_order(capsys):
    namespace: dict = {}
    for block in BLOCKS:  # later blocks use names (jax, jnp, jaxpool) from earlier ones
        exec(compile(block, "README.md", "exec"), namespace)
    out = " ".join(capsys.readouterr().out.split())
    assert "[[ 6. 8.] [14. 16.]]" in out
    assert "[[ 3.5 5.5] [11.5 13.5]]" in out
    assert "[[ 5 7] [13 15]]" in out
    assert "(2, 7, 56, 64)" in out and "(2, 512)" in out and "(4, 10)" in out


@pytest.mark.parametrize("placeholder", ["PERFORMANCE_SECTION", "TODO", "TBD"])
def test_no_placeholders(placeholder):
    assert placeholder not in README


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in README
    assert ci.endswith("-m pytest")
