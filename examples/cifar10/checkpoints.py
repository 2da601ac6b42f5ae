"""A run's files: orbax checkpoints (each saved into a temporary folder renamed into place),
restored past damage to the newest (moved aside with a warning), and atomic writes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

DAMAGED_DIR = "damaged-checkpoints"


class CheckpointError(ValueError):
    """A run cannot resume: none of its checkpoints restores."""


def brief(error: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, without tensorstore's specs (kilobytes of JSON)."""
    message = " ".join(str(error).split(" [tensorstore_spec")[0].split(". See full")[0].split())
    return f"{type(error).__name__}: {message[:limit]}{' ...' if len(message) > limit else ''}"


@contextlib.contextmanager
def _quiet_orbax():
    """Keeps orbax's reports of a failed restore off stderr: the caller reports it in one line."""
    def hook(unraisable, previous=sys.unraisablehook):
        if "Event loop is closed" not in str(unraisable.exc_value):
            previous(unraisable)

    logger = logging.getLogger("absl")
    sys.unraisablehook, level = hook, logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def open_manager(directory: pathlib.Path):
    """orbax's manager of synchronous saves (done when ``save`` returns), the last 2 kept."""
    import orbax.checkpoint as ocp

    with _quiet_orbax():
        return ocp.CheckpointManager(directory.absolute(), item_names=("state", "progress"),
                                     options=ocp.CheckpointManagerOptions(
                                         max_to_keep=2, create=True,
                                         enable_async_checkpointing=False))


def restore_newest(manager, like: Any, check: Callable[[int, dict], str | None]):
    """``(state, progress)`` of the newest checkpoint that restores into ``like``'s shapes,
    dtypes and shardings with a progress record ``check(epoch, progress)`` finds no fault
    in; None without checkpoints. Newer ones are moved to ``damaged-checkpoints/`` beside
    the folder with a warning; :class:`CheckpointError` (nothing moved) if none restores."""
    import orbax.checkpoint as ocp
    from jax.experimental import multihost_utils

    def on_every_process(flag: bool) -> bool:  # a collective: every process must call it
        return flag if jax.process_count() == 1 else bool(
            np.all(multihost_utils.process_allgather(np.int32(flag))))

    failures, restored = [], None
    abstract = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                                              sharding=leaf.sharding), like)
    for epoch in sorted(manager.all_steps(), reverse=True):
        with _quiet_orbax():
            try:
                restored = manager.restore(epoch, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore()))
                problem = check(epoch, restored.progress)
            except Exception as error:  # orbax raises many types; all mean the same here
                problem = brief(error)
        if on_every_process(problem is None):  # every process goes on, or none does
            break
        failures.append((epoch, problem or "it does not restore in another process"))
        restored = None
    directory = pathlib.Path(manager.directory)
    if restored is None and failures:
        raise CheckpointError(
            f"cannot resume: no checkpoint in {directory} restores ("
            + "; ".join(f"epoch {epoch}: {problem}" for epoch, problem in failures)
            + f"). Delete {directory} to train this run from the start, or choose another --out")
    for epoch, problem in failures if jax.process_index() == 0 else ():
        target, number = directory.parent / DAMAGED_DIR / str(epoch), 0
        while target.exists():
            number += 1
            target = target.with_name(f"{epoch}.{number}")
        target.parent.mkdir(exist_ok=True)
        os.replace(directory / str(epoch), target)
        print(f"warning: the checkpoint of epoch {epoch} in {directory} does not restore "
              f"({problem}); resuming from epoch {restored.progress['epoch']} instead. It was "
              f"moved to {target}; delete it when you no longer need it.", file=sys.stderr,
              flush=True)
    if failures:
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("jaxpool example: damaged checkpoints moved")
        manager.reload()
    return None if restored is None else (restored.state, restored.progress)


def write_atomically(path: pathlib.Path, write: Callable[[Any], Any], *, binary: bool = False):
    """Writes ``path`` through ``write(file)`` into a temporary file, then renames it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb" if binary else "w") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_lines(path: pathlib.Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; none if it is missing."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []

