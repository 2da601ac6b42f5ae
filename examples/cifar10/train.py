"""Train a classifier with a choice of jaxpool pooling: Flax (linen or NNX) + Optax, data-parallel.

    python -m examples.cifar10.train                      # digits, offline, under a minute
    python examples/cifar10/train.py --dataset fashion-mnist --width 16 --batch-size 128

In reading order: the data (``data.py``, :func:`preprocess`), the model, the optimizer, the
jitted steps (linen; NNX with ``nnx.Optimizer``, ``nnx.jit``), the evaluation; the settings,
the loop, the command line. Epoch ``e``'s order is ``np.random.default_rng([seed, e])``'s,
step ``t`` augments with ``fold_in(fold_in(PRNGKey(seed), 1), t)``: resumes are exact.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import inspect
import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

if __name__ == "__main__" and not __package__:
    # Run by path, this folder is first on sys.path (not with -P): the root takes its place.
    _folder = pathlib.Path(__file__).resolve().parent
    _first = bool(sys.path) and pathlib.Path(sys.path[0] or ".").resolve() == _folder
    sys.path[:int(_first)] = [str(_folder.parents[1])]

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import jaxpool.nnx as jpn
from examples.cifar10 import checkpoints, data
from jaxpool import models

OPTIMIZERS, APIS, SCHEDULES = ("sgd", "adamw"), ("linen", "nnx"), ("cosine", "onecycle")
NO_FLIP_DATASETS = frozenset({"digits", "mnist"})  # a mirrored digit is another one, or none
DEFAULT_LEARNING_RATES = {"sgd": 0.1, "adamw": 3e-3}
RESUMABLE_CHANGES = frozenset({"data_dir", "eval_batch_size"})  # they change no number
INIT_STREAM, AUGMENT_STREAM = 0, 1  # streams of the run's PRNGKey(seed)
FAST_COMPILE = {"xla_backend_optimization_level": 0}
METRICS_FILE, CONFIG_FILE = "metrics.jsonl", "config.json"
CHECKPOINT_DIR = "checkpoints"


# ------------------------------------------------ data, model, optimizer, steps, evaluation


def preprocess(images: jax.Array, key: jax.Array | None, *, mean: Sequence[float],
               std: Sequence[float], crop_padding: int, flip: bool, dtype: Any) -> jax.Array:
    """uint8 images to ``(x / 255 - mean) / std``; with a ``key``, randomly cropped and flipped."""
    x = images.astype(jnp.float32) / 255.0
    if key is not None:
        batch, height, width, channels = x.shape
        crop_key, flip_key = jax.random.split(key)
        if crop_padding > 0:
            p = crop_padding
            padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
            offsets = jax.random.randint(crop_key, (batch, 2), 0, 2 * p + 1)
            crop = lambda image, offset: jax.lax.dynamic_slice(  # noqa: E731
                image, (offset[0], offset[1], 0), (height, width, channels))
            x = jax.vmap(crop)(padded, offsets)
        if flip:
            mirrored = jax.random.bernoulli(flip_key, 0.5, (batch, 1, 1, 1))
            x = jnp.where(mirrored, x[:, :, ::-1, :], x)
    shape = (1, 1, 1, len(mean))
    centre = jnp.asarray(mean, jnp.float32).reshape(shape)
    x = (x - centre) / jnp.asarray(std, jnp.float32).reshape(shape)
    return x.astype(dtype)


def make_model(config: TrainConfig, image_shape: tuple[int, int, int], num_classes: int,
               rngs: nnx.Rngs | None = None) -> Any:
    """The ``jaxpool.models`` linen module, or, given ``rngs``, its ``jaxpool.nnx`` twin."""
    dtype = jnp.bfloat16 if config.bf16 else jnp.float32
    if rngs is None:
        return models.make_model(config.model, num_classes=num_classes, pool=config.pool,
                                 width=config.width, dtype=dtype)
    return jpn.make_model(config.model, in_features=image_shape[-1], num_classes=num_classes,
                          pool=config.pool, width=config.width, dtype=dtype,
                          image_size=image_shape[:2], rngs=rngs)


def decay_mask(params: Any) -> Any:
    """True for the kernels (rank >= 2): not biases, BatchNorm or the poolings' mixes."""
    return jax.tree.map(lambda leaf: jnp.ndim(leaf) >= 2, params)


def make_optimizer(config: TrainConfig, steps_per_epoch: int):
    """``(optimizer, schedule)``: SGD (Nesterov, L2 decay) or AdamW; cosine or one-cycle."""
    total = config.epochs * steps_per_epoch
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    schedule = (optax.cosine_onecycle_schedule(total, config.lr, pct_start=0.25)
                if config.schedule == "onecycle" else
                optax.warmup_cosine_decay_schedule(0.0, config.lr, warmup, total, end_value=0.0))
    if config.optimizer == "adamw":
        return optax.adamw(schedule, weight_decay=config.weight_decay, mask=decay_mask), schedule
    return optax.chain(optax.add_decayed_weights(config.weight_decay, mask=decay_mask),
                       optax.sgd(schedule, momentum=0.9, nesterov=True)), schedule


@flax.struct.dataclass
class TrainState:
    """The linen run's state (all a checkpoint holds); step ``t`` augments with ``rng``."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array


def _eval_sums(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> dict[str, jax.Array]:
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return {"loss": jnp.sum(losses * weights), "correct": jnp.sum(correct * weights)}


def linen_steps(model: Any, optimizer: optax.GradientTransformation, prepare: Callable,
                input_shape: tuple[int, ...], dtype: Any):
    """Pure ``init(seed_key)``, ``train_step(state, images, labels)`` and ``eval_step``."""

    def init(seed_key: jax.Array) -> TrainState:
        variables = model.init(jax.random.fold_in(seed_key, INIT_STREAM),
                               jnp.zeros(input_shape, dtype), train=False)
        return TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                          batch_stats=variables.get("batch_stats", {}),
                          opt_state=optimizer.init(variables["params"]),
                          rng=jax.random.fold_in(seed_key, AUGMENT_STREAM))

    def train_step(state: TrainState, images: jax.Array, labels: jax.Array):
        inputs = prepare(images, jax.random.fold_in(state.rng, state.step))

        def loss_fn(params):
            logits, updates = model.apply({"params": params, "batch_stats": state.batch_stats},
                                          inputs, train=True, mutable=["batch_stats"])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, (logits, updates.get("batch_stats", {}))

        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        state = state.replace(step=state.step + 1, batch_stats=batch_stats, opt_state=opt_state,
                              params=optax.apply_updates(state.params, updates))
        accuracy = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
        return state, {"loss": loss, "accuracy": accuracy}

    def eval_step(state: TrainState, images: jax.Array, labels: jax.Array, weights: jax.Array):
        logits = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                             prepare(images, None), train=False)
        return _eval_sums(logits, labels, weights)

    return init, train_step, eval_step


# flax 0.11 made ``wrt`` required and moved the model into ``update(model, grads)``.
_UPDATE_TAKES_MODEL = "model" in inspect.signature(nnx.Optimizer.update).parameters


def nnx_steps(build: Callable[[nnx.Rngs], nnx.Module], optimizer: optax.GradientTransformation,
              prepare: Callable, replicated: NamedSharding):
    """``init(seed_key) -> (model, nnx.Optimizer, key)``; ``nnx.jit`` steps update them in place."""

    def create(seed_key: jax.Array):
        model = build(nnx.Rngs(jax.random.fold_in(seed_key, INIT_STREAM)))
        return model, nnx.Optimizer(model, optimizer, wrt=nnx.Param)

    # As for linen: initialisation runs once, and unoptimised code compiles ~4x faster.
    create_state = jax.jit(lambda key: nnx.state(create(key)), out_shardings=replicated,
                           compiler_options=FAST_COMPILE)

    def init(seed_key: jax.Array):
        graph = nnx.split(nnx.eval_shape(create, seed_key))[0]
        return (*nnx.merge(graph, create_state(seed_key)),
                jax.random.fold_in(seed_key, AUGMENT_STREAM))

    @nnx.jit
    def train_step(model, state, augment_key, images, labels):
        inputs = prepare(images, jax.random.fold_in(augment_key, state.step[...]))

        def loss_fn(model):
            logits = model(inputs)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))

        (loss, accuracy), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        state.update(*(model, grads) if _UPDATE_TAKES_MODEL else (grads,))
        return {"loss": loss, "accuracy": accuracy}

    @nnx.jit
    def eval_step(model, images, labels, weights):
        return _eval_sums(model(prepare(images, None)), labels, weights)

    def evaluation(run, *batch):
        run[0].eval()  # BatchNorm's running statistics; back to training mode after it
        sums = eval_step(run[0], *batch)
        run[0].train()
        return sums

    return init, lambda run, *batch: (run, train_step(*run, *batch)), evaluation


# What runs that differ only in their seed share (a comparison compiles once per arm);
# ``checkpointed(state)`` is what a checkpoint holds, ``restored(state, tree)`` puts it back.
Experiment = collections.namedtuple("Experiment", "steps_per_epoch schedule batch_sharding init "
                                    "train_step eval_step checkpointed restored")


@functools.lru_cache(maxsize=8)
def get_experiment(config: TrainConfig, image_shape: tuple[int, int, int], num_classes: int,
                   num_train: int, mean: tuple[float, ...], std: tuple[float, ...],
                   devices: tuple[jax.Device, ...]) -> Experiment:
    """The :class:`Experiment` of a resolved config: batches split over ``devices``."""
    dtype, steps = jnp.bfloat16 if config.bf16 else jnp.float32, num_train // config.batch_size
    (optimizer, schedule), mesh = make_optimizer(config, steps), Mesh(np.array(devices), ["data"])
    batch, replicated = (NamedSharding(mesh, PartitionSpec(*axes)) for axes in (["data"], []))
    prepare = functools.partial(preprocess, mean=mean, std=std, crop_padding=config.crop_padding,
                                flip=config.flip, dtype=dtype)
    if config.api == "nnx":
        build = functools.partial(make_model, config, image_shape, num_classes)
        return Experiment(steps, schedule, batch, *nnx_steps(build, optimizer, prepare, replicated),
                          lambda run: nnx.state(run[:2]),
                          lambda run, tree: (nnx.update(run[:2], tree), run)[1])
    init, train_step, eval_step = linen_steps(make_model(config, image_shape, num_classes),
                                              optimizer, prepare, (1, *image_shape), dtype)
    options = FAST_COMPILE if config.fast_compile else None
    return Experiment(
        steps, schedule, batch,
        jax.jit(init, out_shardings=replicated, compiler_options=FAST_COMPILE),
        jax.jit(train_step, in_shardings=(replicated, batch, batch), donate_argnums=(0,),
                out_shardings=(replicated, replicated), compiler_options=options),
        jax.jit(eval_step, in_shardings=(replicated, batch, batch, batch),
                out_shardings=replicated, compiler_options=options),
        lambda state: state, lambda state, tree: tree)


def global_batch(sharding: NamedSharding, *arrays: np.ndarray) -> list[jax.Array]:
    """Global arrays of a batch every process has whole: each gives its contiguous share."""
    count, index = jax.process_count(), jax.process_index()
    return [jax.make_array_from_process_local_data(
        sharding, array.reshape(count, -1, *array.shape[1:])[index], array.shape)
        for array in arrays]


def evaluate(experiment: Experiment, state: Any, images: np.ndarray, labels: np.ndarray,
             batch_size: int) -> dict[str, float]:
    """Mean loss and accuracy over a whole split; the last batch is padded and masked."""
    pending = []
    for start in range(0, len(labels), batch_size):
        index = np.arange(start, start + batch_size)
        weights = (index < len(labels)).astype(np.float32)
        index = np.minimum(index, len(labels) - 1)
        pending.append(experiment.eval_step(state, *global_batch(
            experiment.batch_sharding, images[index], labels[index], weights)))
    totals = {"loss": 0.0, "correct": 0.0}
    for result in jax.device_get(pending):
        for name in totals:
            totals[name] += float(result[name])
    return {"loss": totals["loss"] / len(labels), "accuracy": totals["correct"] / len(labels)}


# ------------------------------------------------------------------------------ settings


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """What sets a run's numbers; ``None`` takes a default for the data (:func:`resolve_config`)."""

    dataset: str = "digits"
    model: str = "hybrid_resnet"
    pool: str = "hybrid"
    epochs: int = 10
    batch_size: int = 64
    eval_batch_size: int = 500
    optimizer: str = "sgd"
    schedule: str = "cosine"
    lr: float | None = None
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    width: int | None = None
    bf16: bool = False
    flip: bool | None = None
    crop_padding: int | None = None
    seed: int = 0
    data_dir: str | None = None
    fast_compile: bool = False
    api: str = "linen"

    def __post_init__(self):
        if self.fast_compile and self.api == "nnx":
            raise ValueError("fast_compile=True applies to api='linen' only (nnx.jit takes no "
                             "compiler options)")


HELP = {  # of TrainConfig's fields, which are the command line's flags
    "dataset": "digits: 1,797 real 8x8 images that ship with scikit-learn (offline)",
    "lr": "peak learning rate (default 0.1 for sgd, 3e-3 for adamw)",
    "width": "channels of the first stage (default 32 for hybrid_resnet, 64 for resnet18)",
    "flip": "random horizontal flips (default: on, but for digits and mnist)",
    "crop_padding": "zero padding of the random crop (default: image height // 8, >= 1)",
    "api": "Flax API of the same models: linen (jaxpool.models) or nnx (jaxpool.nnx)"}
CHOICES = {"dataset": data.DATASET_NAMES, "model": models.MODEL_NAMES, "api": APIS,
           "pool": models.POOLING_NAMES, "optimizer": OPTIMIZERS, "schedule": SCHEDULES}
MINIMUMS = {"epochs": 1, "batch_size": 1, "eval_batch_size": 1, "width": 1, "seed": 0,
            "crop_padding": 0, "lr": 0.0, "weight_decay": 0.0, "warmup_epochs": 0.0}


def resolve_config(config: TrainConfig, dataset: data.Dataset) -> TrainConfig:
    """``config`` with its ``None`` defaults filled in for ``dataset``."""
    if config.dataset != dataset.name:
        raise ValueError(f"config.dataset={config.dataset!r} but the dataset given is "
                         f"{dataset.name!r}")
    return dataclasses.replace(
        config, lr=DEFAULT_LEARNING_RATES[config.optimizer] if config.lr is None else config.lr,
        width=models.make_model(config.model).width if config.width is None else config.width,
        flip=dataset.name not in NO_FLIP_DATASETS if config.flip is None else config.flip,
        crop_padding=(max(1, dataset.image_shape[0] // 8) if config.crop_padding is None
                      else config.crop_padding))


def settings_differences(saved: dict[str, Any], config: TrainConfig) -> list[str]:
    """How a saved ``config.json`` differs from ``config``, but for :data:`RESUMABLE_CHANGES`."""
    return [f"{field.name}: saved {saved.get(field.name, field.default)!r}, now "
            f"{getattr(config, field.name)!r}" for field in dataclasses.fields(config)
            if field.name not in RESUMABLE_CHANGES
            and saved.get(field.name, field.default) != getattr(config, field.name)]


# ----------------------------------------------------------------------------- the loop


def log(message: str, quiet: bool = False) -> None:
    """Prints ``message`` in process 0 unless ``quiet``."""
    if not quiet and jax.process_index() == 0:
        print(message, flush=True)


# What train() returns: the resolved config, the state (a TrainState, or for NNX
# ``(model, optimizer, augmentation key)``), metrics.jsonl's rows, the parameter count.
RunResult = collections.namedtuple("RunResult", "config state history num_params")


def _resumed(out: pathlib.Path, config: TrainConfig, resume: bool, manager, experiment, state):
    """``(state, history)`` of the run in ``out``, restored if it has checkpoints."""
    if manager.all_steps() and not resume:
        raise ValueError(f"{out} already holds checkpoints; pass --resume to continue that "
                         "run, or choose another --out")
    saved = json.loads((out / CONFIG_FILE).read_text()) if (out / CONFIG_FILE).is_file() else {}
    differences = settings_differences(saved, config) if saved else [f"{CONFIG_FILE} is missing"]
    if manager.all_steps() and differences:
        raise ValueError(f"cannot resume the run in {out} with different settings ("
                         + "; ".join(differences) + "); use the saved settings or another --out")
    steps = experiment.steps_per_epoch
    found = checkpoints.restore_newest(manager, experiment.checkpointed(state), lambda epoch, p: (
        None if (p["epoch"], p["step"], [row["epoch"] for row in p["history"]]) == (
            epoch, epoch * steps, list(range(1, epoch + 1)))
        else "its progress record does not match its epoch"))
    return (state, []) if found is None else (experiment.restored(state, found[0]),
                                              found[1]["history"])


def train(config: TrainConfig, *, out: os.PathLike | str | None = None, resume: bool = False,
          dataset: data.Dataset | None = None, progress: bool = True,
          stop_after: int | None = None, devices: Sequence[jax.Device] | None = None,
          quiet: bool = False) -> RunResult:
    """Trains one model; writes ``config.json``, ``metrics.jsonl`` and each epoch's
    checkpoint (the last two kept) into ``out`` (``None``: nothing).

    ``resume`` continues from the newest checkpoint in ``out`` that restores, with the
    saved settings but :data:`RESUMABLE_CHANGES`; ``stop_after`` stops after that many
    epochs in all, as if interrupted; ``devices`` (default: all, of every process) share
    each batch. ValueError: a batch size that does not divide over the devices or exceeds
    the data, checkpoints in ``out`` without ``resume``, other settings than the saved
    ones; CheckpointError: none restores.
    """
    dataset = dataset or data.load_dataset(config.dataset, data_dir=config.data_dir)
    config = resolve_config(config, dataset)
    devices = tuple(jax.devices() if devices is None else devices)
    for name in ("batch_size", "eval_batch_size"):
        if getattr(config, name) % len(devices):
            raise ValueError(f"{name}={getattr(config, name)} must be a multiple of the number "
                             f"of devices ({len(devices)})")
    if config.batch_size > dataset.num_train:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {dataset.num_train} "
                         f"training images of {dataset.name!r}")
    experiment = get_experiment(
        dataclasses.replace(config, seed=0, data_dir=None, eval_batch_size=1),
        dataset.image_shape, dataset.num_classes, dataset.num_train,
        tuple(map(float, dataset.mean)), tuple(map(float, dataset.std)), devices)
    state, history, manager = experiment.init(jax.random.PRNGKey(config.seed)), [], None
    num_params = int(sum(np.size(leaf) for leaf in jax.tree.leaves(
        state.params if config.api == "linen" else nnx.state(state[0], nnx.Param))))
    writer, steps = out is not None and jax.process_index() == 0, experiment.steps_per_epoch
    with contextlib.ExitStack() as cleanup:
        if out is not None:
            out = pathlib.Path(out)
            out.mkdir(parents=True, exist_ok=True)
            manager = checkpoints.open_manager(out / CHECKPOINT_DIR)
            cleanup.callback(manager.close)  # orbax's threads must not outlive the run
            state, history = _resumed(out, config, resume, manager, experiment, state)
        log(f"resumed from {manager.directory} at epoch {len(history)} (step "  # type: ignore[union-attr]
            f"{history[-1]['step']})" if history else f"{dataset.description}\n{config.model} "
            f"(Flax {config.api}, width {config.width}, pool {config.pool!r}): {num_params:,} "
            f"parameters; {len(devices)} device(s)", quiet)
        if writer:
            record = {**dataclasses.asdict(config), "num_params": num_params,
                      "dataset_description": dataset.description,
                      "num_devices": len(devices), "num_processes": jax.process_count()}
            checkpoints.write_atomically(out / CONFIG_FILE, lambda file: json.dump(record, file,
                                                                                   indent=2))
            checkpoints.write_atomically(out / METRICS_FILE, lambda file: file.writelines(
                json.dumps(row) + "\n" for row in history))
        from tqdm.auto import tqdm

        first_epoch = len(history) + 1
        for epoch in range(first_epoch, min(config.epochs, stop_after or config.epochs) + 1):
            started, compile_seconds, timed, metrics = time.perf_counter(), 0.0, steps, []
            batches = data.epoch_batches(dataset.num_train, config.batch_size, seed=config.seed,
                                         epoch=epoch - 1)
            for index, batch in enumerate(tqdm(
                    batches, total=steps, desc=f"epoch {epoch}/{config.epochs}", leave=False,
                    disable=not progress or quiet or jax.process_index() > 0 or None)):
                state, step_metrics = experiment.train_step(state, *global_batch(
                    experiment.batch_sharding, dataset.train_images[batch],
                    dataset.train_labels[batch]))
                metrics.append(step_metrics)
                if index == 0 and epoch == first_epoch and steps > 1:
                    jax.block_until_ready(step_metrics)  # compiled: images/s counts the rest
                    compile_seconds = time.perf_counter() - started
                    started, timed = time.perf_counter(), steps - 1
            metrics = jax.device_get(metrics)
            train_seconds = time.perf_counter() - started
            test = evaluate(experiment, state, dataset.test_images, dataset.test_labels,
                            config.eval_batch_size)
            history.append(row := {
                "epoch": epoch, "step": epoch * steps,
                "train_loss": float(np.mean([m["loss"] for m in metrics])),
                "train_accuracy": float(np.mean([m["accuracy"] for m in metrics])),
                "test_loss": test["loss"], "test_accuracy": test["accuracy"],
                "images_per_second": timed * config.batch_size / train_seconds,
                "seconds": time.perf_counter() - started, "compile_seconds": compile_seconds,
                "learning_rate": float(experiment.schedule(epoch * steps - 1))})
            if manager is not None:
                manager.save(epoch, args=ocp.args.Composite(
                    state=ocp.args.StandardSave(experiment.checkpointed(state)),
                    progress=ocp.args.JsonSave({"epoch": epoch, "step": epoch * steps,
                                                "history": history})))
            if writer:  # one line per epoch, on disk (and in the checkpoint) once written
                with open(out / METRICS_FILE, "a") as file:  # type: ignore[operator]
                    file.write(json.dumps(row) + "\n")
                    file.flush()
                    os.fsync(file.fileno())
            log(f"epoch {epoch:3d}/{config.epochs}  train loss {row['train_loss']:.4f} acc "
                f"{row['train_accuracy']:.4f}  test loss {row['test_loss']:.4f} acc "
                f"{row['test_accuracy']:.4f}  {row['images_per_second']:.0f} img/s  "
                f"{row['seconds']:.1f} s", quiet)
    return RunResult(config, state, history, num_params)


# ------------------------------------------------------------------------ command line


def _flag_type(name: str) -> Callable[[str], Any]:
    """The argparse type of a numeric setting: a number >= ``MINIMUMS[name]`` (lr: > 0)."""
    minimum = MINIMUMS[name]

    def parse(text: str) -> Any:
        try:
            value = type(minimum)(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < minimum or (name == "lr" and value == 0):
            raise argparse.ArgumentTypeError(
                f"expected {'an int' if type(minimum) is int else 'a number'} "
                f"{'> 0' if name == 'lr' else f'>= {minimum}'}, got {text!r}")
        return value
    return parse


def pool_list(text: str) -> tuple[str, ...]:
    """Parses ``--compare``: at least two distinct, known, comma-separated pooling names."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if unknown := [name for name in names if name not in models.POOLING_NAMES]:
        raise argparse.ArgumentTypeError(f"unknown pooling {', '.join(map(repr, unknown))}; "
                                         f"valid poolings: {', '.join(models.POOLING_NAMES)}")
    if len(names) < 2 or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected at least two distinct comma-separated poolings, got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The command line: a flag per :class:`TrainConfig` field, then the run's own."""
    parser = argparse.ArgumentParser(
        "python -m examples.cifar10.train", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a classifier with a choice of jaxpool pooling (Flax + Optax).")
    for field in dataclasses.fields(TrainConfig):
        options = ({"choices": CHOICES[field.name]} if field.name in CHOICES else
                   {"type": _flag_type(field.name)} if field.name in MINIMUMS else
                   {"action": argparse.BooleanOptionalAction if field.name == "flip"
                    else "store_true"} if "bool" in str(field.type) else {})
        parser.add_argument(f"--{field.name.replace('_', '-')}", default=field.default,
                            help=HELP.get(field.name), **options)
    run = parser.add_argument_group("the run")
    run.add_argument("--out", help="the outputs' folder (default runs/<dataset>-<model>-<pool>,"
                     " or runs/compare-<dataset>-<model>)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out")
    run.add_argument("--stop-after", type=_flag_type("epochs"), metavar="EPOCHS",
                     help="stop after this many epochs in all, as if interrupted")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--distributed", action="store_true", help="one process per host: join "
                     "through jax.distributed.initialize() (on Cloud TPU, SLURM, Open MPI the "
                     "next three are detected)")
    run.add_argument("--coordinator-address", metavar="HOST:PORT", help="with --distributed: "
                     "process 0's (default $JAX_COORDINATOR_ADDRESS)")
    run.add_argument("--num-processes", type=_flag_type("epochs"), help="with --distributed")
    run.add_argument("--process-id", type=_flag_type("seed"), help="with --distributed: 0 to N-1")
    run.add_argument("--compare", type=pool_list, metavar="POOL,POOL,...", help="train every "
                     "listed pooling with the same seeds and compare them (compare.py)")
    run.add_argument("--seeds", type=_flag_type("epochs"), default=5,
                     help="with --compare: the seeds --seed to --seed + N - 1")
    run.add_argument("--baseline", choices=models.POOLING_NAMES, default="max",
                     help="with --compare: the arm the others are compared with")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed arguments."""
    return TrainConfig(**{field.name: getattr(args, field.name)
                          for field in dataclasses.fields(TrainConfig)})


def join_distributed(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """With ``--distributed``, ``jax.distributed.initialize`` (CPUs through gloo), or exits."""
    values = {name: getattr(args, name) for name in ("coordinator_address", "num_processes",
                                                     "process_id")}
    if not args.distributed and any(value is not None for value in values.values()):
        parser.error("--coordinator-address, --num-processes and --process-id only apply "
                     "with --distributed")
    host, _, port = (values["coordinator_address"] or "host:1").rpartition(":")
    if args.distributed and (not host or not port.isdigit()):
        parser.error(f"the coordinator address must be HOST:PORT, got "
                     f"{values['coordinator_address']!r}")
    if args.distributed and not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        if args.distributed:
            jax.distributed.initialize(**values)
    except Exception as error:  # jax's ValueError, XlaRuntimeError, ...: one line each
        parser.exit(2, f"{parser.prog}: error: could not join the distributed run: "
                       f"{checkpoints.brief(error)}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m examples.cifar10.train``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.compare is not None:
        from examples.cifar10 import compare

        return compare.main(sys.argv[1:] if argv is None else argv)
    join_distributed(parser, args)
    try:
        config = config_from_args(args)
        out = args.out or os.path.join("runs", f"{config.dataset}-{config.model}-{config.pool}")
        result = train(config, out=out, resume=args.resume, progress=not args.no_progress,
                       stop_after=args.stop_after)
    except (ValueError, TypeError, data.DatasetUnavailableError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    if result.history:
        log(f"final test accuracy {result.history[-1]['test_accuracy']:.4f} after "
            f"{len(result.history)} epochs; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
