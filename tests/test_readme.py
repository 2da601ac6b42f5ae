"""The README's Python examples run as written, and its commands are the ones CI runs."""

import pathlib
import re

import flax
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
FLAX_VERSION = tuple(int(part) for part in flax.__version__.split(".")[:2])


def _for_this_flax(block: str) -> str:
    """The NNX quick start is written for flax >= 0.11; the README names the one call that
    differs on flax 0.10 (the oldest supported), so that is what runs there."""
    if FLAX_VERSION >= (0, 11):
        return block
    return block.replace("optimizer.update(model, grads)", "optimizer.update(grads)")


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


def test_python_blocks_run_in_order(capsys):
    namespace: dict = {}
    for block in BLOCKS:  # later blocks use names (jax, jnp, jaxpool) from earlier ones
        exec(compile(_for_this_flax(block), "README.md", "exec"), namespace)
    out = " ".join(capsys.readouterr().out.split())
    assert "[[ 6. 8.] [14. 16.]]" in out
    assert "[[ 3.5 5.5] [11.5 13.5]]" in out
    assert "[[ 5 7] [13 15]]" in out
    assert "(2, 7, 56, 64)" in out and "(2, 512)" in out and "(4, 10)" in out


@pytest.mark.parametrize("placeholder", ["PERFORMANCE_SECTION", "TODO", "TBD"])
def test_no_placeholders(placeholder):
    assert placeholder not in README


def test_ci_runs_the_readme_test_command():
    """.ci/run's first step is the README's test command, word for word."""
    commands = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
                if line.startswith("python3 -m venv .venv")]
    assert len(commands) == 1, commands
    assert commands[0] in README
    assert "pip install -e \".[test,examples]\"" in commands[0] and "-m pytest" in commands[0]
