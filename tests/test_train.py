"""Tests of examples/cifar10/train.py (linen; the NNX path is in test_train_nnx.py): the
augmentation, the defaults, the loop against its recipe written out again, bit-identical
resume after a stop and after kill -9, the outputs, data parallelism over 2 forced host
devices, two processes, and the command line (by module and by path).

The runs use tiny models (width 2) on tiny 8x8 random data or digits, compiled without
XLA's optimisations (``fast_compile``); runs that share a config share one compiled step.
"""

import dataclasses
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from examples.cifar10 import checkpoints, data, train
from jaxpool import models
from tests.example_helpers import (
    CONFIG,
    DATASET,
    LAUNCHES,
    REPO,
    numbers,
    run_cli,
    tiny_dataset,
    tree_equal,
)

# A tiny digits run from the command line.
DIGITS = ["--dataset", "digits", "--width", "2", "--batch-size", "128", "--no-progress",
          "--fast-compile"]


# ------------------------------------------------------------------------ preprocessing

PREPROCESS = dict(mean=(0.5,), std=(0.25,), crop_padding=1, flip=True, dtype=jnp.float32)


def test_preprocess_without_key_only_normalises():
    images = jnp.arange(2 * 4 * 4, dtype=jnp.uint8).reshape(2, 4, 4, 1) * 8
    np.testing.assert_allclose(train.preprocess(images, None, **PREPROCESS),
                               (np.asarray(images) / 255.0 - 0.5) / 0.25, rtol=1e-6, atol=1e-6)


def test_preprocess_crops_and_flips_like_torchvision():
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (64, 4, 4, 1)), jnp.uint8)
    out = np.asarray(train.preprocess(images, jax.random.key(7), **PREPROCESS))
    np.testing.assert_array_equal(out, train.preprocess(images, jax.random.key(7), **PREPROCESS))
    padded = np.pad(np.asarray(images) / 255.0, ((0, 0), (1, 1), (1, 1), (0, 0)))  # black
    seen = set()
    for index in range(len(images)):
        matches = [(dy, dx, flip) for dy in range(3) for dx in range(3) for flip in (0, 1)
                   if np.allclose(padded[index, dy:dy + 4, dx:dx + 4][:, ::-1 if flip else 1],
                                  out[index] * 0.25 + 0.5, atol=1e-6)]
        assert matches, f"image {index} is no crop/flip of its input"
        seen.update(matches)
    assert {flip for _, _, flip in seen} == {0, 1} and len({(y, x) for y, x, _ in seen}) == 9


def test_preprocess_without_flip_never_mirrors():
    images = jnp.asarray(np.random.default_rng(1).integers(0, 256, (32, 4, 4, 1)), jnp.uint8)
    options = dict(PREPROCESS, crop_padding=0, flip=False)
    np.testing.assert_array_equal(train.preprocess(images, jax.random.key(0), **options),
                                  train.preprocess(images, None, **options))


def test_defaults_depend_on_the_data_model_and_optimizer():
    digits = train.resolve_config(train.TrainConfig(), data.load_digits())
    assert (digits.flip, digits.crop_padding, digits.lr, digits.width) == (False, 1, 0.1, 32)
    cifar_like = tiny_dataset(image_size=32, channels=3, train_size=10, test_size=10)
    other = train.resolve_config(train.TrainConfig(dataset="tiny", model="resnet18",
                                                   optimizer="adamw"), cifar_like)
    assert (other.flip, other.crop_padding, other.lr, other.width) == (True, 4, 3e-3, 64)
    mnist = dataclasses.replace(cifar_like, name="mnist")
    assert train.resolve_config(train.TrainConfig(dataset="mnist"), mnist).flip is False


def test_weight_decay_applies_to_kernels_only():
    params = {"conv": {"kernel": jnp.ones((3, 3, 1, 2)), "bias": jnp.ones(2)},
              "pool": {"mix_logit": jnp.zeros(())}}
    assert train.decay_mask(params) == {"conv": {"kernel": True, "bias": False},
                                        "pool": {"mix_logit": False}}


@pytest.mark.parametrize("schedule", train.SCHEDULES)
def test_schedules_peak_at_lr_and_end_at_zero(schedule):
    config = dataclasses.replace(CONFIG, schedule=schedule, lr=0.2, epochs=4)
    values = [float(train.make_optimizer(config, 10)[1](step)) for step in range(41)]
    assert max(values) == pytest.approx(0.2, rel=1e-3) and values[-1] == pytest.approx(0, abs=1e-6)


# ----------------------------------------------------------------- the loop, bit for bit


def reference_history(config: train.TrainConfig, dataset: data.Dataset) -> list[dict]:
    """The recipe of train.py's docstring and README, written out again: initialisation
    from ``fold_in(PRNGKey(seed), 0)``, epoch ``e``'s order from ``default_rng([seed, e])``,
    step ``t``'s augmentation from ``fold_in(fold_in(PRNGKey(seed), 1), t)``, SGD with L2
    decay of the kernels and Nesterov momentum, evaluation in padded, masked batches."""
    config = train.resolve_config(config, dataset)
    model = models.make_model(config.model, pool=config.pool, width=config.width)
    steps = dataset.num_train // config.batch_size
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.lr, steps, config.epochs * steps)
    kernels = lambda tree: jax.tree.map(lambda leaf: leaf.ndim >= 2, tree)  # noqa: E731
    optimizer = optax.chain(optax.add_decayed_weights(config.weight_decay, mask=kernels),
                            optax.sgd(schedule, momentum=0.9, nesterov=True))
    prepare = lambda images, key: train.preprocess(  # noqa: E731  (tested on its own above)
        images, key, mean=tuple(map(float, dataset.mean)), std=tuple(map(float, dataset.std)),
        crop_padding=config.crop_padding, flip=config.flip, dtype=jnp.float32)
    fast = {"compiler_options": train.FAST_COMPILE}

    def init(key):
        variables = model.init(jax.random.fold_in(key, 0), jnp.zeros((1, 8, 8, 1)), train=False)
        return (variables["params"], variables["batch_stats"],
                optimizer.init(variables["params"]))

    def step(params, batch_stats, opt_state, key, images, labels):
        inputs = prepare(images, key)

        def loss_fn(params):
            logits, updates = model.apply({"params": params, "batch_stats": batch_stats},
                                          inputs, train=True, mutable=["batch_stats"])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, (logits, updates["batch_stats"])

        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        accuracy = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
        return optax.apply_updates(params, updates), batch_stats, opt_state, loss, accuracy

    def test_sums(params, batch_stats, images, labels, weights):
        logits = model.apply({"params": params, "batch_stats": batch_stats},
                             prepare(images, None), train=False)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        return jnp.sum(losses * weights), jnp.sum(correct * weights)

    params, batch_stats, opt_state = jax.jit(init, **fast)(jax.random.PRNGKey(config.seed))
    step, test_sums = jax.jit(step, **fast), jax.jit(test_sums, **fast)
    augment_key, history, t = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1), [], 0
    for epoch in range(config.epochs):
        order = np.random.default_rng([config.seed, epoch]).permutation(dataset.num_train)
        losses, accuracies = [], []
        for start in range(0, steps * config.batch_size, config.batch_size):
            batch = order[start:start + config.batch_size]
            params, batch_stats, opt_state, loss, accuracy = step(
                params, batch_stats, opt_state, jax.random.fold_in(augment_key, t),
                dataset.train_images[batch], dataset.train_labels[batch])
            losses.append(np.asarray(loss))  # float32, averaged as float32
            accuracies.append(np.asarray(accuracy))
            t += 1
        loss_sum = correct_sum = 0.0
        count = len(dataset.test_labels)
        for start in range(0, count, config.eval_batch_size):
            index = np.arange(start, start + config.eval_batch_size)
            weights, index = (index < count).astype(np.float32), np.minimum(index, count - 1)
            batch_loss, batch_correct = test_sums(params, batch_stats, dataset.test_images[index],
                                                  dataset.test_labels[index], weights)
            loss_sum, correct_sum = loss_sum + float(batch_loss), correct_sum + float(batch_correct)
        history.append({"epoch": epoch + 1, "step": t, "train_loss": float(np.mean(losses)),
                        "train_accuracy": float(np.mean(accuracies)),
                        "test_loss": loss_sum / count, "test_accuracy": correct_sum / count,
                        "learning_rate": float(schedule(t - 1))})
    return history


def test_the_loop_follows_its_recipe_bit_for_bit():
    """What keeps a comparison's numbers reproducible across rewrites of the example."""
    assert numbers(train.train(CONFIG, dataset=DATASET, quiet=True).history) == \
        reference_history(CONFIG, DATASET)


# ------------------------------------------------------------------ training and outputs


@pytest.fixture(scope="module")
def uninterrupted():
    return train.train(CONFIG, dataset=DATASET, progress=False, quiet=True)


def test_resume_is_bit_identical_and_metrics_are_written_once(uninterrupted, tmp_path):
    first = train.train(CONFIG, out=tmp_path, dataset=DATASET, quiet=True, stop_after=2)
    assert [row["epoch"] for row in first.history] == [1, 2]
    resumed = train.train(CONFIG, out=tmp_path, dataset=DATASET, quiet=True, resume=True)
    assert int(resumed.state.step) == 3 * 3 and tree_equal(resumed.state, uninterrupted.state)
    rows = checkpoints.read_lines(tmp_path / train.METRICS_FILE)
    assert numbers(rows) == numbers(uninterrupted.history)
    # Resuming a finished run trains nothing and leaves the metrics as they are.
    again = train.train(CONFIG, out=tmp_path, dataset=DATASET, quiet=True, resume=True)
    assert tree_equal(again.state, uninterrupted.state)
    assert checkpoints.read_lines(tmp_path / train.METRICS_FILE) == rows


def test_outputs(uninterrupted, tmp_path):
    result = train.train(CONFIG, out=tmp_path, dataset=DATASET, quiet=True)
    rows = checkpoints.read_lines(tmp_path / "metrics.jsonl")
    assert rows == result.history and numbers(rows) == numbers(uninterrupted.history)
    assert all(np.isfinite(row[key]) for row in rows for key in row)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["flip"], saved["crop_padding"], saved["lr"]) == (True, 1, 0.1)
    assert (saved["num_params"], saved["num_devices"]) == (result.num_params, 1)
    assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir()) == ["2", "3"]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "checkpoints", "config.json", "metrics.jsonl"]  # no temporary files


def test_refuses_to_overwrite_or_to_resume_with_other_settings(tmp_path):
    train.train(CONFIG, out=tmp_path, dataset=DATASET, quiet=True, stop_after=1)
    with pytest.raises(ValueError, match=r"already holds checkpoints; pass --resume"):
        train.train(CONFIG, out=tmp_path, dataset=DATASET, quiet=True)
    with pytest.raises(ValueError, match=r"different settings \(pool: saved 'hybrid', now 'max'; "
                                         r"seed: saved 5, now 6\)"):
        train.train(dataclasses.replace(CONFIG, pool="max", seed=6), out=tmp_path,
                    dataset=DATASET, quiet=True, resume=True)
    # Settings that change no number may: another test batch size, another data folder.
    train.train(dataclasses.replace(CONFIG, eval_batch_size=4, data_dir="x"), out=tmp_path,
                dataset=DATASET, quiet=True, resume=True, stop_after=1)
    (tmp_path / "config.json").unlink()
    with pytest.raises(ValueError, match=r"different settings \(config.json is missing\)"):
        train.train(CONFIG, out=tmp_path, dataset=DATASET, quiet=True, resume=True)


def test_argument_errors_of_train():
    with pytest.raises(ValueError, match="batch_size=64 exceeds the 48 training images"):
        train.train(dataclasses.replace(CONFIG, batch_size=64), dataset=DATASET, quiet=True)
    with pytest.raises(ValueError, match=r"config\.dataset='digits' but the dataset given is "
                                         r"'tiny'"):
        train.train(train.TrainConfig(), dataset=DATASET, quiet=True)
    with pytest.raises(ValueError, match=r"batch_size=15 must be a multiple of the number of "
                                         r"devices \(2\)"):
        train.train(dataclasses.replace(CONFIG, batch_size=15), dataset=DATASET,
                    devices=jax.devices()[:1] * 2, quiet=True)


def test_kill_9_then_resume_is_bit_identical(tmp_path):
    """A run killed at any moment (here: once an epoch is on disk, mid-way through the
    next ones) resumes to the uninterrupted run's numbers."""
    arguments = [*DIGITS, "--epochs", "12", "--out", str(tmp_path)]
    process = subprocess.Popen([sys.executable, "-m", "examples.cifar10.train", *arguments],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while len(checkpoints.read_lines(tmp_path / train.METRICS_FILE)) < 2:
            assert process.poll() is None and time.monotonic() < deadline, "no epoch was saved"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    done = len(checkpoints.read_lines(tmp_path / train.METRICS_FILE))
    assert 2 <= done < 12, done
    assert train.main([*arguments, "--resume"]) == 0
    config = train.TrainConfig(width=2, batch_size=128, epochs=12, fast_compile=True)
    whole = train.train(config, dataset=data.load_digits(), quiet=True)
    assert numbers(checkpoints.read_lines(tmp_path / train.METRICS_FILE)) == numbers(whole.history)


TWO_DEVICES = textwrap.dedent("""
    import json
    import jax, numpy as np
    from examples.cifar10 import data, train
    from tests.example_helpers import tiny_dataset
    assert jax.device_count() == 2, jax.devices()
    dataset = tiny_dataset()
    config = train.TrainConfig(dataset="tiny", pool="hybrid", width=2, epochs=2,
                               batch_size=16, eval_batch_size=8, seed=5, fast_compile=True)
    one = train.train(config, dataset=dataset, devices=jax.devices()[:1], quiet=True)
    two = train.train(config, dataset=dataset, quiet=True)
    sharding = two.state.params["classifier"]["kernel"].sharding
    experiment = train.get_experiment(
        train.resolve_config(config, dataset), dataset.image_shape, 10, 48, (0.5,), (0.2,),
        tuple(jax.devices()))
    images, = train.global_batch(experiment.batch_sharding, dataset.train_images[:16])
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
    assert result["replicated"] and result["batch_shards"] == [8, 8]
    # Reductions over the batch are split in two and added, so rounding differs.
    assert result["max_error"] < 1e-4, result
    history = np.asarray(result["history"])
    np.testing.assert_allclose(history[:2], history[2:], rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------- several processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_processes(arguments, folder: pathlib.Path, *, count: int = 2, by_environment=False,
                  timeout: float = 240) -> list[dict]:
    """Runs ``python -m examples.cifar10.train ARGUMENTS --distributed`` as ``count``
    processes of 2 CPU devices each (coordinator on 127.0.0.1, gloo); returns each one's
    return code, stdout and stderr. The coordinator's address goes in a flag, or in the
    environment; output goes to files (a full pipe could block a process another
    waits for); what still runs at ``timeout`` is killed."""
    coordinator = f"127.0.0.1:{_free_port()}"
    processes, logs = [], []
    try:
        for index in range(count):
            env = dict(os.environ, JAX_PLATFORMS="cpu",
                       XLA_FLAGS="--xla_force_host_platform_device_count=2")
            flags = ["--distributed", "--num-processes", str(count), "--process-id", str(index)]
            if by_environment:  # jax.distributed.initialize reads it
                env.update(JAX_COORDINATOR_ADDRESS=coordinator)
            else:
                flags += ["--coordinator-address", coordinator]
            logs.append([open(folder / f"process-{index}.{kind}", "w+") for kind in ("out", "err")])
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "examples.cifar10.train", *map(str, arguments), *flags],
                cwd=REPO, env=env, stdout=logs[-1][0], stderr=logs[-1][1]))
        deadline = time.monotonic() + timeout
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=60)
        for log in logs:
            for file in log:
                file.close()
    return [{"returncode": process.returncode,
             "stdout": (folder / f"process-{index}.out").read_text(),
             "stderr": (folder / f"process-{index}.err").read_text()}
            for index, process in enumerate(processes)]


def test_two_processes_train_checkpoint_and_resume_like_one(tmp_path):
    """Two processes of two CPU devices each, as two hosts would run: the numbers of one
    process, metrics from process 0 alone, and a resume (after damage to the newest
    checkpoint) in which both restore."""
    out = tmp_path / "run"
    # Average pooling and a small learning rate: with old jax the last-bit differences of
    # two processes' sums grew to 1e-3 within three epochs where max pooling's choices flip.
    arguments = [*DIGITS, "--pool", "avg", "--epochs", "3", "--lr", "0.01", "--out", out]

    def check(results):
        for index, result in enumerate(results):
            assert result["returncode"] == 0, (index, result["stderr"][-3000:])
            assert "Traceback" not in result["stderr"], result["stderr"][-3000:]
        assert "epoch" not in results[1]["stdout"]  # process 1 prints no progress

    first = run_processes([*arguments, "--stop-after", "2"], tmp_path)
    check(first)
    assert "epoch   2/3" in first[0]["stdout"]
    saved = json.loads((out / train.CONFIG_FILE).read_text())
    assert (saved["num_processes"], saved["num_devices"]) == (2, 4)
    for array in (out / "checkpoints" / "2" / "state").rglob("*"):  # its data, truncated
        if array.parent.name == "d":
            array.write_bytes(array.read_bytes()[:array.stat().st_size // 2])

    second = run_processes([*arguments, "--resume"], tmp_path, by_environment=True)
    check(second)
    assert "resumed from" in second[0]["stdout"] and "at epoch 1 (step 10)" in second[0]["stdout"]
    assert "warning: the checkpoint of epoch 2" in second[0]["stderr"]
    assert "warning" not in second[1]["stderr"]  # one warning, from process 0
    assert sorted(path.name for path in (out / "checkpoints").iterdir()) == ["2", "3"]

    config = train.TrainConfig(pool="avg", width=2, epochs=3, batch_size=128, lr=0.01,
                               fast_compile=True)
    one = train.train(config, dataset=data.load_digits(), devices=jax.devices()[:1], quiet=True)
    rows = checkpoints.read_lines(out / train.METRICS_FILE)
    assert [row["epoch"] for row in rows] == [1, 2, 3]  # once each: process 0 writes alone
    np.testing.assert_allclose([[row["train_loss"], row["test_loss"]] for row in rows],
                               [[row["train_loss"], row["test_loss"]] for row in one.history],
                               rtol=1e-4, atol=1e-4)
    # The last checkpoint restores in this one-device process and equals one process's state.
    manager = checkpoints.open_manager(out / "checkpoints")
    try:
        restored, progress = checkpoints.restore_newest(manager, one.state, lambda *_: None)
    finally:
        manager.close()
    assert int(restored.step) == 30 and progress["epoch"] == 3
    for name in ("params", "batch_stats"):
        errors = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                              getattr(restored, name), getattr(one.state, name))
        assert max(jax.tree.leaves(errors)) < 1e-4, (name, errors)


# ---------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(("arguments", "message"), [
    (["--pool", "median"], "argument --pool: invalid choice: 'median' (choose from"),
    (["--model", "vgg"], "argument --model: invalid choice: 'vgg'"),
    (["--dataset", "cifar100"], "argument --dataset: invalid choice: 'cifar100'"),
    (["--api", "haiku"], "argument --api: invalid choice: 'haiku'"),
    (["--epochs", "0"], "argument --epochs: expected an int >= 1, got '0'"),
    (["--batch-size", "many"], "argument --batch-size: expected an int >= 1, got 'many'"),
    (["--seed", "-1"], "argument --seed: expected an int >= 0, got '-1'"),
    (["--lr", "0"], "argument --lr: expected a number > 0, got '0'"),
    (["--lr", "nan"], "argument --lr: expected a number > 0, got 'nan'"),
    (["--weight-decay", "x"], "argument --weight-decay: expected a number >= 0.0, got 'x'"),
    (["--compare", "max,mean"], "argument --compare: unknown pooling 'mean'; valid poolings: max,"),
    (["--compare", "max"], "expected at least two distinct comma-separated poolings, got 'max'"),
    (["--compare", "max,avg", "--baseline", "hybrid"],
     "--baseline 'hybrid' must be one of the compared poolings (max, avg)"),
    (["--api", "nnx", "--fast-compile"], "fast_compile=True applies to api='linen' only"),
    (["--num-processes", "2"], "--coordinator-address, --num-processes and --process-id only "
                               "apply with --distributed"),
    (["--distributed", "--coordinator-address", "localhost"],
     "the coordinator address must be HOST:PORT, got 'localhost'"),
    (["--distributed", "--process-id", "-1"], "argument --process-id: expected an int >= 0"),
])
def test_cli_argument_errors(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(arguments)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_failing_to_join_is_one_error_line(monkeypatch, capfd):
    # Here the join fails because this process has used JAX already.
    monkeypatch.setenv("JAX_CPU_COLLECTIVES_IMPLEMENTATION", "none")  # leaves ours alone
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--distributed", "--coordinator-address", "127.0.0.1:1", "--num-processes",
                    "2", "--process-id", "1"])
    stderr = capfd.readouterr().err
    assert exit_info.value.code == 2 and stderr.count("\n") == 1, stderr
    assert stderr.startswith("python -m examples.cifar10.train: error: could not join the "
                             "distributed run: ")


def test_cli_runs_and_resumes(tmp_path, capsys):
    arguments = [*DIGITS, "--epochs", "2", "--out", str(tmp_path)]
    assert train.main([*arguments, "--stop-after", "1"]) == 0
    with pytest.raises(SystemExit) as exit_info:  # no --resume: refuses to overwrite
        train.main(arguments)
    assert exit_info.value.code == 2 and "already holds checkpoints" in capsys.readouterr().err
    assert train.main([*arguments, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "resumed from" in printed and "final test accuracy" in printed
    assert [row["epoch"] for row in checkpoints.read_lines(tmp_path / "metrics.jsonl")] == [1, 2]


@pytest.mark.parametrize("launch", sorted(LAUNCHES))
def test_cli_help_by_module_and_by_path(launch, tmp_path):
    completed = run_cli("train", launch, ["--help"], tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.startswith("usage: ") and "--resume" in completed.stdout


def test_cli_by_path_trains_like_the_module(tmp_path):
    histories = []
    for launch in ("module", "path-elsewhere"):
        completed = run_cli("train", launch, [*DIGITS, "--epochs", "1", "--out",
                                              tmp_path / launch], tmp_path)
        assert completed.returncode == 0, completed.stderr[-3000:]
        assert "final test accuracy" in completed.stdout
        histories.append(numbers(checkpoints.read_lines(tmp_path / launch / "metrics.jsonl")))
    assert histories[0] == histories[1] and histories[0]


def test_cli_resume_without_a_checkpoint_that_restores_is_one_error_line(tmp_path, capfd):
    arguments = [*DIGITS, "--epochs", "2", "--out", str(tmp_path)]
    assert train.main([*arguments, "--stop-after", "1"]) == 0
    progress = max((path for path in (tmp_path / "checkpoints" / "1" / "progress").iterdir()),
                   key=lambda path: path.stat().st_size)
    progress.write_text("{")
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        train.main([*arguments, "--resume"])
    stderr = capfd.readouterr().err
    assert exit_info.value.code == 2 and stderr.count("\n") == 1, stderr
    assert stderr.startswith("python -m examples.cifar10.train: error: cannot resume: no "
                             f"checkpoint in {tmp_path / 'checkpoints'} restores (epoch 1: ")
    assert f"Delete {tmp_path / 'checkpoints'} to train this run from the start" in stderr
