"""Tests of examples/seed_demo.py: it prints the seed article's examples, as jaxpool computes them."""

from examples import seed_demo


def test_prints_the_seed_examples(capsys):
    seed_demo.main()
    out = capsys.readouterr().out
    compact = " ".join(out.split())
    assert "[[ 6. 8.] [14. 16.]]" in compact
    assert "[[ 3.5 5.5] [11.5 13.5]]" in compact
    assert "[[6. 8.] [9. 3.]]" in compact
    assert "global average: 4.0 " in compact
    assert "global max: 9.0" in compact
    assert "torch agrees: [[6.0, 8.0], [9.0, 3.0]] 4.0 9.0" in compact
