"""Tests of examples/cifar10/train.py: augmentation, the train loop and its outputs,
bit-identical resume, data parallelism over 2 (forced host) devices, and the CLI.

The runs use tiny models (width 2) on tiny 8x8 synthetic data, so compile time
dominates; runs that share a config share one compiled step (``get_experiment`` caches).
"""

import dataclasses
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from examples.cifar10 import data, train
from tests.helpers import LAUNCHES, REPO, run_cli

DATASET = data.load_synthetic(image_size=8, channels=1, train_size=48, test_size=20, seed=3)
# fast_compile: unoptimised XLA code compiles several times faster; these runs are tiny.
CONFIG = train.TrainConfig(dataset="synthetic", model="hybrid_resnet", pool="hybrid", width=2,
                           epochs=3, batch_size=16, eval_batch_size=8, seed=5, fast_compile=True)


def _tree_equal(a, b) -> bool:
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return (jax.tree.structure(a) == jax.tree.structure(b)
            and all(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b, strict=True)))


def _state_tree(state: train.TrainState):
    return {"step": state.step, "params": state.params, "batch_stats": state.batch_stats,
            "opt_state": state.opt_state, "rng": state.rng}


# ------------------------------------------------------------------------ preprocessing

PREPROCESS = dict(mean=(0.5,), std=(0.25,), crop_padding=1, flip=True, dtype=jnp.float32)


def test_preprocess_without_key_only_normalises():
    images = jnp.arange(2 * 4 * 4, dtype=jnp.uint8).reshape(2, 4, 4, 1) * 8
    out = train.preprocess(images, None, **PREPROCESS)
    np.testing.assert_allclose(out, (np.asarray(images) / 255.0 - 0.5) / 0.25, rtol=1e-6, atol=1e-6)


def test_preprocess_crops_and_flips_like_torchvision():
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (64, 4, 4, 1)), jnp.uint8)
    key = jax.random.key(7)
    out = np.asarray(train.preprocess(images, key, **PREPROCESS))
    again = np.asarray(train.preprocess(images, key, **PREPROCESS))
    np.testing.assert_array_equal(out, again)  # a pure function of the key
    raw = np.asarray(images) / 255.0
    padded = np.pad(raw, ((0, 0), (1, 1), (1, 1), (0, 0)))  # black (0) before normalising
    seen_flips, seen_offsets = set(), set()
    for index in range(len(images)):
        matches = [
            (dy, dx, flip)
            for dy in range(3) for dx in range(3) for flip in (False, True)
            if np.allclose(
                (padded[index, dy:dy + 4, dx:dx + 4][:, ::-1] if flip
                 else padded[index, dy:dy + 4, dx:dx + 4]), out[index] * 0.25 + 0.5, atol=1e-6)
        ]
        assert matches, f"image {index} is no crop/flip of its input"
        seen_offsets.update((dy, dx) for dy, dx, _ in matches)
        seen_flips.update(flip for _, _, flip in matches)
    assert seen_flips == {False, True} and len(seen_offsets) == 9


def test_preprocess_without_flip_never_mirrors():
    images = jnp.asarray(np.random.default_rng(1).integers(0, 256, (32, 4, 4, 1)), jnp.uint8)
    options = dict(PREPROCESS, crop_padding=0, flip=False)
    np.testing.assert_array_equal(train.preprocess(images, jax.random.key(0), **options),
                                  train.preprocess(images, None, **options))


def test_defaults_depend_on_the_dataset():
    digits = train.resolve_config(train.TrainConfig(), data.load_digits())
    assert (digits.flip, digits.crop_padding, digits.lr, digits.width) == (False, 1, 0.1, 32)
    cifar_like = data.load_synthetic(image_size=32, train_size=10, test_size=10)
    synthetic = train.resolve_config(
        train.TrainConfig(dataset="synthetic", model="resnet18", optimizer="adamw"), cifar_like)
    assert (synthetic.flip, synthetic.crop_padding, synthetic.lr, synthetic.width) == (
        True, 4, 3e-3, 64)


def test_weight_decay_applies_to_kernels_only():
    params = {"conv": {"kernel": jnp.ones((3, 3, 1, 2)), "bias": jnp.ones(2)},
              "pool": {"mix_logit": jnp.zeros(())}}
    assert train.decay_mask(params) == {"conv": {"kernel": True, "bias": False},
                                        "pool": {"mix_logit": False}}


def test_schedules_peak_at_lr_and_end_at_zero():
    for schedule in train.SCHEDULES:
        config = dataclasses.replace(CONFIG, schedule=schedule, lr=0.2, epochs=4)
        values = [float(train.make_schedule(config, 10)(step)) for step in range(41)]
        assert max(values) == pytest.approx(0.2, rel=1e-3)
        assert values[-1] == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------ training and outputs


def test_resume_is_bit_identical_and_metrics_are_append_correct(tmp_path):
    whole = train.train(CONFIG, out=tmp_path / "whole", dataset=DATASET, progress=False,
                        quiet=True)
    first = train.train(CONFIG, out=tmp_path / "resumed", dataset=DATASET, progress=False,
                        quiet=True, stop_after=2)
    assert [row["epoch"] for row in first.history] == [1, 2]
    resumed = train.train(CONFIG, out=tmp_path / "resumed", dataset=DATASET, progress=False,
                          quiet=True, resume=True)
    assert int(resumed.state.step) == int(whole.state.step) == 3 * (48 // 16)
    assert _tree_equal(_state_tree(resumed.state), _state_tree(whole.state))
    lines = (tmp_path / "resumed" / train.METRICS_FILE).read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    for got, expected in zip(rows, whole.history, strict=True):
        for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy",
                    "learning_rate", "step"):
            assert got[key] == expected[key], key
    # Resuming a finished run trains nothing and keeps the metrics as they are.
    again = train.train(CONFIG, out=tmp_path / "resumed", dataset=DATASET, progress=False,
                        quiet=True, resume=True)
    assert _tree_equal(_state_tree(again.state), _state_tree(whole.state))
    assert (tmp_path / "resumed" / train.METRICS_FILE).read_text().splitlines() == lines


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory):
    """A run of CONFIG stopped after 2 of its 3 epochs (checkpoints of epochs 1 and 2)."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    train.train(CONFIG, out=out, dataset=DATASET, progress=False, quiet=True, stop_after=2)
    return out


@pytest.fixture(scope="module")
def uninterrupted_run():
    return train.train(CONFIG, dataset=DATASET, progress=False, quiet=True)


def _truncate(path: pathlib.Path) -> None:
    """Cuts a file in half, as a full disk or a crash during its write leaves it."""
    content = path.read_bytes()
    assert content, path
    path.write_bytes(content[:len(content) // 2])


def _largest(paths) -> pathlib.Path:
    return max(paths, key=lambda path: path.stat().st_size)


# Damage to the newest checkpoint's files. The layout differs between orbax versions
# (0.9 has no commit_success.txt or array_metadatas/), so files are found by their role.
DAMAGE = {
    "progress-json-truncated": lambda folder: _truncate(
        _largest(path for path in (folder / "progress").iterdir() if path.is_file())),
    "array-data-truncated": lambda folder: _truncate(
        _largest(path for path in (folder / "state").rglob("*") if path.parent.name == "d")),
    "array-data-deleted": lambda folder: _largest(
        path for path in (folder / "state").rglob("*") if path.parent.name == "d").unlink(),
    "ocdbt-manifest-truncated": lambda folder: _truncate(folder / "state" / "manifest.ocdbt"),
    "tree-metadata-truncated": lambda folder: _truncate(folder / "state" / "_METADATA"),
    "checkpoint-metadata-emptied": lambda folder: (
        folder / "_CHECKPOINT_METADATA").write_bytes(b""),
    "checksums-missing": lambda folder: (folder / train.CHECKSUMS_FILE).unlink(),
    "checksums-truncated": lambda folder: _truncate(folder / train.CHECKSUMS_FILE),
}


def _no_tracebacks(stderr: str) -> None:
    assert "Traceback" not in stderr and "Event loop is closed" not in stderr, stderr[-3000:]


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_falls_back_from_a_damaged_checkpoint(damage, interrupted_run, uninterrupted_run,
                                                     tmp_path, capfd):
    out = tmp_path / "run"
    shutil.copytree(interrupted_run, out)
    DAMAGE[damage](out / train.CHECKPOINT_DIR / "2")
    capfd.readouterr()
    resumed = train.train(CONFIG, out=out, dataset=DATASET, progress=False, quiet=True,
                          resume=True)
    stderr = capfd.readouterr().err
    _no_tracebacks(stderr)
    damaged = out / train.DAMAGED_DIR / "2"
    assert (f"warning: the checkpoint of epoch 2 in {out / train.CHECKPOINT_DIR} is damaged ("
            in stderr)
    assert f"resuming from epoch 1 instead. It was moved to {damaged}" in stderr
    assert damaged.is_dir()
    # Epochs 2 and 3 trained again from epoch 1's checkpoint: as if never interrupted.
    assert _tree_equal(_state_tree(resumed.state), _state_tree(uninterrupted_run.state))
    rows = [json.loads(line) for line in (out / train.METRICS_FILE).read_text().splitlines()]
    assert [row["test_loss"] for row in rows] == [
        row["test_loss"] for row in uninterrupted_run.history]
    assert sorted(path.name for path in (out / train.CHECKPOINT_DIR).iterdir()) == ["2", "3"]
    # The new checkpoints are intact: resuming the finished run warns of nothing.
    again = train.train(CONFIG, out=out, dataset=DATASET, progress=False, quiet=True,
                        resume=True)
    assert "warning" not in capfd.readouterr().err
    assert _tree_equal(_state_tree(again.state), _state_tree(uninterrupted_run.state))


def test_resume_with_no_intact_checkpoint_says_what_to_delete(interrupted_run, tmp_path, capfd):
    out = tmp_path / "run"
    shutil.copytree(interrupted_run, out)
    DAMAGE["array-data-truncated"](out / train.CHECKPOINT_DIR / "2")
    DAMAGE["progress-json-truncated"](out / train.CHECKPOINT_DIR / "1")
    capfd.readouterr()
    with pytest.raises(train.CheckpointError) as error:
        train.train(CONFIG, out=out, dataset=DATASET, progress=False, quiet=True, resume=True)
    message = str(error.value)
    assert message.startswith(f"cannot resume: no intact checkpoint in {out / train.CHECKPOINT_DIR}"
                              " (epoch 2: state/")
    assert "; epoch 1: progress/" in message and " bytes instead of " in message
    assert message.endswith(f"Delete {out / train.CHECKPOINT_DIR} to train this run from the "
                            "start, or choose another --out")
    _no_tracebacks(capfd.readouterr().err)
    # Nothing was moved or deleted.
    assert sorted(path.name for path in (out / train.CHECKPOINT_DIR).iterdir()) == ["1", "2"]
    assert not (out / train.DAMAGED_DIR).exists()
    # Deleting what the message names starts the run afresh.
    shutil.rmtree(out / train.CHECKPOINT_DIR)
    result = train.train(CONFIG, out=out, dataset=DATASET, progress=False, quiet=True,
                         resume=True, stop_after=1)
    assert [row["epoch"] for row in result.history] == [1]


def _reseal(folder: pathlib.Path, **changes) -> None:
    """Rewrites a checkpoint's checksums file for its files as they are now, so a change
    to them reaches orbax (as if orbax had written it that way)."""
    recorded = json.loads((folder / train.CHECKSUMS_FILE).read_text())
    recorded.update(files=train._checkpoint_files(folder), **changes)
    (folder / train.CHECKSUMS_FILE).write_text(json.dumps(recorded))


def test_a_restore_that_fails_or_differs_is_an_error_not_a_fallback(interrupted_run, tmp_path,
                                                                     capfd):
    """Files that match their checksums are not damaged: if orbax cannot restore them, or
    restores something else than was saved, resuming stops and moves nothing."""
    out = tmp_path / "run"
    shutil.copytree(interrupted_run, out)
    newest = out / train.CHECKPOINT_DIR / "2"
    _reseal(newest, state_sha256="0" * 64)
    with pytest.raises(train.CheckpointError,
                       match=r"cannot restore the checkpoint in .*/2: the restored state "
                             "differs from the saved one"):
        train.train(CONFIG, out=out, dataset=DATASET, progress=False, quiet=True, resume=True)
    shutil.rmtree(out)
    shutil.copytree(interrupted_run, out)
    progress_file = _largest(path for path in (newest / "progress").iterdir() if path.is_file())
    progress_file.write_text(json.dumps(dict(json.loads(progress_file.read_text()), epoch=7)))
    _reseal(newest)
    with pytest.raises(train.CheckpointError,
                       match="its progress record does not match the epoch and step"):
        train.train(CONFIG, out=out, dataset=DATASET, progress=False, quiet=True, resume=True)
    shutil.rmtree(out)
    shutil.copytree(interrupted_run, out)
    for path in (newest / "state").rglob("*"):
        if path.parent.name == "d":
            _truncate(path)
    _reseal(newest)
    capfd.readouterr()
    with pytest.raises(train.CheckpointError,
                       match=r"cannot restore the checkpoint in .*/2: orbax failed although its "
                             r"files are intact: \w+: "):
        train.train(CONFIG, out=out, dataset=DATASET, progress=False, quiet=True, resume=True)
    # orbax's pending reads report into its closed event loop: kept off stderr.
    _no_tracebacks(capfd.readouterr().err)
    assert sorted(path.name for path in (out / train.CHECKPOINT_DIR).iterdir()) == ["1", "2"]


def test_outputs(tmp_path):
    result = train.train(CONFIG, out=tmp_path, dataset=DATASET, progress=False, quiet=True)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    for key in ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                "images_per_second", "seconds", "learning_rate"):
        assert all(np.isfinite(row[key]) for row in rows), key
    assert rows == result.history
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["flip"] is True and saved["crop_padding"] == 1 and saved["lr"] == 0.1
    assert saved["num_params"] == result.num_params
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert checkpoints == ["2", "3"]  # the last two; no temporary folders left behind
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_refuses_to_overwrite_or_to_resume_with_other_settings(tmp_path):
    train.train(CONFIG, out=tmp_path, dataset=DATASET, progress=False, quiet=True, stop_after=1)
    with pytest.raises(ValueError, match=r"already holds checkpoints.*--resume"):
        train.train(CONFIG, out=tmp_path, dataset=DATASET, progress=False, quiet=True)
    with pytest.raises(ValueError, match=r"different settings \(pool: saved 'hybrid', now 'max'; "
                                         r"seed: saved 5, now 6\)"):
        train.train(dataclasses.replace(CONFIG, pool="max", seed=6), out=tmp_path,
                    dataset=DATASET, progress=False, quiet=True, resume=True)


def test_argument_errors_of_train():
    with pytest.raises(ValueError, match="batch_size=64 exceeds the 48 training images"):
        train.train(dataclasses.replace(CONFIG, batch_size=64), dataset=DATASET, quiet=True)
    with pytest.raises(ValueError, match=r"pool must be one of max, avg, hybrid.*got 'median'"):
        train.TrainConfig(pool="median")
    with pytest.raises(ValueError, match="epochs must be >= 1, but got 0"):
        train.TrainConfig(epochs=0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        train.TrainConfig(batch_size=8.0)
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0, but got -0\.1"):
        train.TrainConfig(lr=-0.1)
    with pytest.raises(TypeError, match="bf16 must be a bool, but got str: 'yes'"):
        train.TrainConfig(bf16="yes")
    with pytest.raises(ValueError, match=r"config\.dataset='digits' but the dataset given is 'synthetic'"):
        train.train(train.TrainConfig(), dataset=DATASET, quiet=True)


TWO_DEVICES = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from examples.cifar10 import data, train
    assert jax.device_count() == 2, jax.devices()
    dataset = data.load_synthetic(image_size=8, channels=1, train_size=48, test_size=20, seed=3)
    config = train.TrainConfig(dataset="synthetic", pool="hybrid", width=2, epochs=2,
                               batch_size=16, eval_batch_size=8, seed=5, fast_compile=True)
    one = train.train(config, dataset=dataset, devices=jax.devices()[:1], quiet=True)
    two = train.train(config, dataset=dataset, quiet=True)
    sharding = two.state.params["classifier"]["kernel"].sharding
    images, = train._global_batch(train.make_placement(), dataset.train_images[:16])
    errors = [float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
              for a, b in zip(jax.tree.leaves(one.state.params), jax.tree.leaves(two.state.params))]
    print(json.dumps({
        "max_error": max(errors),
        "replicated": sharding.is_fully_replicated and len(sharding.device_set) == 2,
        "batch_shards": [s.data.shape[0] for s in images.addressable_shards],
        "history": [[r["train_loss"], r["test_accuracy"]] for r in (one.history + two.history)],
    }))
""")


def test_two_devices_give_the_one_device_result():
    """Data-parallel over 2 forced host devices (XLA flags need a fresh process)."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    completed = subprocess.run([sys.executable, "-c", TWO_DEVICES], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["replicated"]
    assert result["batch_shards"] == [8, 8]
    # Reductions over the batch are split in two and added, so rounding differs.
    assert result["max_error"] < 1e-4, result
    history = np.asarray(result["history"])
    np.testing.assert_allclose(history[:2], history[2:], rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------- several processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_processes(arguments, folder: pathlib.Path, *, count: int = 2, devices_each: int = 2,
                  by_environment: bool = False, timeout: float = 240) -> list[dict]:
    """Runs ``python -m examples.cifar10.train ARGUMENTS --distributed`` as ``count``
    processes on this machine (coordinator on 127.0.0.1, gloo), each with
    ``devices_each`` CPU devices; returns each one's return code, stdout and stderr.

    The coordinator, count and index go in flags, or in environment variables with
    ``by_environment``. Output goes to files (a full pipe could block a process that
    another waits for); whatever is still running at ``timeout`` is killed.
    """
    coordinator = f"127.0.0.1:{_free_port()}"
    processes, logs = [], []
    try:
        for index in range(count):
            env = dict(os.environ, JAX_PLATFORMS="cpu",
                       XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_each}")
            flags = ["--distributed"]
            if by_environment:
                env.update(JAX_COORDINATOR_ADDRESS=coordinator, JAX_NUM_PROCESSES=str(count),
                           JAX_PROCESS_ID=str(index))
            else:
                flags += ["--coordinator-address", coordinator, "--num-processes", str(count),
                          "--process-id", str(index)]
            stdout = open(folder / f"process-{index}.out", "w+")
            stderr = open(folder / f"process-{index}.err", "w+")
            logs.append((stdout, stderr))
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "examples.cifar10.train", *map(str, arguments), *flags],
                cwd=REPO, env=env, stdout=stdout, stderr=stderr))
        deadline = time.monotonic() + timeout
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=60)
        for stdout, stderr in logs:
            stdout.close()
            stderr.close()
    return [{"returncode": process.returncode,
             "stdout": (folder / f"process-{index}.out").read_text(),
             "stderr": (folder / f"process-{index}.err").read_text()}
            for index, process in enumerate(processes)]


def test_two_processes_train_checkpoint_and_resume_like_one(tmp_path):
    """Two processes of two CPU devices each, as two hosts would run: the same numbers as
    one process, metrics from process 0 alone, and a resume (after damage to the newest
    checkpoint) in which both restore."""
    out = tmp_path / "run"
    # Average pooling and a small learning rate: with jax 0.4.35 the last-bit differences
    # of two processes' sums grow to 1e-3 within three epochs where max pooling's choices
    # flip, or at the default learning rate (with newer jax they stay in the last bits).
    arguments = ["--dataset", "digits", "--pool", "avg", "--width", "2", "--epochs", "3",
                 "--batch-size", "128", "--lr", "0.01", "--no-progress", "--fast-compile",
                 "--out", out]

    def check(results):
        for index, result in enumerate(results):
            assert result["returncode"] == 0, (index, result["stderr"][-3000:])
            _no_tracebacks(result["stderr"])
        assert "epoch" not in results[1]["stdout"]  # process 1 prints no progress

    first = run_processes([*arguments, "--stop-after", "2"], tmp_path)
    check(first)
    assert "epoch   2/3" in first[0]["stdout"]
    saved = json.loads((out / train.CONFIG_FILE).read_text())
    assert (saved["num_processes"], saved["num_devices"]) == (2, 4)
    state_folder = out / train.CHECKPOINT_DIR / "2" / "state"
    if (state_folder / "array_metadatas").is_dir():  # orbax versions that spread the writes
        assert sorted(path.name for path in (state_folder / "array_metadatas").iterdir()) == [
            "process_0", "process_1"]
    DAMAGE["array-data-truncated"](out / train.CHECKPOINT_DIR / "2")

    second = run_processes([*arguments, "--resume"], tmp_path, by_environment=True)
    check(second)
    assert "resumed from" in second[0]["stdout"] and "at epoch 1 (step 10)" in second[0]["stdout"]
    assert "warning: the checkpoint of epoch 2" in second[0]["stderr"]
    assert "warning" not in second[1]["stderr"]  # one warning, from process 0
    assert sorted(path.name for path in (out / train.CHECKPOINT_DIR).iterdir()) == ["2", "3"]

    config = train.TrainConfig(pool="avg", width=2, epochs=3, batch_size=128, lr=0.01,
                               fast_compile=True)
    one = train.train(config, dataset=data.load_digits(), devices=jax.devices()[:1], quiet=True,
                      progress=False)
    # Each epoch's line once: only process 0 writes metrics.jsonl.
    rows = [json.loads(line) for line in (out / train.METRICS_FILE).read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    np.testing.assert_allclose([[row["train_loss"], row["test_loss"]] for row in rows],
                               [[row["train_loss"], row["test_loss"]] for row in one.history],
                               rtol=1e-4, atol=1e-4)
    # The last checkpoint restores in this one-device process to what the two saved
    # (its state checksum is checked) and equals the one-process run's state.
    manager = train._checkpoint_manager(out / train.CHECKPOINT_DIR)
    try:
        restored, progress = train._restore_checkpoint(manager, 3, one.state)
    finally:
        manager.close()
    assert int(restored.step) == int(one.state.step) == 30 and progress["epoch"] == 3
    for name in ("params", "batch_stats"):
        errors = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                              getattr(restored, name), getattr(one.state, name))
        assert max(jax.tree.leaves(errors)) < 1e-4, (name, errors)


# ---------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--pool", "median"], "argument --pool: unknown pooling 'median'; valid poolings: max, "
                               "avg, hybrid, attention, gated, gem, softpool, avgmax, catavgmax"),
        (["--model", "vgg"], "unknown model 'vgg'; valid models: resnet18, hybrid_resnet"),
        (["--dataset", "mnist"], "unknown dataset 'mnist'; valid datasets: cifar10, digits, synthetic"),
        (["--epochs", "0"], "argument --epochs: expected a whole number >= 1, got 0"),
        (["--batch-size", "many"], "argument --batch-size: expected a whole number >= 1, got 'many'"),
        (["--lr", "-1"], "argument --lr: expected a finite number > 0, got '-1'"),
        (["--lr", "nan"], "argument --lr: expected a finite number > 0, got 'nan'"),
        (["--weight-decay", "x"], "argument --weight-decay: expected a number, got 'x'"),
        (["--optimizer", "adam"], "unknown optimizer 'adam'; valid optimizers: sgd, adamw"),
        (["--compare", "max,mean"], "argument --compare: unknown pooling 'mean'; valid poolings"),
        (["--compare", "max"], "expected at least two distinct comma-separated poolings"),
        (["--compare", "max,avg", "--baseline", "hybrid"],
         "--baseline 'hybrid' must be one of the compared poolings (max, avg)"),
        (["--num-processes", "2", "--process-id", "0"],
         "--num-processes, --process-id only apply with --distributed"),
        (["--distributed", "--num-processes", "2", "--process-id", "2"],
         "the process id must be below the number of processes (2), got 2"),
        (["--distributed", "--coordinator-address", "localhost"],
         "the coordinator address must be HOST:PORT, got 'localhost'"),
        (["--distributed", "--process-id", "-1"],
         "argument --process-id: expected a whole number >= 0, got -1"),
    ],
)
def test_cli_argument_errors(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(arguments)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_checks_the_environment_of_distributed_runs(monkeypatch, capsys):
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--distributed"])
    assert exit_info.value.code == 2
    assert "$JAX_NUM_PROCESSES: expected a whole number >= 1, got 'two'" in capsys.readouterr().err
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "5")
    with pytest.raises(SystemExit):  # flags win over the environment, and are checked too
        train.main(["--distributed", "--process-id", "3"])
    assert "below the number of processes (2), got 3" in capsys.readouterr().err


def test_cli_failing_to_join_is_one_error_line(monkeypatch, capfd):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    # Leaves this process's choice of CPU collectives alone.
    monkeypatch.setenv("JAX_CPU_COLLECTIVES_IMPLEMENTATION", "none")
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--distributed", "--num-processes", "2", "--process-id", "1"])
    assert exit_info.value.code == 2
    stderr = capfd.readouterr().err
    assert stderr.startswith("python -m examples.cifar10.train: error: could not join the "
                             "distributed run: ")
    assert stderr.count("\n") == 1


def test_cli_runs_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    arguments = ["--dataset", "digits", "--width", "2", "--epochs", "2", "--batch-size", "128",
                 "--out", str(out), "--no-progress", "--fast-compile"]
    assert train.main([*arguments, "--stop-after", "1"]) == 0
    with pytest.raises(SystemExit) as exit_info:  # no --resume: refuses to overwrite
        train.main(arguments)
    assert exit_info.value.code == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    assert train.main([*arguments, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "resumed from" in printed and "final test accuracy" in printed
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


@pytest.mark.parametrize("launch", sorted(LAUNCHES))
def test_cli_help_by_module_and_by_path(launch, tmp_path):
    completed = run_cli("train", launch, ["--help"], tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.startswith("usage: ") and "--resume" in completed.stdout


def test_cli_by_path_trains_like_the_module(tmp_path):
    """A tiny run by path from another folder writes the numbers the module's run writes."""
    arguments = ["--dataset", "digits", "--width", "2", "--epochs", "1", "--batch-size", "256",
                 "--no-progress", "--fast-compile"]
    histories = {}
    for launch in ("module", "path-elsewhere"):
        out = tmp_path / launch
        completed = run_cli("train", launch, [*arguments, "--out", out], tmp_path)
        assert completed.returncode == 0, completed.stderr[-3000:]
        assert "final test accuracy" in completed.stdout
        histories[launch] = [
            {key: row[key] for key in ("epoch", "step", "train_loss", "test_loss", "test_accuracy")}
            for row in map(json.loads, (out / train.METRICS_FILE).read_text().splitlines())]
    assert histories["module"] == histories["path-elsewhere"] and histories["module"]


def test_cli_resume_without_an_intact_checkpoint_is_one_error_line(tmp_path, capfd):
    out = tmp_path / "run"
    arguments = ["--dataset", "digits", "--width", "2", "--epochs", "2", "--batch-size", "128",
                 "--out", str(out), "--no-progress", "--fast-compile"]
    assert train.main([*arguments, "--stop-after", "1"]) == 0
    DAMAGE["array-data-truncated"](out / train.CHECKPOINT_DIR / "1")
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        train.main([*arguments, "--resume"])
    assert exit_info.value.code == 2
    stderr = capfd.readouterr().err
    assert stderr.startswith("python -m examples.cifar10.train: error: cannot resume: no intact "
                             f"checkpoint in {out / train.CHECKPOINT_DIR} (epoch 1: state/")
    assert stderr.count("\n") == 1 and f"Delete {out / train.CHECKPOINT_DIR} " in stderr
