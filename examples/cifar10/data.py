"""The datasets (CIFAR-10, Fashion-MNIST, MNIST, digits) and their batch order, a function of
``(seed, epoch)``. Files are looked for in ``data_dir`` alone, or else in
``$JAXPOOL_DATA_DIR``, its ``<name>/``, ``~/.cache/jaxpool/<name>`` and Debian's
``/usr/share/datasets/fashion-mnist``; missing ones are downloaded into ``data_dir``, else
``$JAXPOOL_DATA_DIR/<name>``, else the cache. CIFAR-10's "python" distribution is pickles
(which can run code): only its *binary* one is read.

Example:
  >>> dataset = load_dataset("digits")
  >>> dataset.image_shape, dataset.train_images.dtype, dataset.num_train, dataset.num_classes
  ((8, 8, 1), dtype('uint8'), 1347, 10)
  >>> [len(batch) for batch in epoch_batches(dataset.num_train, 500, seed=0, epoch=0)]
  [500, 500]
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import math
import os
import pathlib
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

DATASET_NAMES = ("cifar10", "fashion-mnist", "mnist", "digits")
DATA_DIR_ENV_VAR = "JAXPOOL_DATA_DIR"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # of the tarball, as published
CIFAR10_ARCHIVE, CIFAR10_FOLDER = "cifar-10-binary.tar.gz", "cifar-10-batches-bin"
CIFAR10_FILES = (*(f"data_batch_{index}.bin" for index in range(1, 6)), "test_batch.bin")
CIFAR10_RECORD_BYTES = 1 + 3 * 32 * 32  # a label (0-9), then the R, G, B planes, row-major


class ChecksumError(ValueError):
    """A file's MD5 is not the expected one (corrupt, truncated or another file)."""


class DatasetUnavailableError(FileNotFoundError):
    """The dataset is neither on disk nor downloadable; the message says how to get it."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """uint8 NHWC images, int32 labels and the training images' per-channel mean and std."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    mean: np.ndarray
    std: np.ndarray
    description: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)``."""
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    num_train = property(lambda self: len(self.train_images), doc="Training images.")


def make_dataset(name: str, train: tuple[np.ndarray, np.ndarray],
                 test: tuple[np.ndarray, np.ndarray], num_classes: int,
                 description: str) -> Dataset:
    """A :class:`Dataset`; the statistics count byte values (no float copy of the images)."""
    values, means, stds = np.arange(256, dtype=np.float64) / 255.0, [], []
    for channel in range(train[0].shape[-1]):
        counts = np.bincount(train[0][..., channel].ravel(), minlength=256).astype(np.float64)
        means.append(float(counts @ values) / counts.sum())
        stds.append((float(counts @ (values - means[-1]) ** 2) / counts.sum()) ** 0.5)
    return Dataset(name, *train, *test, num_classes, np.asarray(means, np.float32),
                   np.asarray(stds, np.float32), description)


def _folders(name: str, data_dir, system_folders: Sequence[str] = ()) -> list[pathlib.Path]:
    """Where ``name``'s files are looked for, in order, then the download folder."""
    absolute = lambda folder: pathlib.Path(os.path.abspath(os.path.expanduser(folder)))  # noqa: E731
    if data_dir is not None:
        return [absolute(os.fspath(data_dir))] * 2
    root, cache = os.environ.get(DATA_DIR_ENV_VAR, ""), absolute(f"~/.cache/jaxpool/{name}")
    folders = [absolute(root), absolute(root) / name] if root else []
    return [*folders, cache, *map(pathlib.Path, system_folders), folders[1] if root else cache]


def _check_md5(path: pathlib.Path, expected: str, actual: str) -> None:
    if actual != expected.lower():
        raise ChecksumError(f"MD5 mismatch for {path}: expected {expected.lower()}, got "
                            f"{actual}: the file is corrupt, truncated or another one")


def download_file(url: str, destination: str | os.PathLike[str], *, md5: str,
                  timeout: float = 60.0) -> pathlib.Path:
    """Downloads ``url`` into a ``.part-*`` file beside ``destination``, renamed onto it once
    complete (a short transfer fails the MD5), MD5-checked and on disk; else removed."""
    final = pathlib.Path(os.path.abspath(destination))
    final.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f"{final.name}.part-", dir=final.parent)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(descriptor, "wb") as output:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    digest.update(chunk)
                    output.write(chunk)
            _check_md5(final, md5, digest.hexdigest())
            os.fchmod(output.fileno(), 0o644)  # mkstemp's 0600 would hide a shared cache
            output.flush()
            os.fsync(output.fileno())
        os.replace(temporary, final)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise
    return final


def _unavailable(title: str, reason: str, error: BaseException | None, ways: Sequence[str]):
    return DatasetUnavailableError(
        f"{title} is not available: {reason}"
        + (f", and downloading failed: {error}" if error else ", and download=False")
        + ".\nTo get it, " + "; or ".join(ways) + "; or pass --data-dir with the folder that "
        "holds the files.")


# ------------------------------------------------------------------------------ CIFAR-10


def parse_cifar10_records(raw: bytes, *, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary file as uint8 NHWC images and int32 labels, or a ValueError."""
    if not raw or len(raw) % CIFAR10_RECORD_BYTES:
        raise ValueError(f"{source}: truncated record: {len(raw)} bytes is not a whole number "
                         f"(>= 1) of {CIFAR10_RECORD_BYTES}-byte records")
    records = np.frombuffer(raw, np.uint8).reshape(-1, CIFAR10_RECORD_BYTES)
    bad = np.flatnonzero(records[:, 0] > 9)
    if bad.size:
        raise ValueError(f"{source}: record {bad[0]} has label {records[bad[0], 0]}, but "
                         f"CIFAR-10 labels are 0-9 ({bad.size} bad record(s) in all)")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), records[:, 0].astype(np.int32)


def _read_tarball(path: pathlib.Path) -> dict[str, bytes]:
    """The six ``.bin`` members, read in one pass and never extracted (nothing is written)."""
    wanted, contents = {f"{CIFAR10_FOLDER}/{name}": name for name in CIFAR10_FILES}, {}
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            for member in archive:
                name = wanted.get(member.name.removeprefix("./"))
                if name is not None and name not in contents:
                    stream = archive.extractfile(member) if member.isfile() else None
                    if stream is None:
                        raise ValueError(f"{path}: member {member.name!r} is not a regular "
                                         "file (links are not followed)")
                    contents[name] = stream.read()
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as error:
        raise ValueError(f"{path}: not a readable .tar.gz archive: {error}") from error
    missing = [member for member, name in wanted.items() if name not in contents]
    if missing:
        raise ValueError(f"{path}: the archive lacks {', '.join(missing)}")
    return contents


def load_cifar10(data_dir: str | os.PathLike[str] | None = None, *, download: bool = True,
                 timeout: float = 60.0) -> Dataset:
    """CIFAR-10 from the first folder with ``cifar-10-batches-bin/`` (or its ``.bin`` files)
    or the tarball (MD5-checked, read in place); or else the tarball is downloaded."""
    *folders, target = _folders("cifar10", data_dir)
    for folder in folders:
        contents, location = None, folder / CIFAR10_ARCHIVE
        for candidate in (folder / CIFAR10_FOLDER, folder):
            if contents is None and all((candidate / name).is_file() for name in CIFAR10_FILES):
                contents = {name: (candidate / name).read_bytes() for name in CIFAR10_FILES}
                location = candidate
        if contents is None and location.is_file():
            _check_md5(location, CIFAR10_MD5,
                       hashlib.md5(location.read_bytes(), usedforsecurity=False).hexdigest())
            contents = _read_tarball(location)
        if contents is not None:
            train, test = ([parse_cifar10_records(contents[name], source=f"{location}/{name}")
                            for name in names] for names in (CIFAR10_FILES[:5], CIFAR10_FILES[5:]))
            train = tuple(np.concatenate(arrays) for arrays in zip(*train, strict=True))
            return make_dataset("cifar10", train, test[0], 10,  # type: ignore[arg-type]
                                f"CIFAR-10 (official binary distribution; {len(train[1]):,} "
                                f"train / {len(test[0][1]):,} test 32x32 RGB images, from "
                                f"{location})")
    error = None
    try:
        if download:
            download_file(CIFAR10_URL, target / CIFAR10_ARCHIVE, md5=CIFAR10_MD5, timeout=timeout)
            return load_cifar10(target, download=False)
    except (OSError, http.client.HTTPException) as caught:
        error = caught
    raise _unavailable(
        "CIFAR-10", f"neither {CIFAR10_FOLDER}/ nor {CIFAR10_ARCHIVE} is in "
        + " or ".join(map(str, folders)), error,
        [f"place the official binary archive {CIFAR10_ARCHIVE} (MD5 {CIFAR10_MD5}) from "
         f"{CIFAR10_URL} or its extracted {CIFAR10_FOLDER}/ in {target}",
         "run with --dataset digits (offline, bundled with scikit-learn) instead"]) from error


# --------------------------------------------------------------- Fashion-MNIST and MNIST


@dataclasses.dataclass(frozen=True)
class IdxSource:
    """An IDX dataset's address, its files' content and .gz MD5s, split sizes and other homes."""

    title: str
    url: str
    md5s: tuple[tuple[str, str], ...]
    split_sizes: tuple[int, int]
    system_folders: tuple[str, ...] = ()
    install_hint: str = ""


IDX_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
IDX_SOURCES = {
    "fashion-mnist": IdxSource(  # MD5s of the IDX_FILES, in order: their content, the .gz
        "Fashion-MNIST", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        (("f4a8712d7a061bf5bd6d2ca38dc4d50a", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
         ("9018921c3c673c538a1fc5bad174d6f9", "25c81989df183df01b3e8a0aad5dffbe"),
         ("8181f5470baa50b63fa0f6fddb340f0a", "bef4ecab320f06d8554ea6380940ec79"),
         ("15d484375f8d13e6eb1aabb0c3f46965", "bb300cfdad3c16e7a12a480ee83cd310")),
        (60_000, 10_000), ("/usr/share/datasets/fashion-mnist",),
        "on Debian or Ubuntu, 'sudo apt-get install dataset-fashion-mnist' puts them in "
        "/usr/share/datasets/fashion-mnist (without root: 'apt-get download "
        "dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb DIR', then "
        "--data-dir DIR/usr/share/datasets/fashion-mnist)"),
    "mnist": IdxSource(
        "MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/",
        (("6bbc9ace898e44ae57da46a324031adb", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
         ("a25bea736e30d166cdddb491f175f624", "d53e105ee54ea40749a09fcbcd1e9432"),
         ("2646ac647ad5339dbf082846283269ea", "9fb629c4189551a2d022fa330f9573f3"),
         ("27ae3e4e09519cfbb04c329615203637", "ec29112dd5afa0611ce80d1b7f02629c")),
        (60_000, 10_000)),
}


def parse_idx(raw: bytes, *, source: str, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes as an array, or a ValueError naming what is wrong."""
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise ValueError(f"{source}: not an IDX file of unsigned bytes with {ndim} dimension(s)"
                         f" (magic number {raw[:4].hex() or 'missing'}, expected 000008{ndim:02x})")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", ndim, offset=4))
    if len(raw) != header + math.prod(shape):
        raise ValueError(f"{source}: the header announces shape {shape} ({math.prod(shape)} "
                         f"values), but {len(raw) - header} bytes follow it")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _idx_path(folder: pathlib.Path, name: str) -> pathlib.Path | None:
    return next((path for path in (folder / name, folder / f"{name}.gz") if path.is_file()), None)


def _read_idx(path: pathlib.Path, content_md5: str, ndim: int) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip's magic number, whatever the file's name
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path}: not a readable gzip file: {error}") from error
    actual = hashlib.md5(raw, usedforsecurity=False).hexdigest()
    if actual != content_md5:
        raise ChecksumError(f"{path}: the content's MD5 is {actual}, but the official file's is "
                            f"{content_md5}; the file is corrupt, truncated or another dataset's")
    return parse_idx(raw, source=str(path), ndim=ndim)


def load_idx_dataset(name: str, data_dir: str | os.PathLike[str] | None = None, *,
                     download: bool = True, timeout: float = 60.0) -> Dataset:
    """Fashion-MNIST or MNIST from the first folder with all :data:`IDX_FILES` (gzipped or
    not), checked against the official MD5s and sizes; or else downloaded (the .gz files)."""
    source = IDX_SOURCES[name]
    md5s = dict(zip(IDX_FILES, source.md5s, strict=True))
    *folders, target = _folders(name, data_dir, source.system_folders)
    folder = next((folder for folder in folders
                   if all(_idx_path(folder, file) for file in IDX_FILES.values())), None)
    if folder is None:
        folder, error = target, None
        try:
            for part, file in IDX_FILES.items() if download else ():
                if _idx_path(folder, file) is None:
                    download_file(f"{source.url}{file}.gz", folder / f"{file}.gz",
                                  md5=md5s[part][1], timeout=timeout)
        except (OSError, http.client.HTTPException) as caught:
            error = caught
        if error or not download:
            raise _unavailable(
                source.title, f"{', '.join(f'{file}.gz' for file in IDX_FILES.values())} "
                f"(gzipped or not) are not all in {' or '.join(map(str, folders))}", error,
                [f"download them from {source.url} into {folder} (with a network this loader "
                 "does it itself)", *filter(None, [source.install_hint])]) from error
    arrays = {part: _read_idx(_idx_path(folder, file), md5s[part][0],  # type: ignore[arg-type]
                              3 if part.endswith("images") else 1)
              for part, file in IDX_FILES.items()}
    splits = []
    for split, size in zip(("train", "test"), source.split_sizes, strict=True):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape != (size, 28, 28) or len(labels) != size:
            raise ValueError(f"{folder}: the {split} split has images of shape {images.shape} "
                             f"and {len(labels)} labels; expected ({size}, 28, 28) and {size}")
        if labels.max(initial=0) > 9:
            raise ValueError(f"{folder}: a {split} label is {labels.max()}, above 9")
        splits.append((np.ascontiguousarray(images[..., None]), labels.astype(np.int32)))
    return make_dataset(name, *splits, 10,
                        f"{source.title} (official IDX files; {source.split_sizes[0]:,} train / "
                        f"{source.split_sizes[1]:,} test 28x28 grey images, 10 classes, from "
                        f"{folder})")


# -------------------------------------------------------------------------------- digits


def load_digits() -> Dataset:
    """scikit-learn's 1,797 8x8 digits (offline) as uint8 ``rint(v * 255 / 16)``, split once
    for all seeds (stratified, 25 % test, ``random_state=0``), in the original order."""
    from sklearn import datasets, model_selection  # only this dataset needs scikit-learn

    bunch = datasets.load_digits()
    images = np.rint(np.asarray(bunch.images) * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = np.asarray(bunch.target, dtype=np.int32)
    train, test = map(np.sort, model_selection.train_test_split(
        np.arange(len(labels)), test_size=0.25, stratify=labels, random_state=0))
    return make_dataset(
        "digits", (images[train], labels[train]), (images[test], labels[test]), 10,
        f"scikit-learn digits ({len(labels):,} real 8x8 images; {len(train):,} train / "
        f"{len(test):,} test, fixed stratified split; offline stand-in for CIFAR-10)")


def load_dataset(name: str, *, data_dir: str | os.PathLike[str] | None = None,
                 download: bool = True) -> Dataset:
    """The dataset of a ``--dataset`` name, one of :data:`DATASET_NAMES`."""
    if name == "cifar10":
        return load_cifar10(data_dir, download=download)
    if name in IDX_SOURCES:
        return load_idx_dataset(name, data_dir, download=download)
    if name == "digits":
        return load_digits()
    raise ValueError(f"load_dataset: unknown dataset {name!r}; expected one of "
                     f"{', '.join(map(repr, DATASET_NAMES))}")


def epoch_batches(num_examples: int, batch_size: int, *, seed: int, epoch: int
                  ) -> Iterator[np.ndarray]:
    """An epoch's full batches of ``np.random.default_rng([seed, epoch]).permutation``
    (``num_examples // batch_size`` of them; jit sees one shape)."""
    permutation = np.random.default_rng([seed, epoch]).permutation(num_examples)
    stop = num_examples // batch_size * batch_size
    return (permutation[start:start + batch_size] for start in range(0, stop, batch_size))
