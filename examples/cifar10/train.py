"""Train a CIFAR-10 classifier with a choice of pooling: Flax + Optax, jit, data-parallel.

    python -m examples.cifar10.train                                  # digits, ~a minute or two
    python examples/cifar10/train.py                                  # the same, by path
    python -m examples.cifar10.train --dataset cifar10 --model resnet18 --pool hybrid \\
        --epochs 30 --batch-size 128 --width 64 --out runs/cifar10-hybrid
    python -m examples.cifar10.train --compare max,avg,hybrid,attention --seeds 5

What one run does (see ``examples/cifar10/README.md``):

* data from :mod:`examples.cifar10.data`; the batch order of epoch ``e`` is a pure function
  of ``(seed, e)`` and the augmentation key of step ``t`` is
  ``fold_in(fold_in(PRNGKey(seed), 1), t)``, so a run is reproducible and a resumed run
  ends bit-identical to an uninterrupted one;
* augmentation on device inside the jitted step: random crop after zero padding
  (``H // 8`` pixels: 4 for 32x32, 1 for 8x8) and horizontal flips (off for digits, where
  a mirrored digit is another digit or none); then normalisation with the dataset's
  mean and std;
* one jit-compiled train step with donated state buffers; BatchNorm statistics in the
  state; optional bfloat16 compute (float32 parameters, bfloat16 activations);
* SGD with Nesterov momentum and L2 weight decay (added to the gradient before momentum,
  as ``torch.optim.SGD(weight_decay=...)`` does), or AdamW (decoupled decay); cosine
  (with linear warmup) or one-cycle learning-rate schedule; only kernels of rank >= 2 are
  decayed (not biases, BatchNorm, or the poolings' mixing parameters);
* data-parallel over every device: a ``Mesh`` over ``jax.devices()``, the batch sharded
  along ``'data'``, parameters and optimizer state replicated; one device is the same
  code. ``--distributed`` calls ``jax.distributed.initialize()`` first, for one process
  per host (``--coordinator-address``, ``--num-processes`` and ``--process-id`` where
  they are not detected);
* ``--out DIR``: ``config.json``, ``metrics.jsonl`` (one line per epoch), ``curves.png`` and
  orbax checkpoints of every epoch (the last 2 kept) under ``DIR/checkpoints``, each with
  the checksums of its files; ``--resume`` continues from the newest intact one.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import pathlib
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from typing import Any

if __name__ == "__main__" and not __package__:
    # Run by path (python examples/cifar10/train.py): Python puts this file's folder first
    # on sys.path, not the working directory, so `examples` is not found (and this folder's
    # data.py and train.py could shadow other modules of those names). Put the repository's
    # root in its place, as `python -m examples.cifar10.train` from the root has it.
    _here = pathlib.Path(__file__).resolve()
    if sys.path and pathlib.Path(sys.path[0] or ".").resolve() == _here.parent:
        sys.path[0] = str(_here.parents[2])
    else:  # python -P (safe path) adds no folder
        sys.path.insert(0, str(_here.parents[2]))

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from examples.cifar10 import data
from examples.cifar10.nnx_model import NNXClassifier
from jaxpool import models

OPTIMIZERS = ("sgd", "adamw")
# Flax APIs of the model: linen (jaxpool.models) or NNX (jaxpool.nnx); the same loop trains both.
APIS = ("linen", "nnx")
SCHEDULES = ("cosine", "onecycle")
# Where a mirrored image is another class or none (digits); clothes stay clothes.
NO_FLIP_DATASETS = frozenset({"digits", "mnist"})
DEFAULT_LEARNING_RATES = {"sgd": 0.1, "adamw": 3e-3}
# Fields of TrainConfig that may change when a run is resumed: they do not affect training.
RESUMABLE_CHANGES = frozenset({"data_dir", "eval_batch_size"})
# Streams of the run's PRNGKey(seed): parameter initialisation and augmentation.
INIT_STREAM, AUGMENT_STREAM = 0, 1
FAST_COMPILE = {"xla_backend_optimization_level": 0}
METRICS_FILE, CONFIG_FILE, CURVES_FILE, CHECKPOINT_DIR = (
    "metrics.jsonl", "config.json", "curves.png", "checkpoints",
)
# Where --coordinator-address, --num-processes and --process-id default to.
COORDINATOR_ENV_VAR, NUM_PROCESSES_ENV_VAR, PROCESS_ID_ENV_VAR = (
    "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
# In each checkpoint's folder: sizes and SHA-256 of its files and of the state.
CHECKSUMS_FILE = "checksums.json"
# Where damaged checkpoints are moved when a run resumes from an older one.
DAMAGED_DIR = "damaged-checkpoints"


# ------------------------------------------------------------------------------ config


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run's numbers.

    ``None`` fields take a default that depends on the dataset, model or optimizer;
    :func:`resolve_config` fills them in (and ``config.json`` records the filled-in values).

    Attributes:
      dataset: 'digits' (default; offline stand-in), 'cifar10' or 'synthetic'.
      model: 'hybrid_resnet' (default; pools at every downsampling) or 'resnet18'.
      pool: pooling name from ``jaxpool.models.POOLING_NAMES``; default 'hybrid'.
      epochs: training epochs; default 10.
      batch_size: global batch size (split over the devices); default 64.
      eval_batch_size: test batch size; default 500.
      optimizer: 'sgd' (Nesterov momentum 0.9, L2 weight decay) or 'adamw'.
      schedule: 'cosine' (linear warmup over ``warmup_epochs``, then cosine decay to 0) or
        'onecycle' (cosine one-cycle, 25 % warm-up).
      lr: peak learning rate; default 0.1 for SGD, 3e-3 for AdamW.
      weight_decay: weight decay of kernels; default 5e-4.
      warmup_epochs: epochs of linear warmup for 'cosine'; default 1.
      width: the model's width; default 32 for 'hybrid_resnet', 64 for 'resnet18'.
      bf16: compute in bfloat16 (parameters and optimizer state stay float32).
      flip: random horizontal flips; default on except for digits.
      crop_padding: zero padding of the random crop; default ``H // 8`` (at least 1).
      seed: seed of initialisation, data order and augmentation; default 0.
      data_dir: CIFAR-10's folder (see ``data.load_cifar10``).
      fast_compile: compile the steps without XLA's backend optimisations: a run starts
        seconds sooner and every step runs slower (for smoke runs and tests). The
        numbers differ from an optimised build's in the last bits.
      api: 'linen' (default: ``jaxpool.models``) or 'nnx' (``jaxpool.nnx``, the same
        models as Flax NNX modules, trained by the same loop; see ``nnx_model.py``).
        The two initialise their parameters from different random streams.
    """

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
        _check_choice(self.dataset, "dataset", data.DATASET_NAMES)
        _check_choice(self.model, "model", models.MODEL_NAMES)
        _check_choice(self.pool, "pool", models.POOLING_NAMES)
        _check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        _check_choice(self.api, "api", APIS)
        _check_choice(self.schedule, "schedule", SCHEDULES)
        for name in ("epochs", "batch_size", "eval_batch_size"):
            _check_int(getattr(self, name), name, 1)
        _check_int(self.seed, "seed", 0)
        if self.width is not None:
            _check_int(self.width, "width", 1)
        if self.crop_padding is not None:
            _check_int(self.crop_padding, "crop_padding", 0)
        if self.lr is not None:
            _check_number(self.lr, "lr", positive=True)
        _check_number(self.weight_decay, "weight_decay", positive=False)
        _check_number(self.warmup_epochs, "warmup_epochs", positive=False)
        for name in ("bf16", "fast_compile", "flip"):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (name == "flip" and value is None):
                raise TypeError(f"{name} must be a bool, but got {type(value).__name__}: {value!r}")


def _check_choice(value: Any, name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, but got {value!r}")


def _check_int(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, but got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, but got {value}")


def _check_number(value: Any, name: str, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, but got {type(value).__name__}: {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, but got {value}")


def resolve_config(config: TrainConfig, dataset: data.Dataset) -> TrainConfig:
    """``config`` with every ``None`` default filled in for ``dataset``.

    Raises:
      ValueError: if ``config.dataset`` is not ``dataset.name``.
    """
    if config.dataset != dataset.name:
        raise ValueError(
            f"config.dataset={config.dataset!r} but the dataset given is {dataset.name!r}"
        )
    height = dataset.image_shape[0]
    return dataclasses.replace(
        config,
        lr=DEFAULT_LEARNING_RATES[config.optimizer] if config.lr is None else config.lr,
        width=models.make_model(config.model).width if config.width is None else config.width,
        flip=dataset.name not in NO_FLIP_DATASETS if config.flip is None else config.flip,
        crop_padding=max(1, height // 8) if config.crop_padding is None else config.crop_padding,
    )


# ----------------------------------------------------------------------------- devices


@dataclasses.dataclass(frozen=True)
class Placement:
    """How arrays are laid out over the devices of all processes.

    Attributes:
      mesh: a 1D mesh over ``jax.devices()`` with the axis ``'data'``.
      batch: sharding of a batch: leading axis split along ``'data'``.
      replicated: sharding of parameters and optimizer state: a full copy per device.
    """

    mesh: Mesh
    batch: NamedSharding
    replicated: NamedSharding

    @property
    def num_devices(self) -> int:
        return self.mesh.size


def make_placement(devices: Sequence[jax.Device] | None = None) -> Placement:
    """A data-parallel :class:`Placement` over ``devices`` (default: all, of all hosts)."""
    mesh = Mesh(np.asarray(jax.devices() if devices is None else devices), ("data",))
    return Placement(
        mesh, NamedSharding(mesh, PartitionSpec("data")), NamedSharding(mesh, PartitionSpec())
    )


def _global_batch(placement: Placement, *arrays: np.ndarray) -> list[jax.Array]:
    """Global arrays from the host arrays of the whole batch, each process giving its part.

    Every process computes the same global batch (from the seed), takes its contiguous
    ``1 / process_count`` slice and contributes it; with one process this is a
    ``device_put`` with the batch sharding.
    """
    count, index = jax.process_count(), jax.process_index()
    out = []
    for array in arrays:
        local = array.reshape(count, -1, *array.shape[1:])[index]
        out.append(jax.make_array_from_process_local_data(placement.batch, local, array.shape))
    return out


# ------------------------------------------------------------------------- the model step


@flax.struct.dataclass
class TrainState:
    """What a checkpoint holds: everything needed to continue bit-identically.

    Attributes:
      step: int32 scalar, optimizer steps taken.
      params: the model's float32 parameters.
      batch_stats: BatchNorm running means and variances.
      opt_state: the Optax optimizer state.
      rng: uint32 ``(2,)`` raw PRNG key of augmentation; step ``t`` uses
        ``fold_in(rng, t)``.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array


def decay_mask(params: Any) -> Any:
    """True for the leaves weight decay applies to: kernels (rank >= 2)."""
    return jax.tree.map(lambda leaf: jnp.ndim(leaf) >= 2, params)


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    """The learning rate per step for a resolved ``config``."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "onecycle":
        return optax.cosine_onecycle_schedule(total, config.lr, pct_start=0.25)
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    return optax.warmup_cosine_decay_schedule(0.0, config.lr, warmup, total, end_value=0.0)


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """SGD (Nesterov, L2 decay of kernels) or AdamW (decoupled decay of kernels)."""
    schedule = make_schedule(config, steps_per_epoch)
    if config.optimizer == "adamw":
        return optax.adamw(schedule, weight_decay=config.weight_decay, mask=decay_mask)
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=decay_mask),
        optax.sgd(schedule, momentum=0.9, nesterov=True),
    )


def preprocess(
    images: jax.Array,
    key: jax.Array | None,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    crop_padding: int,
    flip: bool,
    dtype: Any,
) -> jax.Array:
    """uint8 images to normalised model inputs, augmented when ``key`` is given.

    Augmentation, as torchvision's ``RandomCrop(H, padding=crop_padding)`` plus
    ``RandomHorizontalFlip()``: each image is zero-padded (black, before normalisation),
    cropped back to ``H x W`` at a uniformly random offset, and mirrored with
    probability 1/2 if ``flip``.

    Args:
      images: uint8 ``(B, H, W, C)``.
      key: PRNG key of this batch's augmentation; ``None`` for none (evaluation).
      mean: per-channel mean of ``images / 255``, length C.
      std: per-channel standard deviation of ``images / 255``, length C.
      crop_padding: pixels of zero padding on each side for the random crop.
      flip: whether to mirror at random.
      dtype: dtype of the result.

    Returns:
      ``(B, H, W, C)`` of ``dtype``: ``(augmented / 255 - mean) / std``.
    """
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


@dataclasses.dataclass(frozen=True)
class Experiment:
    """The model, optimizer and compiled steps of a resolved config and dataset shape.

    Runs that differ only in their seed share one :class:`Experiment` (see
    :func:`get_experiment`), so a comparison over seeds compiles once per arm.
    """

    model: Any  # a linen module, or an NNXClassifier (the same init / apply)
    optimizer: optax.GradientTransformation
    schedule: optax.Schedule
    steps_per_epoch: int
    train_step: Callable[..., Any]
    eval_step: Callable[..., Any]
    init: Callable[[jax.Array], TrainState]
    placement: Placement


@functools.lru_cache(maxsize=8)
def get_experiment(
    config: TrainConfig,
    image_shape: tuple[int, int, int],
    num_classes: int,
    num_train: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    devices: tuple[jax.Device, ...],
) -> Experiment:
    """Builds (or returns the cached) :class:`Experiment`; ``config`` must be resolved
    and its seed is ignored (pass seed 0 to share the cache between seeds)."""
    dtype = jnp.bfloat16 if config.bf16 else jnp.float32
    model: Any
    if config.api == "nnx":
        model = NNXClassifier(
            config.model, in_features=image_shape[-1], num_classes=num_classes, pool=config.pool,
            width=config.width, dtype=dtype, image_size=image_shape[:2],
        )
    else:
        model = models.make_model(
            config.model, num_classes=num_classes, pool=config.pool, width=config.width,
            dtype=dtype,
        )
    steps = data.steps_per_epoch(num_train, config.batch_size)
    optimizer = make_optimizer(config, steps)
    placement = make_placement(devices)
    prepare = functools.partial(
        preprocess, mean=mean, std=std, crop_padding=config.crop_padding, flip=config.flip,
        dtype=dtype,
    )

    def init(seed_key: jax.Array) -> TrainState:
        variables = model.init(
            jax.random.fold_in(seed_key, INIT_STREAM),
            jnp.zeros((1, *image_shape), dtype), train=False,
        )
        params = variables["params"]
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=optimizer.init(params),
            rng=jax.random.fold_in(seed_key, AUGMENT_STREAM),
        )

    def train_step(state: TrainState, images: jax.Array, labels: jax.Array):
        inputs = prepare(images, jax.random.fold_in(state.rng, state.step))

        def loss_fn(params):
            logits, updates = model.apply(
                {"params": params, "batch_stats": state.batch_stats}, inputs, train=True,
                mutable=["batch_stats"],
            )
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, (logits, updates.get("batch_stats", {}))

        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            batch_stats=batch_stats,
            opt_state=opt_state,
        )
        accuracy = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
        return state, {"loss": loss, "accuracy": accuracy}

    def eval_step(state: TrainState, images: jax.Array, labels: jax.Array, weights: jax.Array):
        logits = model.apply(
            {"params": state.params, "batch_stats": state.batch_stats}, prepare(images, None),
            train=False,
        )
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        return {"loss": jnp.sum(losses * weights), "correct": jnp.sum(correct * weights)}

    batch, replicated = placement.batch, placement.replicated
    step_options = FAST_COMPILE if config.fast_compile else None
    return Experiment(
        model=model,
        optimizer=optimizer,
        schedule=make_schedule(config, steps),
        steps_per_epoch=steps,
        train_step=jax.jit(
            train_step, in_shardings=(replicated, batch, batch),
            out_shardings=(replicated, replicated), donate_argnums=(0,),
            compiler_options=step_options,
        ),
        eval_step=jax.jit(
            eval_step, in_shardings=(replicated, batch, batch, batch), out_shardings=replicated,
            compiler_options=step_options,
        ),
        # Initialisation runs once: unoptimised code compiles ~4x faster (its values are
        # as reproducible, but not bit-equal to an optimised compile's).
        init=jax.jit(init, out_shardings=replicated, compiler_options=FAST_COMPILE),
        placement=placement,
    )


def count_parameters(params: Any) -> int:
    """Number of scalars in a parameter tree."""
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))


def evaluate(experiment: Experiment, state: TrainState, images: np.ndarray, labels: np.ndarray,
             batch_size: int) -> dict[str, float]:
    """Mean loss and accuracy over a whole split; the last batch is padded and masked."""
    totals = {"loss": 0.0, "correct": 0.0}
    pending = []
    for start in range(0, len(labels), batch_size):
        index = np.arange(start, start + batch_size)
        weights = (index < len(labels)).astype(np.float32)
        index = np.minimum(index, len(labels) - 1)
        batch = _global_batch(experiment.placement, images[index], labels[index], weights)
        pending.append(experiment.eval_step(state, *batch))
    for result in jax.device_get(pending):
        for name in totals:
            totals[name] += float(result[name])
    return {"loss": totals["loss"] / len(labels), "accuracy": totals["correct"] / len(labels)}


# ------------------------------------------------------------------------------ outputs


def write_atomically(path: pathlib.Path, write: Callable[[Any], None], *, binary: bool = False):
    """Writes ``path`` through ``write(file)`` into a temporary file, then renames it."""
    path = pathlib.Path(path)
    # Not tempfile.mkstemp: its files are private (0600); this one gets the umask's mode.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "xb" if binary else "x") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_json(path: pathlib.Path, value: Any) -> None:
    """Writes ``value`` as indented JSON, atomically."""
    write_atomically(path, lambda file: file.write(json.dumps(value, indent=2) + "\n"))


def write_metrics(path: pathlib.Path, history: Sequence[dict[str, Any]]) -> None:
    """Rewrites ``metrics.jsonl`` atomically from ``history`` (used on resume)."""
    write_atomically(path, lambda file: file.writelines(json.dumps(row) + "\n" for row in history))


def append_metrics(path: pathlib.Path, row: dict[str, Any]) -> None:
    """Appends one epoch's line to ``metrics.jsonl`` and flushes it to disk."""
    with open(path, "a") as file:
        file.write(json.dumps(row) + "\n")
        file.flush()
        os.fsync(file.fileno())


def plot_curves(path: pathlib.Path, history: Sequence[dict[str, Any]], title: str) -> None:
    """Draws loss and accuracy per epoch (train and test) into a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-o"), ("test", "-s")):
        loss_axes.plot(epochs, [row[f"{split}_loss"] for row in history], style, label=split)
        accuracy_axes.plot(epochs, [100 * row[f"{split}_accuracy"] for row in history], style,
                           label=split)
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=110), binary=True)
    plt.close(figure)


def _progress(total: int, description: str, enabled: bool):
    """A tqdm bar on a terminal (stderr); nothing when disabled or not a TTY."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="step", leave=False,
                disable=None if enabled and jax.process_index() == 0 else True,
                dynamic_ncols=True)


# ------------------------------------------------------------------------- checkpoints


class CheckpointError(ValueError):
    """A run cannot resume: no intact checkpoint, or one that does not restore."""


def _checkpoint_manager(directory: pathlib.Path):
    import orbax.checkpoint as ocp

    # Synchronous saves: when save() returns, the epoch's checkpoint is complete. orbax
    # writes each checkpoint into a temporary folder and renames it into place
    # (AtomicRenameTemporaryPath), so an interrupted save never looks like a checkpoint.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=2, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager(directory.absolute(), options=options,
                                 item_names=("state", "progress"))


def _host_value(leaf: Any) -> np.ndarray:
    """The value of a replicated leaf on this process (every process holds all of it)."""
    if isinstance(leaf, jax.Array):
        if not leaf.sharding.is_fully_replicated:
            raise ValueError(f"expected a replicated array, got sharding {leaf.sharding}")
        return np.asarray(leaf.addressable_data(0))
    return np.asarray(leaf)


def state_checksum(state: TrainState) -> str:
    """SHA-256 of every leaf's path, dtype, shape and bytes: equal only for equal states."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        value = np.ascontiguousarray(_host_value(leaf))
        digest.update(f"{jax.tree_util.keystr(path)} {value.dtype.str} {value.shape}\n".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _file_sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checkpoint_files(folder: pathlib.Path) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of every file under ``folder`` but the checksums file itself."""
    return {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size,
                                              "sha256": _file_sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not (
            path.parent == folder and path.name.startswith((CHECKSUMS_FILE, f".{CHECKSUMS_FILE}.")))
    }


def _save_checkpoint(manager, epoch: int, state: TrainState, progress: dict[str, Any]) -> None:
    """Saves ``state`` and ``progress`` as ``epoch``, then its checksums file.

    orbax's files carry no checksums: a truncated one makes a restore fail deep inside
    orbax's event loop, with a traceback per pending read. So once orbax has renamed the
    checkpoint into place, process 0 records the size and SHA-256 of each of its files
    and the checksum of the state (written atomically); a resumed run checks them before
    orbax reads anything. Until that file exists the checkpoint counts as unfinished.
    """
    import orbax.checkpoint as ocp

    checksum = state_checksum(state)
    manager.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), progress=ocp.args.JsonSave(progress)))
    manager.wait_until_finished()
    if jax.process_index() == 0:
        folder = pathlib.Path(manager.directory) / str(epoch)
        write_json(folder / CHECKSUMS_FILE,
                   {"state_sha256": checksum, "files": _checkpoint_files(folder)})


def _checkpoint_damage(folder: pathlib.Path) -> str | None:
    """Why the checkpoint in ``folder`` is damaged or unfinished, or ``None`` if its files
    are as they were saved."""
    try:
        recorded = json.loads((folder / CHECKSUMS_FILE).read_text())
        files = recorded["files"]
        if not isinstance(files, dict) or not isinstance(recorded["state_sha256"], str):
            raise TypeError("unexpected content")
    except FileNotFoundError:
        return f"its save did not finish ({CHECKSUMS_FILE} is missing)"
    except (ValueError, TypeError, KeyError) as error:  # JSONDecodeError is a ValueError
        return f"{CHECKSUMS_FILE} is damaged ({type(error).__name__}: {error})"
    problems = []
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != expected.get("size"):
            problems.append(f"{name} has {path.stat().st_size} bytes instead of "
                            f"{expected.get('size')}")
        elif _file_sha256(path) != expected.get("sha256"):
            problems.append(f"{name} has other contents")
    if problems:
        shown = "; ".join(problems[:3])
        return shown + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
    return None


def _on_every_process(flag: bool) -> bool:
    """Whether ``flag`` holds on every process (a collective: all processes must call it)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def _saved_epochs(directory: pathlib.Path) -> list[int]:
    """The epochs of the checkpoint folders in ``directory``, newest first."""
    if not directory.is_dir():
        return []
    return sorted((int(path.name) for path in directory.iterdir()
                   if path.is_dir() and path.name.isdigit()), reverse=True)


def _newest_intact_checkpoint(out: pathlib.Path) -> int | None:
    """Finds the newest intact checkpoint in ``out``; moves newer damaged ones aside.

    Every process checks the files; a checkpoint counts as intact only if it is intact
    for all of them. Damaged checkpoints newer than the one resumed from are moved (by
    process 0) into ``out/damaged-checkpoints/``, with a warning: the run saves those
    epochs again.

    Returns:
      The intact checkpoint's epoch, or ``None`` if ``out`` holds no checkpoints.

    Raises:
      CheckpointError: if there are checkpoints but none is intact.
    """
    directory = out / CHECKPOINT_DIR
    epochs = _saved_epochs(directory)
    damaged: list[tuple[int, str]] = []
    intact = None
    for epoch in epochs:
        reason = _checkpoint_damage(directory / str(epoch))
        if _on_every_process(reason is None):
            intact = epoch
            break
        damaged.append((epoch, reason or "damaged as another process sees it"))
    if intact is None:
        if not damaged:
            return None
        details = "; ".join(f"epoch {epoch}: {reason}" for epoch, reason in damaged)
        raise CheckpointError(
            f"cannot resume: no intact checkpoint in {directory} ({details}). Delete "
            f"{directory} to train this run from the start, or choose another --out")
    if damaged and jax.process_index() == 0:
        for bad_epoch, reason in damaged:
            target = _free_name(out / DAMAGED_DIR / str(bad_epoch))
            target.parent.mkdir(exist_ok=True)
            os.replace(directory / str(bad_epoch), target)
            print(f"warning: the checkpoint of epoch {bad_epoch} in {directory} is damaged "
                  f"({reason}); resuming from epoch {intact} instead. It was moved to {target}; "
                  "delete it when you no longer need it.", file=sys.stderr, flush=True)
    if damaged and jax.process_count() > 1:
        from jax.experimental import multihost_utils

        # No process may open the checkpoints before the damaged ones are out of the way.
        multihost_utils.sync_global_devices("jaxpool example: damaged checkpoints moved")
    return intact


def _free_name(path: pathlib.Path) -> pathlib.Path:
    """``path``, or ``path.1``, ``path.2``, ... whichever does not exist yet."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate


def _brief(error: BaseException, limit: int = 400) -> str:
    """``Type: message`` on one line, without tensorstore's specs (kilobytes of JSON)."""
    message = " ".join(str(error).split(" [tensorstore_spec")[0].split())
    message = message if len(message) <= limit else message[:limit] + " ..."
    return f"{type(error).__name__}: {message}"


def _ignore_closed_event_loop(previous_hook: Callable[[Any], None], unraisable: Any) -> None:
    """A ``sys.unraisablehook`` that drops "Event loop is closed" from asyncio's
    ``call_soon_threadsafe``: what tensorstore's threads raise, one traceback per pending
    read, once a failed orbax restore has closed its loop. Passes on anything else."""
    error = unraisable.exc_value
    frames = traceback.extract_tb(unraisable.exc_traceback)
    if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"
            and any(frame.name == "call_soon_threadsafe" for frame in frames)):
        previous_hook(unraisable)


def _restore_checkpoint(manager, epoch: int, like: TrainState) -> tuple[TrainState, dict]:
    """Restores an intact checkpoint and checks it against what was saved.

    Raises:
      CheckpointError: if orbax fails, or its result differs from the saved state (the
        files are intact, so the cause is not damage: nothing is moved or deleted).
    """
    import orbax.checkpoint as ocp

    folder = pathlib.Path(manager.directory) / str(epoch)
    abstract = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding), like)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = functools.partial(_ignore_closed_event_loop, previous_hook)
    failure, problem = None, None
    try:
        restored = manager.restore(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore()))
    except Exception as error:  # orbax raises many types; any of them means the same here
        # The hook stays: the reads orbax abandoned keep completing on tensorstore's
        # threads after this, each reporting into orbax's closed event loop.
        failure, problem = error, f"orbax failed although its files are intact: {_brief(error)}"
    else:
        sys.unraisablehook = previous_hook
        state, progress = restored.state, restored.progress
        recorded = json.loads((folder / CHECKSUMS_FILE).read_text())["state_sha256"]
        history = progress.get("history") if isinstance(progress, dict) else None
        if state_checksum(state) != recorded:
            problem = "the restored state differs from the saved one"
        elif (not isinstance(history, list) or progress.get("epoch") != epoch
              or progress.get("step") != int(state.step)
              or [row.get("epoch") for row in history] != list(range(1, epoch + 1))):
            problem = "its progress record does not match the epoch and step"
    # Every process goes on, or none: one left training would wait for the others forever.
    if not _on_every_process(problem is None):
        raise CheckpointError(f"cannot restore the checkpoint in {folder}: "
                              f"{problem or 'restoring it failed in another process'}"
                              ) from failure
    return state, progress


# -------------------------------------------------------------------------------- train


@dataclasses.dataclass
class RunResult:
    """What :func:`train` returns.

    Attributes:
      config: the resolved config.
      state: the final :class:`TrainState` (replicated over the devices).
      history: one dict per epoch, as in ``metrics.jsonl``.
      num_params: number of trainable parameters.
      dataset: the dataset's description.
    """

    config: TrainConfig
    state: TrainState
    history: list[dict[str, Any]]
    num_params: int
    dataset: str


def _log(message: str, quiet: bool) -> None:
    if not quiet and jax.process_index() == 0:
        print(message, flush=True)


def train(
    config: TrainConfig,
    *,
    out: os.PathLike | str | None = None,
    resume: bool = False,
    dataset: data.Dataset | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    quiet: bool = False,
) -> RunResult:
    """Trains one model; writes metrics, curves and checkpoints into ``out``.

    Args:
      config: the run's settings; ``None`` defaults are resolved for the dataset.
      out: output folder (created); ``None`` writes nothing (no checkpoints either).
      resume: continue from the last checkpoint in ``out`` if there is one (starting
        fresh if there is none). The resumed run must have the same settings, except
        those in :data:`RESUMABLE_CHANGES`.
      dataset: the data, already loaded; default ``data.load_dataset(config.dataset)``.
      progress: show tqdm progress bars (only on a terminal).
      stop_after: stop once this many epochs are done in total, as if interrupted (the
        learning-rate schedule still spans ``config.epochs``); continue with ``resume``.
      devices: devices to shard the batch over; default all of ``jax.devices()``.
      quiet: print no per-epoch lines.

    Returns:
      A :class:`RunResult`.

    Raises:
      ValueError: if the batch size does not divide over the devices, is larger than the
        training set, if ``out`` holds checkpoints and ``resume`` is false, or if a
        resumed run's settings differ from the saved ``config.json``.
    """
    if dataset is None:
        dataset = data.load_dataset(config.dataset, data_dir=config.data_dir)
    config = resolve_config(config, dataset)
    devices = tuple(jax.devices() if devices is None else devices)
    if stop_after is not None:
        _check_int(stop_after, "stop_after", 1)
    for name in ("batch_size", "eval_batch_size"):
        if getattr(config, name) % len(devices):
            raise ValueError(
                f"{name}={getattr(config, name)} must be a multiple of the number of devices "
                f"({len(devices)}), since every device gets an equal share of a batch"
            )
    if config.batch_size > dataset.num_train:
        raise ValueError(
            f"batch_size={config.batch_size} exceeds the {dataset.num_train} training images "
            f"of {dataset.name!r}"
        )

    experiment = get_experiment(
        dataclasses.replace(config, seed=0, data_dir=None, eval_batch_size=1),
        dataset.image_shape, dataset.num_classes, dataset.num_train,
        tuple(float(v) for v in dataset.mean), tuple(float(v) for v in dataset.std), devices,
    )
    state = experiment.init(jax.random.PRNGKey(config.seed))
    history: list[dict[str, Any]] = []
    num_params = count_parameters(state.params)

    writer = out is not None and jax.process_index() == 0
    manager = None
    config_record = {**dataclasses.asdict(config), "num_params": num_params,
                     "dataset_description": dataset.description, "num_devices": len(devices),
                     "num_processes": jax.process_count()}
    with contextlib.ExitStack() as cleanup:
        if out is not None:
            out = pathlib.Path(out)
            out.mkdir(parents=True, exist_ok=True)
            saved_epochs = _saved_epochs(out / CHECKPOINT_DIR)
            if saved_epochs and not resume:
                raise ValueError(
                    f"{out} already holds checkpoints (last: epoch {saved_epochs[0]}); pass "
                    "--resume to continue that run, or choose another --out"
                )
            if saved_epochs:
                _check_resumable(out / CONFIG_FILE, config)
            # Before orbax opens the folder: it must never read a damaged checkpoint.
            latest = _newest_intact_checkpoint(out) if saved_epochs else None
            manager = _checkpoint_manager(out / CHECKPOINT_DIR)
            # Closed however the run ends: orbax's threads must not outlive it.
            cleanup.callback(manager.close)
            if latest is not None:
                state, saved = _restore_checkpoint(manager, latest, state)
                history = saved["history"]
                if writer:
                    write_metrics(out / METRICS_FILE, history)
                _log(f"resumed from {out / CHECKPOINT_DIR} at epoch {latest} "
                     f"(step {int(state.step)})", quiet)
            elif writer:
                write_metrics(out / METRICS_FILE, [])
            if writer:
                write_json(out / CONFIG_FILE, config_record)

        first_epoch = len(history) + 1
        last_epoch = config.epochs if stop_after is None else min(config.epochs, stop_after)
        if first_epoch == 1:
            _log(f"{dataset.description}\n{config.model} (Flax {config.api}, width "
                 f"{config.width}, pool {config.pool!r}): {num_params:,} parameters; "
                 f"{len(devices)} device(s)", quiet)

        steps = experiment.steps_per_epoch
        compile_seconds = 0.0
        for epoch in range(first_epoch, last_epoch + 1):
            started = time.perf_counter()
            metrics = []
            with _progress(steps, f"epoch {epoch}/{config.epochs}", progress and not quiet) as bar:
                for index, batch_index in enumerate(data.epoch_batches(
                        dataset.num_train, config.batch_size, seed=config.seed, epoch=epoch - 1)):
                    images, labels = _global_batch(experiment.placement,
                                                   dataset.train_images[batch_index],
                                                   dataset.train_labels[batch_index])
                    if index == 0 and epoch == first_epoch:
                        # Compile outside the timed loop, so images/s measures training.
                        compile_started = time.perf_counter()
                        experiment.train_step.lower(state, images, labels).compile()
                        compile_seconds = time.perf_counter() - compile_started
                        started += compile_seconds
                    state, step_metrics = experiment.train_step(state, images, labels)
                    metrics.append(step_metrics)
                    bar.update(1)
                    if not bar.disable and (index % 10 == 9 or index == steps - 1):
                        seconds = time.perf_counter() - started
                        bar.set_postfix(loss=f"{float(step_metrics['loss']):.3f}",
                                        acc=f"{float(step_metrics['accuracy']):.3f}",
                                        img_s=f"{(index + 1) * config.batch_size / seconds:.0f}")
            metrics = jax.device_get(metrics)
            train_seconds = time.perf_counter() - started
            test = evaluate(experiment, state, dataset.test_images, dataset.test_labels,
                            config.eval_batch_size)
            row = {
                "epoch": epoch,
                "step": epoch * steps,
                "train_loss": float(np.mean([m["loss"] for m in metrics])),
                "train_accuracy": float(np.mean([m["accuracy"] for m in metrics])),
                "test_loss": test["loss"],
                "test_accuracy": test["accuracy"],
                "images_per_second": steps * config.batch_size / train_seconds,
                "seconds": time.perf_counter() - started,
                "compile_seconds": compile_seconds if epoch == first_epoch else 0.0,
                "learning_rate": float(experiment.schedule(epoch * steps - 1)),
            }
            history.append(row)
            if manager is not None:
                _save_checkpoint(manager, epoch, state, {"epoch": epoch, "step": epoch * steps,
                                                         "history": history})
            if writer:
                append_metrics(out / METRICS_FILE, row)
                plot_curves(out / CURVES_FILE, history,
                            f"{config.model} width {config.width}, pool {config.pool}, "
                            f"{dataset.name}, seed {config.seed}")
            _log(f"epoch {epoch:3d}/{config.epochs}  train loss {row['train_loss']:.4f} "
                 f"acc {row['train_accuracy']:.4f}  test loss {row['test_loss']:.4f} "
                 f"acc {row['test_accuracy']:.4f}  {row['images_per_second']:.0f} img/s  "
                 f"{row['seconds']:.1f} s", quiet)
    return RunResult(config, state, history, num_params, dataset.description)


def _check_resumable(path: pathlib.Path, config: TrainConfig) -> None:
    """Raises ValueError naming every setting that differs from the saved run's."""
    if not path.is_file():
        raise ValueError(f"cannot resume: checkpoints exist but {path} is missing")
    try:
        saved = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"cannot resume: {path} is not valid JSON ({error})") from None
    # A setting newer than the saved run (absent from its config.json) had its default.
    differences = [
        f"{field.name}: saved {saved.get(field.name, field.default)!r}, "
        f"now {getattr(config, field.name)!r}"
        for field in dataclasses.fields(config)
        if field.name not in RESUMABLE_CHANGES
        and saved.get(field.name, field.default) != getattr(config, field.name)
    ]
    if differences:
        raise ValueError(
            f"cannot resume the run in {path.parent} with different settings ("
            + "; ".join(differences) + "); use the saved settings or another --out"
        )


# ---------------------------------------------------------------------------------- CLI


def _int_at_least(minimum: int):
    """An argparse ``type``: a whole number ``>= minimum``, or a clear error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _number(minimum_exclusive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (minimum_exclusive and value == 0):
            bound = "> 0" if minimum_exclusive else ">= 0"
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}, got {text!r}")
        return value
    return parse


def _choice(choices: Sequence[str], what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {text!r}; valid {what}s: {', '.join(choices)}")
        return text
    return parse


def pool_list(text: str) -> tuple[str, ...]:
    """Parses ``--compare``: comma-separated, known, distinct pooling names."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in models.POOLING_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown pooling {', '.join(map(repr, unknown))}; valid poolings: "
            f"{', '.join(models.POOLING_NAMES)}")
    if len(names) < 2 or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected at least two distinct comma-separated poolings, got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m examples.cifar10.train``."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.cifar10.train",
        description="Train a classifier with a choice of jaxpool pooling (Flax + Optax).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = TrainConfig()
    run = parser.add_argument_group("data and model")
    run.add_argument("--dataset", type=_choice(data.DATASET_NAMES, "dataset"),
                     default=defaults.dataset, help=f"one of {', '.join(data.DATASET_NAMES)}; "
                     "digits is real 8x8 data bundled with scikit-learn, a stand-in for CIFAR-10")
    run.add_argument("--data-dir", default=None,
                     help=f"CIFAR-10 folder (default ${data.DATA_DIR_ENV_VAR} or "
                     "~/.cache/jaxpool/cifar10)")
    run.add_argument("--model", type=_choice(models.MODEL_NAMES, "model"), default=defaults.model,
                     help=f"one of {', '.join(models.MODEL_NAMES)}")
    run.add_argument("--pool", type=_choice(models.POOLING_NAMES, "pooling"),
                     default=defaults.pool, help=f"one of {', '.join(models.POOLING_NAMES)}")
    run.add_argument("--api", type=_choice(APIS, "api"), default=defaults.api,
                     help="Flax API of the model: linen (jaxpool.models) or nnx (jaxpool.nnx); "
                     "the same models, data and training loop")
    run.add_argument("--width", type=_positive_int, default=None,
                     help="channels of the first stage (default: 32 for hybrid_resnet, 64 "
                     "for resnet18)")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=_positive_int, default=defaults.epochs)
    opt.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size)
    opt.add_argument("--eval-batch-size", type=_positive_int, default=defaults.eval_batch_size)
    opt.add_argument("--optimizer", type=_choice(OPTIMIZERS, "optimizer"),
                     default=defaults.optimizer, help="sgd: Nesterov momentum 0.9 with L2 "
                     "weight decay (torch.optim.SGD's); adamw: decoupled weight decay")
    opt.add_argument("--schedule", type=_choice(SCHEDULES, "schedule"),
                     default=defaults.schedule)
    opt.add_argument("--lr", type=_number(True), default=None,
                     help="peak learning rate (default 0.1 for sgd, 3e-3 for adamw)")
    opt.add_argument("--weight-decay", type=_number(False), default=defaults.weight_decay)
    opt.add_argument("--warmup-epochs", type=_number(False), default=defaults.warmup_epochs,
                     help="linear warmup of the cosine schedule")
    opt.add_argument("--bf16", action="store_true", help="bfloat16 compute, float32 parameters")
    opt.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                     help="random horizontal flips (default: on, except for digits)")
    opt.add_argument("--crop-padding", type=_non_negative_int, default=None,
                     help="padding of the random crop (default image height // 8)")
    opt.add_argument("--seed", type=_non_negative_int, default=defaults.seed)
    opt.add_argument("--fast-compile", action="store_true",
                     help="compile without XLA optimisations: starts sooner, steps run slower "
                     "(smoke runs)")
    io = parser.add_argument_group("outputs")
    io.add_argument("--out", default=None, help="folder for metrics, curves, checkpoints "
                    "(default runs/<dataset>-<model>-<pool>, or runs/compare-<dataset>-<model> "
                    "with --compare)")
    io.add_argument("--resume", action="store_true",
                    help="continue from the last checkpoint in --out")
    io.add_argument("--stop-after", type=_positive_int, default=None, metavar="EPOCHS",
                    help="stop after this many epochs in all, as if interrupted (for --resume)")
    io.add_argument("--no-progress", action="store_true", help="no progress bars")
    multi = parser.add_argument_group(
        "several processes (one per host; see examples/cifar10/README.md)")
    multi.add_argument("--distributed", action="store_true",
                       help="join a multi-process run through jax.distributed.initialize(); on "
                       "Cloud TPU, SLURM and Open MPI the next three are detected")
    multi.add_argument("--coordinator-address", default=None, metavar="HOST:PORT",
                       help="with --distributed: where process 0 serves the coordinator, the "
                       f"same in every process (default ${COORDINATOR_ENV_VAR})")
    multi.add_argument("--num-processes", type=_positive_int, default=None, metavar="N",
                       help="with --distributed: how many processes "
                       f"(default ${NUM_PROCESSES_ENV_VAR})")
    multi.add_argument("--process-id", type=_non_negative_int, default=None, metavar="I",
                       help="with --distributed: this process's index, 0 to N-1 (default "
                       f"${PROCESS_ID_ENV_VAR})")
    cmp = parser.add_argument_group("comparison (see examples/cifar10/compare.py)")
    cmp.add_argument("--compare", type=pool_list, default=None, metavar="POOL,POOL,...",
                     help="train every listed pooling with the same seeds and compare")
    cmp.add_argument("--seeds", type=_positive_int, default=5,
                     help="with --compare: seeds 0..N-1 (a --seed S shifts them to S..S+N-1)")
    cmp.add_argument("--baseline", type=_choice(models.POOLING_NAMES, "pooling"), default="max",
                     help="with --compare: the arm the others are compared with")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed arguments."""
    return TrainConfig(
        dataset=args.dataset, model=args.model, pool=args.pool, epochs=args.epochs,
        batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
        optimizer=args.optimizer, schedule=args.schedule, lr=args.lr,
        weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs, width=args.width,
        bf16=args.bf16, flip=args.flip, crop_padding=args.crop_padding, seed=args.seed,
        data_dir=args.data_dir, fast_compile=args.fast_compile, api=args.api,
    )


def distributed_options(parser: argparse.ArgumentParser,
                        args: argparse.Namespace) -> dict[str, Any] | None:
    """The keyword arguments of :func:`initialize_distributed` from the command line and
    the environment, or ``None`` without ``--distributed``; exits on bad values."""
    given = [flag for flag, value in (("--coordinator-address", args.coordinator_address),
                                      ("--num-processes", args.num_processes),
                                      ("--process-id", args.process_id)) if value is not None]
    if not args.distributed:
        if given:
            parser.error(f"{', '.join(given)} only apply with --distributed")
        return None

    def from_environment(value, name: str, parse: Callable[[str], Any]):
        if value is not None or not os.environ.get(name):
            return value
        try:
            return parse(os.environ[name])
        except argparse.ArgumentTypeError as error:
            parser.error(f"${name}: {error}")

    address = from_environment(args.coordinator_address, COORDINATOR_ENV_VAR, str)
    count = from_environment(args.num_processes, NUM_PROCESSES_ENV_VAR, _positive_int)
    index = from_environment(args.process_id, PROCESS_ID_ENV_VAR, _non_negative_int)
    if address is not None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            parser.error(f"the coordinator address must be HOST:PORT, got {address!r}")
    if count is not None and index is not None and index >= count:
        parser.error(f"the process id must be below the number of processes ({count}), "
                     f"got {index}")
    return {"coordinator_address": address, "num_processes": count, "process_id": index}


def initialize_distributed(parser: argparse.ArgumentParser | None = None, *,
                           coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Joins a multi-process run: ``jax.distributed.initialize`` (once per process, before
    anything else uses JAX).

    Arguments left ``None`` are detected on Cloud TPU, SLURM and Open MPI; elsewhere give
    all three, the address and count alike in every process. Processes on CPUs exchange
    data through gloo (unless ``$JAX_CPU_COLLECTIVES_IMPLEMENTATION`` says otherwise):
    jax >= 0.5.1 does so by default, older jax has no CPU collectives by default.

    With ``parser``, a failure to join exits through it with a one-line error.
    """
    if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=coordinator_address,
                                   num_processes=num_processes, process_id=process_id)
    except (RuntimeError, ValueError) as error:  # XlaRuntimeError is a RuntimeError
        if parser is None:
            raise
        parser.exit(2, f"{parser.prog}: error: could not join the distributed run: "
                       f"{_brief(error)}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m examples.cifar10.train``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    join = distributed_options(parser, args)
    if join is not None:
        initialize_distributed(parser, **join)
    if args.compare is not None:
        from examples.cifar10 import compare

        return compare.main_from_args(parser, args, argv)
    try:
        config = config_from_args(args)
        out = args.out or os.path.join("runs", f"{config.dataset}-{config.model}-{config.pool}")
        result = train(config, out=out, resume=args.resume, progress=not args.no_progress,
                       stop_after=args.stop_after)
    except (ValueError, TypeError, data.DatasetUnavailableError) as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    if result.history:
        last = result.history[-1]
        _log(f"final test accuracy {last['test_accuracy']:.4f} after {last['epoch']} epochs; "
             f"outputs in {out}", False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
