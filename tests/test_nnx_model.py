"""Tests of examples/cifar10/nnx_model.py and ``--api nnx``: the example trains jaxpool's
NNX models with the linen run's loop, and from the same variables both APIs take the
same steps."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from examples.cifar10 import compare, data, train
from examples.cifar10.nnx_model import NNXClassifier
from jaxpool import models

DATASET = data.load_synthetic(image_size=8, channels=1, train_size=32, test_size=8, seed=4)
CONFIG = train.TrainConfig(dataset="synthetic", model="hybrid_resnet", pool="hybrid", width=2,
                           epochs=2, batch_size=16, eval_batch_size=8, seed=1, fast_compile=True)


def _experiment(config: train.TrainConfig) -> train.Experiment:
    resolved = train.resolve_config(config, DATASET)
    return train.get_experiment(
        dataclasses.replace(resolved, seed=0), DATASET.image_shape, DATASET.num_classes,
        DATASET.num_train, tuple(DATASET.mean), tuple(DATASET.std), tuple(jax.devices()[:1]),
    )


def _two_steps(experiment: train.Experiment, state: train.TrainState) -> train.TrainState:
    for batch in list(data.epoch_batches(DATASET.num_train, 16, seed=1, epoch=0))[:2]:
        images, labels = train._global_batch(experiment.placement, DATASET.train_images[batch],
                                             DATASET.train_labels[batch])
        state, _ = experiment.train_step(state, images, labels)
    return state


# Learnable poolings (whose parameters train too), a parameter-free one that changes the
# channels, and the other model. (Every NNX model and pooling equals its linen twin's
# numbers in tests/test_nnx_models.py; here the whole train step is compared.)
@pytest.mark.parametrize(
    "model, pool",
    [("hybrid_resnet", "hybrid"), ("hybrid_resnet", "attention"), ("hybrid_resnet", "gated"),
     ("hybrid_resnet", "catavgmax"), ("resnet18", "gem")],
)
def test_linen_and_nnx_take_the_same_two_steps_from_the_same_variables(model, pool):
    config = dataclasses.replace(CONFIG, model=model, pool=pool)
    linen = _experiment(config)
    nnx = _experiment(dataclasses.replace(config, api="nnx"))
    start = linen.init(jax.random.PRNGKey(1))
    # The NNX model has exactly the linen model's variables (names, shapes)...
    nnx_start = nnx.init(jax.random.PRNGKey(1))
    assert jax.tree.structure(nnx_start.params) == jax.tree.structure(start.params)
    assert jax.tree.map(np.shape, nnx_start.params) == jax.tree.map(np.shape, start.params)
    # ...so the same state trains in both (the train step donates its input: copy it).
    copy = lambda: jax.tree.map(lambda leaf: leaf.copy(), start)  # noqa: E731
    after_linen = _two_steps(linen, copy())
    after_nnx = _two_steps(nnx, copy())
    for name in ("params", "batch_stats", "opt_state"):
        np.testing.assert_allclose(
            np.concatenate([np.ravel(x) for x in jax.tree.leaves(getattr(after_nnx, name))]),
            np.concatenate([np.ravel(x) for x in jax.tree.leaves(getattr(after_linen, name))]),
            rtol=1e-5, atol=1e-5, err_msg=name,
        )


def test_classifier_gives_the_linen_models_numbers():
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    classifier = NNXClassifier("resnet18", in_features=3, pool="attention", width=4)
    linen = models.make_model("resnet18", pool="attention", width=4)
    variables = linen.init(jax.random.key(2), x, train=False)
    for train_mode in (False, True):
        mutable = ["batch_stats"] if train_mode else False
        expected = linen.apply(variables, x, train=train_mode, mutable=mutable)
        got = classifier.apply(variables, x, train=train_mode, mutable=mutable)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
                     got, expected)


def test_nnx_run_resumes_bit_identically(tmp_path):
    config = dataclasses.replace(CONFIG, api="nnx", pool="attention")
    whole = train.train(config, out=tmp_path / "whole", dataset=DATASET, progress=False,
                        quiet=True)
    train.train(config, out=tmp_path / "resumed", dataset=DATASET, progress=False, quiet=True,
                stop_after=1)
    resumed = train.train(config, out=tmp_path / "resumed", dataset=DATASET, progress=False,
                          quiet=True, resume=True)
    for a, b in zip(jax.tree.leaves(resumed.state.params), jax.tree.leaves(whole.state.params),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    saved = json.loads((tmp_path / "resumed" / train.CONFIG_FILE).read_text())
    assert saved["api"] == "nnx"
    # A run is resumed with the API it was started with.
    with pytest.raises(ValueError, match="api: saved 'nnx', now 'linen'"):
        train.train(dataclasses.replace(config, api="linen"), out=tmp_path / "resumed",
                    dataset=DATASET, progress=False, quiet=True, resume=True)


def test_cli_trains_and_compares_with_nnx(tmp_path, capsys):
    common = ["--dataset", "synthetic", "--width", "2", "--epochs", "1", "--batch-size", "16",
              "--no-progress", "--fast-compile", "--api", "nnx"]
    assert train.main([*common, "--pool", "gated", "--out", str(tmp_path / "one")]) == 0
    assert "Flax nnx" in capsys.readouterr().out
    assert json.loads((tmp_path / "one" / train.CONFIG_FILE).read_text())["api"] == "nnx"
    assert compare.main([*common, "--compare", "max,hybrid", "--seeds", "1",
                         "--out", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "compare.md").is_file()


def test_unknown_api_is_refused():
    with pytest.raises(ValueError, match="api must be one of linen, nnx, but got 'haiku'"):
        dataclasses.replace(CONFIG, api="haiku")
