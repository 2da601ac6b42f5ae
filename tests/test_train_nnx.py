"""Tests of train.py's NNX path (``--api nnx``: ``nnx.Optimizer``, ``nnx.value_and_grad``,
``nnx.jit``): from the same variables it takes the linen path's steps, resumes
bit-identically, and runs from the command line, alone and in a comparison; on flax 0.10
and on flax >= 0.11, whose ``nnx.Optimizer`` takes the model in ``update``."""

import dataclasses
import json

import flax
import jax
import numpy as np
import pytest
from flax import nnx

import jaxpool.nnx as jpn
from examples.cifar10 import compare, data, train
from tests.example_helpers import tiny_dataset, tree_equal

DATASET = tiny_dataset(train_size=32, test_size=8, seed=4)
CONFIG = train.TrainConfig(dataset="tiny", model="hybrid_resnet", pool="attention", width=2,
                           epochs=2, batch_size=16, eval_batch_size=8, seed=1)


def _experiment(config: train.TrainConfig) -> train.Experiment:
    """The experiment :func:`train.train` uses (and compiles once) for ``config``."""
    config = dataclasses.replace(train.resolve_config(config, DATASET), seed=0, eval_batch_size=1)
    return train.get_experiment(config, DATASET.image_shape, 10, DATASET.num_train,
                                tuple(map(float, DATASET.mean)), tuple(map(float, DATASET.std)),
                                tuple(jax.devices()[:1]))


def _two_steps(experiment: train.Experiment, state):
    for batch in list(data.epoch_batches(DATASET.num_train, 16, seed=1, epoch=0))[:2]:
        state, _ = experiment.train_step(state, *train.global_batch(
            experiment.batch_sharding, DATASET.train_images[batch], DATASET.train_labels[batch]))
    return state


# A learnable pooling at every block and at the head (its parameters train too). Every
# NNX model and pooling gives its linen twin's numbers in tests/test_nnx_models.py; here
# the whole step is compared: augmentation, loss, gradient, SGD, BatchNorm's update.
@pytest.mark.parametrize(("model", "pool"), [("hybrid_resnet", "attention")])
def test_linen_and_nnx_take_the_same_steps_from_the_same_variables(model, pool):
    config = dataclasses.replace(CONFIG, model=model, pool=pool)
    linen, nnx_run = _experiment(config), _experiment(dataclasses.replace(config, api="nnx"))
    start = linen.init(jax.random.PRNGKey(1))
    run = nnx_run.init(jax.random.PRNGKey(1))
    assert jax.tree.map(np.shape, jpn.variables(run[0])["params"]) == jax.tree.map(
        np.shape, start.params)  # linen's names and shapes
    jpn.load_variables(run[0], {"params": start.params, "batch_stats": start.batch_stats})
    run = (*run[:2], start.rng)  # the same augmentation keys
    run = _two_steps(nnx_run, run)
    after = _two_steps(linen, jax.tree.map(lambda leaf: leaf.copy(), start))  # it donates
    assert int(run[1].step[...]) == int(after.step) == 2
    got = jpn.variables(run[0])
    for name in ("params", "batch_stats"):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
                     got[name], getattr(after, name))


def test_nnx_evaluates_in_evaluation_mode_and_trains_on():
    experiment = _experiment(dataclasses.replace(CONFIG, api="nnx"))
    run = experiment.init(jax.random.PRNGKey(0))
    before = jpn.variables(run[0])["batch_stats"]
    train.evaluate(experiment, run, DATASET.test_images, DATASET.test_labels, 8)
    assert tree_equal(jpn.variables(run[0])["batch_stats"], before)  # running statistics used
    run = _two_steps(experiment, run)  # and training mode again: the statistics move
    assert not tree_equal(jpn.variables(run[0])["batch_stats"], before)


def test_nnx_run_resumes_bit_identically(tmp_path):
    config = dataclasses.replace(CONFIG, api="nnx")
    whole = train.train(config, dataset=DATASET, quiet=True)
    train.train(config, out=tmp_path, dataset=DATASET, quiet=True, stop_after=1)
    resumed = train.train(config, out=tmp_path, dataset=DATASET, quiet=True, resume=True)
    assert tree_equal(nnx.state(resumed.state[:2]), nnx.state(whole.state[:2]))
    assert [row["test_loss"] for row in resumed.history] == [row["test_loss"] for row in whole.history]
    assert json.loads((tmp_path / train.CONFIG_FILE).read_text())["api"] == "nnx"
    with pytest.raises(ValueError, match="api: saved 'nnx', now 'linen'"):  # resumed as started
        train.train(dataclasses.replace(config, api="linen"), out=tmp_path, dataset=DATASET,
                    quiet=True, resume=True)


def test_cli_trains_and_compares_with_nnx(tmp_path, capsys):
    common = ["--dataset", "digits", "--width", "2", "--epochs", "1", "--batch-size", "512",
              "--no-progress", "--api", "nnx"]
    assert train.main([*common, "--pool", "gated", "--out", str(tmp_path / "one")]) == 0
    assert "Flax nnx" in capsys.readouterr().out
    assert compare.main([*common, "--compare", "max,gated", "--seeds", "1",
                         "--out", str(tmp_path / "cmp")]) == 0
    assert "| gated |" in (tmp_path / "cmp" / "compare.md").read_text()


def test_the_optimizer_update_matches_this_flax():
    flax_version = tuple(int(part) for part in flax.__version__.split(".")[:2])
    assert train._UPDATE_TAKES_MODEL == (flax_version >= (0, 11))


def test_fast_compile_is_linen_only():
    with pytest.raises(ValueError, match=r"fast_compile=True applies to api='linen' only"):
        dataclasses.replace(CONFIG, api="nnx", fast_compile=True)
