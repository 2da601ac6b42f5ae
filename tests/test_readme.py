"""The README's Python examples run as written, and its commands are the ones CI runs."""

import codeop
import re

import flax
import pytest

from tests.helpers import REPO

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


def _paste_error(source: str) -> str | None:
    """What the plain ``python`` shell says when ``source`` is pasted into it, line by
    line (its own rule: a blank line ends a compound statement, and a statement may not
    follow one without it); None when every statement is accepted."""
    buffer: list[str] = []
    for number, line in enumerate([*source.splitlines(), ""], start=1):
        buffer.append(line)
        try:
            statement = codeop.compile_command("\n".join(buffer), "<stdin>", "single")
        except SyntaxError as error:
            return f"line {number} ({line!r}): {error.msg}"
        if statement is not None:
            buffer = []
    return None


def test_the_paste_check_catches_what_the_shell_refuses():
    assert _paste_error("class A:\n    x = 1\n\n    y = 2\n") is not None
    assert _paste_error("for i in range(2):\n    pass\nprint(i)\n") is not None
    assert _paste_error("class A:\n    x = 1\n    y = 2\n\nprint(A.y)\n") is None


@pytest.mark.parametrize("document", ["README.md", "docs/learnable.md", "docs/vision.md", "docs/attention.md"])
def test_python_blocks_paste_into_the_plain_python_shell(document):
    text = (REPO / document).read_text()
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        assert _paste_error(block) is None, (document, _paste_error(block), block[:200])


def test_the_vision_guide_runs_as_written(capsys):
    """docs/vision.md's blocks in order (later ones use earlier names), with what its
    comments say they print."""
    namespace: dict = {}
    text = (REPO / "docs" / "vision.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        exec(compile(block, "docs/vision.md", "exec"), namespace)
    out = capsys.readouterr().out.split("\n")
    assert out[:4] == ["(2, 16, 16, 16)", "(2, 16, 16, 16)", "[0.25 0.25 0.  ]", "True"]
    assert out[4:7] == ["(2, 7, 7, 8)", "True", "(2, 4, 6, 8)"]
    assert out[7:11] == ["(2, 168)"] * 3 + ["[[15.  5.  7. 13. 15.]]"]
    assert out[11:13] == ["(2, 20, 20, 32)", "True"]
    assert out[13:15] == ["(2, 10)", "True"]


def test_the_nnx_quick_start_runs_on_its_own(capsys):
    """Pasted alone into a fresh shell, as an NNX user would."""
    (block,) = [block for block in BLOCKS if "import jaxpool.nnx as jpn" in block]
    exec(compile(_for_this_flax(block), "README.md", "exec"), {})
    assert "(4, 10) 0.4975" in capsys.readouterr().out


def test_the_module_table_names_every_linen_module_and_its_nnx_twin():
    import jaxpool.nnx

    (table,) = re.findall(r"^\| linen: .*?(?=\n\n)", README, flags=re.S | re.M)
    names = set(re.findall(r"`(?:jpn\.|models\.)?([A-Za-z_]\w*)", table))
    twins = set(jaxpool.nnx.__all__) - {"load_variables", "variables"}
    assert twins - names == set()
    assert "jpn." in table and "NNX" in table.splitlines()[0]


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
