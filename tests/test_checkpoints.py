"""Tests of examples/cifar10/checkpoints.py: a run resumed after damage to its newest
checkpoint falls back to the one before, moves the damaged one aside with one warning and
no traceback, and ends bit-identical to an uninterrupted run; with no checkpoint that
restores it stops with one error naming what to delete; and the atomic writes.

orbax's files differ between versions (0.9 has no ``commit_success.txt`` or
``array_metadatas/``), so the damage finds files by their role.
"""

import json
import pathlib
import shutil

import pytest

from examples.cifar10 import checkpoints, train
from tests.example_helpers import CONFIG, DATASET, numbers, tree_equal


@pytest.fixture
def interrupted(tmp_path):
    """CONFIG's run stopped after 2 of its 3 epochs: checkpoints of epochs 1 and 2. A
    fresh run each time, not a copy of one: tensorstore's caches in this process could
    serve a copy's damaged file from its twin's undamaged one (of the same name)."""
    out = tmp_path / "interrupted"
    train.train(CONFIG, out=out, dataset=DATASET, quiet=True, stop_after=2)
    return out


@pytest.fixture(scope="module")
def uninterrupted():
    return train.train(CONFIG, dataset=DATASET, quiet=True)


def _truncate(path: pathlib.Path) -> None:
    """Cuts a file in half, as a full disk or a crash during its write leaves it."""
    content = path.read_bytes()
    assert content, path
    path.write_bytes(content[:len(content) // 2])


def _largest(folder: pathlib.Path, where=lambda path: True) -> pathlib.Path:
    return max((path for path in folder.rglob("*") if path.is_file() and where(path)),
               key=lambda path: path.stat().st_size)


def _arrays(folder: pathlib.Path) -> list[pathlib.Path]:
    """The state's data files: all of them, since orbax need not read every one (OCDBT
    may keep superseded files)."""
    return [path for path in (folder / "state").rglob("*") if path.parent.name == "d"]


DAMAGE = {
    "progress truncated": lambda folder: _truncate(_largest(folder / "progress")),
    "progress of another epoch": lambda folder: _largest(folder / "progress").write_text(
        json.dumps({**json.loads(_largest(folder / "progress").read_text()), "epoch": 7})),
    "array data truncated": lambda folder: [_truncate(path) for path in _arrays(folder)],
    "array data deleted": lambda folder: [path.unlink() for path in _arrays(folder)],
    "array data zeroed": lambda folder: [path.write_bytes(bytes(path.stat().st_size))
                                         for path in _arrays(folder)],
    "OCDBT manifest truncated": lambda folder: _truncate(folder / "state" / "manifest.ocdbt"),
    "tree metadata truncated": lambda folder: _truncate(folder / "state" / "_METADATA"),
    "state folder deleted": lambda folder: shutil.rmtree(folder / "state"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_falls_back_past_a_damaged_checkpoint(damage, interrupted, uninterrupted,
                                                     tmp_path, capfd):
    out = interrupted
    DAMAGE[damage](out / "checkpoints" / "2")
    capfd.readouterr()
    resumed = train.train(CONFIG, out=out, dataset=DATASET, quiet=True, resume=True)
    stderr = capfd.readouterr().err
    assert "Traceback" not in stderr and "Event loop is closed" not in stderr, stderr[-3000:]
    assert stderr.count("\n") == 1, stderr[-3000:]  # the warning, and nothing else
    moved = out / checkpoints.DAMAGED_DIR / "2"
    assert stderr.startswith(f"warning: the checkpoint of epoch 2 in {out / 'checkpoints'} does "
                             "not restore (")
    assert f"resuming from epoch 1 instead. It was moved to {moved}; delete it" in stderr
    assert moved.is_dir() and sorted(path.name for path in (out / "checkpoints").iterdir()) == [
        "2", "3"]
    # Epochs 2 and 3 trained again from epoch 1's checkpoint: as if never interrupted.
    assert tree_equal(resumed.state, uninterrupted.state)
    assert numbers(checkpoints.read_lines(out / "metrics.jsonl")) == numbers(uninterrupted.history)
    # The new checkpoints restore: resuming the finished run warns of nothing.
    again = train.train(CONFIG, out=out, dataset=DATASET, quiet=True, resume=True)
    assert capfd.readouterr().err == "" and tree_equal(again.state, uninterrupted.state)


def test_a_second_damaged_copy_of_an_epoch_is_kept_too(interrupted, tmp_path, capfd):
    out = interrupted
    (out / checkpoints.DAMAGED_DIR / "2").mkdir(parents=True)  # an earlier one
    DAMAGE["array data truncated"](out / "checkpoints" / "2")
    train.train(CONFIG, out=out, dataset=DATASET, quiet=True, resume=True, stop_after=2)
    assert f"moved to {out / checkpoints.DAMAGED_DIR / '2.1'}" in capfd.readouterr().err
    assert sorted(path.name for path in (out / checkpoints.DAMAGED_DIR).iterdir()) == ["2", "2.1"]


def test_with_no_checkpoint_that_restores_it_says_what_to_delete(interrupted, tmp_path, capfd):
    out = interrupted
    DAMAGE["array data truncated"](out / "checkpoints" / "2")
    DAMAGE["progress truncated"](out / "checkpoints" / "1")
    capfd.readouterr()
    with pytest.raises(checkpoints.CheckpointError) as error:
        train.train(CONFIG, out=out, dataset=DATASET, quiet=True, resume=True)
    message = str(error.value)
    assert message.startswith(f"cannot resume: no checkpoint in {out / 'checkpoints'} restores "
                              "(epoch 2: ") and "; epoch 1: JSONDecodeError: " in message
    assert message.endswith(f"Delete {out / 'checkpoints'} to train this run from the start, "
                            "or choose another --out") and "\n" not in message
    assert "Traceback" not in capfd.readouterr().err
    assert sorted(path.name for path in (out / "checkpoints").iterdir()) == ["1", "2"]  # kept
    assert not (out / checkpoints.DAMAGED_DIR).exists()
    shutil.rmtree(out / "checkpoints")  # as the message says: the run starts afresh
    result = train.train(CONFIG, out=out, dataset=DATASET, quiet=True, resume=True, stop_after=1)
    assert [row["epoch"] for row in result.history] == [1]


def test_a_killed_save_leaves_no_checkpoint(interrupted, uninterrupted, tmp_path):
    """orbax saves into a temporary folder renamed into place: one left by a killed save
    is not a checkpoint, and the run resumes from the last complete one."""
    out = interrupted
    shutil.copytree(out / "checkpoints" / "2", out / "checkpoints" / "3.orbax-checkpoint-tmp-1")
    resumed = train.train(CONFIG, out=out, dataset=DATASET, quiet=True, resume=True)
    assert tree_equal(resumed.state, uninterrupted.state)


def test_atomic_writes_and_json_lines(tmp_path):
    path = tmp_path / "file.json"
    checkpoints.write_atomically(path, lambda file: file.write("1"))
    with pytest.raises(ZeroDivisionError):
        checkpoints.write_atomically(path, lambda file: file.write(str(1 / 0)))
    assert path.read_text() == "1" and [p.name for p in tmp_path.iterdir()] == ["file.json"]
    (tmp_path / "rows.jsonl").write_text('{"a": 1}\n{"a": 2.5}\n')
    assert checkpoints.read_lines(tmp_path / "rows.jsonl") == [{"a": 1}, {"a": 2.5}]
    assert checkpoints.read_lines(tmp_path / "missing.jsonl") == []


def test_brief_keeps_one_line_without_tensorstore_specs():
    error = ValueError("DATA_LOSS: bad\nfile [tensorstore_spec='{\"driver\": ...}']")
    assert checkpoints.brief(error) == "ValueError: DATA_LOSS: bad file"
    assert checkpoints.brief(RuntimeError("x" * 500), limit=10) == "RuntimeError: xxxxxxxxxx ..."
