"""Datasets for the CIFAR-10 example: CIFAR-10, scikit-learn digits, and synthetic data.

Pure NumPy and the standard library; augmentation runs on device in the trainer, not here.

Three datasets, one entry point, :func:`load_dataset`:

* ``'cifar10'`` — the official *binary* distribution ``cifar-10-binary.tar.gz``: plain
  fixed-size records, read straight out of the tarball with :mod:`tarfile` (nothing is
  extracted to disk) or from an extracted ``cifar-10-batches-bin/`` folder. The "python"
  distribution of CIFAR-10 is pickles, which can run arbitrary code when loaded, so it is
  never used and nothing here unpickles anything.
* ``'digits'`` — scikit-learn's bundled digits (1,797 real 8x8 grey images, 10 classes):
  an offline stand-in for CIFAR-10 when the archive cannot be had.
* ``'synthetic'`` — small deterministic random images whose class sets a low-frequency
  mean pattern, so a smoke run can show the loss falling within seconds.

Every loader returns a :class:`Dataset` with uint8 NHWC images, int32 labels and the
per-channel mean and standard deviation of the training images (in [0, 1] units) for
normalisation. :func:`epoch_batches` gives the shuffled batch order of an epoch as a pure
function of ``(seed, epoch)``, so a resumed run sees the same batches.

Example:
  >>> from examples.cifar10 import data
  >>> dataset = data.load_dataset("synthetic", synthetic_train_size=40, synthetic_test_size=20)
  >>> dataset.train_images.shape, dataset.train_images.dtype, dataset.train_labels.dtype
  ((40, 32, 32, 3), dtype('uint8'), dtype('int32'))
  >>> [batch.shape for batch in data.epoch_batches(40, 16, seed=0, epoch=0)]
  [(16,), (16,)]
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.client
import math
import os
import pathlib
import posixpath
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

__all__ = [
    "CIFAR10_ARCHIVE_NAME",
    "CIFAR10_CLASS_NAMES",
    "CIFAR10_FOLDER_NAME",
    "CIFAR10_MD5",
    "CIFAR10_RECORD_BYTES",
    "CIFAR10_TEST_FILE",
    "CIFAR10_TRAIN_FILES",
    "CIFAR10_URL",
    "DATASET_NAMES",
    "DATA_DIR_ENV_VAR",
    "ChecksumError",
    "Dataset",
    "DatasetUnavailableError",
    "default_data_dir",
    "download_file",
    "epoch_batches",
    "file_md5",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_idx_dataset",
    "load_synthetic",
    "parse_cifar10_records",
    "parse_idx",
    "steps_per_epoch",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
"""Where the official binary distribution of CIFAR-10 is published."""
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
"""MD5 of ``cifar-10-binary.tar.gz`` as published on the CIFAR-10 page."""
CIFAR10_ARCHIVE_NAME = "cifar-10-binary.tar.gz"
CIFAR10_FOLDER_NAME = "cifar-10-batches-bin"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{index}.bin" for index in range(1, 6))
CIFAR10_TEST_FILE = "test_batch.bin"
CIFAR10_CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
CIFAR10_IMAGE_SIZE = 32
CIFAR10_CHANNELS = 3
CIFAR10_RECORD_BYTES = 1 + CIFAR10_IMAGE_SIZE * CIFAR10_IMAGE_SIZE * CIFAR10_CHANNELS
"""One record: a label byte (0-9), then 1024 red, 1024 green and 1024 blue bytes."""

DATASET_NAMES = ("cifar10", "fashion-mnist", "mnist", "digits", "synthetic")
DATA_DIR_ENV_VAR = "JAXPOOL_DATA_DIR"
"""Environment variable naming the CIFAR-10 folder; default ``~/.cache/jaxpool/cifar10``."""

DIGITS_TEST_FRACTION = 0.25
# The digits split is part of the dataset's definition, not of a run: it must not follow
# the training seed, or runs with different seeds would be scored on different images.
DIGITS_SPLIT_SEED = 0

_DOWNLOAD_CHUNK_BYTES = 1 << 20


class ChecksumError(ValueError):
    """A file's MD5 differs from the expected one (corrupt, truncated or wrong file)."""


class DatasetUnavailableError(FileNotFoundError):
    """The dataset is neither on disk nor downloadable; the message says what to place where."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test image classification dataset held in host memory.

    Images are uint8 in NHWC layout, ``(N, height, width, channels)``, exactly as stored;
    the trainer converts to float and normalises with ``mean`` and ``std`` on device.

    Attributes:
      name: the name :func:`load_dataset` knows it by: 'cifar10', 'digits' or 'synthetic'.
      train_images: uint8 array of shape ``(N_train, H, W, C)``.
      train_labels: int32 array of shape ``(N_train,)`` with values in ``[0, num_classes)``.
      test_images: uint8 array of shape ``(N_test, H, W, C)``.
      test_labels: int32 array of shape ``(N_test,)``.
      num_classes: number of classes.
      mean: float32 array of shape ``(C,)``: per-channel mean of ``train_images / 255``.
      std: float32 array of shape ``(C,)``: per-channel (population) standard deviation of
        ``train_images / 255``.
      description: one line for logs and reports saying what the data is.
      class_names: a name per class, ``len(class_names) == num_classes``.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    mean: np.ndarray
    std: np.ndarray
    description: str
    class_names: tuple[str, ...] = ()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of one image."""
        height, width, channels = self.train_images.shape[1:]
        return (height, width, channels)

    @property
    def num_train(self) -> int:
        """Number of training examples."""
        return int(self.train_images.shape[0])

    @property
    def num_test(self) -> int:
        """Number of test examples."""
        return int(self.test_images.shape[0])


# ----------------------------------------------------------------------------- helpers


def _as_int(value: object, name: str, minimum: int) -> int:
    """``value`` as a Python int ``>= minimum``, or a ValueError/TypeError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, but got {type(value).__name__}: {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, but got {value}")
    return int(value)


def _channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and population std of ``images / 255`` for uint8 NHWC images.

    Counting the 256 byte values per channel gives exact statistics without the 1.2 GB
    float64 copy that ``images.std`` would make for the CIFAR-10 training set.
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for channel in range(images.shape[-1]):
        counts = np.bincount(images[..., channel].ravel(), minlength=256).astype(np.float64)
        total = counts.sum()
        mean = float(counts @ values) / total
        variance = float(counts @ (values - mean) ** 2) / total
        means.append(mean)
        stds.append(variance**0.5)
    return np.asarray(means, np.float32), np.asarray(stds, np.float32)


def _make_dataset(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    class_names: Sequence[str],
    description: str,
) -> Dataset:
    """Builds a :class:`Dataset`, computing the normalisation statistics from ``train``."""
    mean, std = _channel_statistics(train[0])
    return Dataset(
        name=name,
        train_images=train[0],
        train_labels=train[1],
        test_images=test[0],
        test_labels=test[1],
        num_classes=len(class_names),
        mean=mean,
        std=std,
        description=description,
        class_names=tuple(class_names),
    )


# ------------------------------------------------------------------- files and download


def default_data_dir() -> pathlib.Path:
    """The folder CIFAR-10 is looked for and downloaded to when no ``data_dir`` is given.

    Returns:
      ``$JAXPOOL_DATA_DIR`` when that environment variable is set and not empty (the folder
      itself, which holds ``cifar-10-binary.tar.gz`` or ``cifar-10-batches-bin/``), else
      ``~/.cache/jaxpool/cifar10``; user-expanded and absolute.
    """
    configured = os.environ.get(DATA_DIR_ENV_VAR, "")
    folder = configured if configured else os.path.join("~", ".cache", "jaxpool", "cifar10")
    return pathlib.Path(os.path.abspath(os.path.expanduser(folder)))


def file_md5(path: str | os.PathLike[str]) -> str:
    """Hex MD5 digest of a file, read in 1 MiB chunks.

    Args:
      path: the file.

    Returns:
      The 32-character lowercase hex digest.

    Raises:
      OSError: if the file cannot be read.
    """
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_DOWNLOAD_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5(path: pathlib.Path, expected: str, actual: str) -> None:
    if actual != expected.lower():
        raise ChecksumError(
            f"MD5 mismatch for {path}: expected {expected.lower()}, got {actual}. "
            "The file is corrupt, truncated or not the expected file; delete it and "
            "download it again."
        )


def download_file(
    url: str,
    destination: str | os.PathLike[str],
    *,
    md5: str,
    timeout: float = 60.0,
) -> pathlib.Path:
    """Downloads ``url`` to ``destination`` atomically, checking its MD5 on the way.

    The bytes go to a uniquely named ``<destination>.part-<random>`` file in the same
    folder, hashed while streaming; only a complete file with the right length (when the
    server sent one) and the right MD5 is flushed, fsynced and renamed onto
    ``destination`` with :func:`os.replace`. A killed process therefore never leaves a
    file under the final name, and on any error (including ``KeyboardInterrupt``) the
    partial file is removed.

    Args:
      url: what to download; any scheme :func:`urllib.request.urlopen` handles
        (``https://``, ``http://``, ``file://``).
      destination: the final path; its folder is created if needed.
      md5: expected hex MD5 of the complete file.
      timeout: seconds to wait on the connection for each network operation.

    Returns:
      ``destination`` as an absolute path.

    Raises:
      ChecksumError: the downloaded bytes have a different MD5 (nothing is kept).
      ConnectionError: the transfer ended before ``Content-Length`` bytes arrived.
      urllib.error.URLError: the URL could not be opened (e.g. no network).
      OSError: any other failure to read or write.
    """
    final_path = pathlib.Path(os.path.abspath(os.fspath(destination)))
    final_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary_name = tempfile.mkstemp(
        prefix=f"{final_path.name}.part-", dir=final_path.parent
    )
    temporary_path = pathlib.Path(temporary_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        received = 0
        with os.fdopen(descriptor, "wb") as output:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                announced = response.headers.get("Content-Length")
                for chunk in iter(lambda: response.read(_DOWNLOAD_CHUNK_BYTES), b""):
                    digest.update(chunk)
                    output.write(chunk)
                    received += len(chunk)
            # http.client returns a short body without complaint when the server closes
            # early; the announced length tells a truncated transfer apart.
            if announced is not None and announced.isdigit() and received != int(announced):
                raise ConnectionError(
                    f"download of {url} ended after {received} of {announced} bytes"
                )
            _check_md5(final_path, md5, digest.hexdigest())
            output.flush()
            os.fchmod(output.fileno(), 0o644)  # mkstemp's 0600 would hide a shared cache
            os.fsync(output.fileno())
        os.replace(temporary_path, final_path)
    except BaseException:
        temporary_path.unlink(missing_ok=True)
        raise
    _fsync_directory(final_path.parent)
    return final_path


def _fsync_directory(folder: pathlib.Path) -> None:
    """Makes a rename in ``folder`` durable, where the platform allows opening folders."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# ------------------------------------------------------------------------------ CIFAR-10


def parse_cifar10_records(data: bytes, *, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Decodes one file of CIFAR-10's binary distribution.

    Each record is ``3073`` bytes: the label (0-9), then the 32x32 red plane, green plane
    and blue plane, each row-major. Planes are moved last to give NHWC.

    Args:
      data: the file's bytes: ``N >= 1`` whole records.
      source: the file's name or path, for error messages.

    Returns:
      ``(images, labels)``: uint8 ``(N, 32, 32, 3)`` and int32 ``(N,)``.

    Raises:
      ValueError: if ``data`` is empty or not a whole number of records (a truncated
        record), or a label byte is greater than 9.
    """
    size = len(data)
    if size == 0:
        raise ValueError(f"{source}: the file is empty; expected records of "
                         f"{CIFAR10_RECORD_BYTES} bytes")
    if size % CIFAR10_RECORD_BYTES:
        raise ValueError(
            f"{source}: truncated record: the file has {size} bytes, which is not a multiple "
            f"of the {CIFAR10_RECORD_BYTES}-byte record (1 label byte + 3072 pixel bytes); "
            f"{size // CIFAR10_RECORD_BYTES} whole records and {size % CIFAR10_RECORD_BYTES} "
            "bytes left over"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR10_RECORD_BYTES)
    labels = records[:, 0]
    out_of_range = np.flatnonzero(labels >= len(CIFAR10_CLASS_NAMES))
    if out_of_range.size:
        index = int(out_of_range[0])
        raise ValueError(
            f"{source}: record {index} has label {int(labels[index])}, but CIFAR-10 labels "
            f"are 0-{len(CIFAR10_CLASS_NAMES) - 1} ({out_of_range.size} bad record(s) in all)"
        )
    planes = records[:, 1:].reshape(
        -1, CIFAR10_CHANNELS, CIFAR10_IMAGE_SIZE, CIFAR10_IMAGE_SIZE
    )
    images = np.ascontiguousarray(planes.transpose(0, 2, 3, 1))
    return images, labels.astype(np.int32)


def _concatenate_split(
    contents: Mapping[str, bytes], names: Sequence[str], location: str
) -> tuple[np.ndarray, np.ndarray]:
    parts = [parse_cifar10_records(contents[name], source=f"{location}/{name}")
             for name in names]
    return (np.concatenate([images for images, _ in parts]),
            np.concatenate([labels for _, labels in parts]))


def _read_folder(folder: pathlib.Path, names: Sequence[str]) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names}


def _read_tarball(path: pathlib.Path, names: Sequence[str]) -> dict[str, bytes]:
    """Reads ``cifar-10-batches-bin/<name>`` members out of the tarball without extracting.

    Members are read in archive order in one pass, since seeking backwards in a gzip
    stream means decompressing from the start again. Nothing is written to disk, so
    member paths (``..``, absolute names, links) cannot escape anywhere.
    """
    wanted = {posixpath.join(CIFAR10_FOLDER_NAME, name): name for name in names}
    contents: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            for member in archive:
                member_name = member.name[2:] if member.name.startswith("./") else member.name
                name = wanted.get(member_name)
                if name is None or name in contents:
                    continue
                if not member.isfile():
                    raise ValueError(
                        f"{path}: member {member.name!r} is not a regular file "
                        "(links are not followed)"
                    )
                stream = archive.extractfile(member)
                if stream is None:  # pragma: no cover - isfile() members always have data
                    raise ValueError(f"{path}: member {member.name!r} has no data")
                with stream:
                    contents[name] = stream.read()
    except (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as error:
        raise ValueError(f"{path}: not a readable .tar.gz archive: {error}") from error
    missing = [member for member, name in wanted.items() if name not in contents]
    if missing:
        raise ValueError(f"{path}: the archive lacks {', '.join(missing)}")
    return contents


def _unavailable_message(folder: pathlib.Path, url: str, reason: str) -> str:
    return (
        f"CIFAR-10 is not available: {reason}.\n"
        f"Place the official binary archive '{CIFAR10_ARCHIVE_NAME}' "
        f"(MD5 {CIFAR10_MD5}) in\n"
        f"  {folder}\n"
        f"(or its extracted folder '{CIFAR10_FOLDER_NAME}/' there; set ${DATA_DIR_ENV_VAR} "
        "or data_dir to use another folder), downloading it from\n"
        f"  {url}\n"
        "or run with --dataset digits (scikit-learn's 1,797 real 8x8 digit images, bundled "
        "offline) instead."
    )


def load_cifar10(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    url: str = CIFAR10_URL,
    md5: str | None = CIFAR10_MD5,
    timeout: float = 60.0,
) -> Dataset:
    """Loads CIFAR-10 from its official binary distribution (never from pickles).

    Looks in ``data_dir``, in this order, for:

    1. the extracted folder ``cifar-10-batches-bin/`` holding ``data_batch_1.bin`` ...
       ``data_batch_5.bin`` and ``test_batch.bin``;
    2. those six ``.bin`` files directly in ``data_dir``;
    3. the tarball ``cifar-10-binary.tar.gz``, whose MD5 is checked against ``md5`` and
       whose members are read without extracting anything;
    4. if ``download``, the tarball fetched from ``url`` with :func:`download_file`.

    Every file must hold at least one whole 3073-byte record with labels 0-9; the full
    dataset has 50,000 training and 10,000 test images.

    Args:
      data_dir: the folder to look in and download to; default :func:`default_data_dir`.
      download: whether to download the tarball when no local copy exists.
      url: where to download from.
      md5: expected MD5 of the tarball, local or downloaded; default the official one.
        ``None`` skips the check of a local tarball and refuses to download, since an
        unverified download could be anything.
      timeout: seconds for each network operation of the download.

    Returns:
      A :class:`Dataset` named 'cifar10': uint8 ``(N, 32, 32, 3)`` images, int32 labels,
      10 classes.

    Raises:
      DatasetUnavailableError: no local copy, and ``download`` is false or the download
        failed (no network); the message names the file, the folder and the URL.
      ChecksumError: the local or downloaded tarball has the wrong MD5.
      ValueError: a file is malformed (truncated record, label out of range, missing
        archive member), or a download is needed while ``md5`` is ``None``.
    """
    folder = (pathlib.Path(os.path.abspath(os.path.expanduser(os.fspath(data_dir))))
              if data_dir is not None else default_data_dir())
    names = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)

    contents: dict[str, bytes] | None = None
    location = ""
    incomplete_folders = []
    for candidate in (folder / CIFAR10_FOLDER_NAME, folder):
        present = [name for name in names if (candidate / name).is_file()]
        if len(present) == len(names):
            contents, location = _read_folder(candidate, names), str(candidate)
            break
        if present:
            missing = sorted(set(names) - set(present))
            incomplete_folders.append(f"{candidate} lacks {', '.join(missing)}")

    if contents is None:
        archive = folder / CIFAR10_ARCHIVE_NAME
        if archive.is_file():
            if md5 is not None:
                _check_md5(archive, md5, file_md5(archive))
        else:
            reason = f"neither '{CIFAR10_FOLDER_NAME}/' nor '{CIFAR10_ARCHIVE_NAME}' is in {folder}"
            if incomplete_folders:
                reason += f" ({'; '.join(incomplete_folders)})"
            if not download:
                raise DatasetUnavailableError(
                    _unavailable_message(folder, url, reason + ", and download=False"))
            if md5 is None:
                raise ValueError(
                    "load_cifar10: md5=None only skips checking a local tarball; a download "
                    f"needs the expected MD5 (the official archive's is {CIFAR10_MD5})"
                )
            try:
                download_file(url, archive, md5=md5, timeout=timeout)
            except (OSError, http.client.HTTPException) as error:
                raise DatasetUnavailableError(_unavailable_message(
                    folder, url, f"{reason}, and downloading it failed: {error}")) from error
        contents, location = _read_tarball(archive, names), str(archive)

    train = _concatenate_split(contents, CIFAR10_TRAIN_FILES, location)
    test = _concatenate_split(contents, (CIFAR10_TEST_FILE,), location)
    return _make_dataset(
        "cifar10", train, test,
        class_names=CIFAR10_CLASS_NAMES,
        description=(
            f"CIFAR-10 (official binary distribution; {len(train[1]):,} train / "
            f"{len(test[1]):,} test 32x32 RGB images, 10 classes, from {location})"
        ),
    )


# --------------------------------------------------------------- Fashion-MNIST and MNIST


@dataclasses.dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset (MNIST's file format) is published and how to check it.

    Attributes:
      title: the dataset's name in messages.
      folder_name: the folder under the cache (and under ``$JAXPOOL_DATA_DIR``).
      url: the folder of the official gzipped files.
      files: per split part, ``(file name without .gz, MD5 of the uncompressed file,
        MD5 of the official .gz)``; the uncompressed MD5 checks a file gzipped or not,
        whoever compressed it (Debian's .gz files differ from the official ones byte for
        byte, but not in content).
      class_names: a name per label.
      system_folders: folders a system package installs the files into.
      install_hint: how to get the files offline, for the error message.
    """

    title: str
    folder_name: str
    url: str
    files: Mapping[str, tuple[str, str, str]]
    class_names: tuple[str, ...]
    system_folders: tuple[str, ...] = ()
    install_hint: str = ""


IDX_SPLIT_SIZES = {"train": 60_000, "test": 10_000}
IDX_IMAGE_SIZE = 28
IDX_SOURCES = {
    "fashion-mnist": IdxSource(
        title="Fashion-MNIST",
        folder_name="fashion-mnist",
        url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        files={
            "train_images": ("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                             "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            "train_labels": ("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9",
                             "25c81989df183df01b3e8a0aad5dffbe"),
            "test_images": ("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a",
                            "bef4ecab320f06d8554ea6380940ec79"),
            "test_labels": ("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965",
                            "bb300cfdad3c16e7a12a480ee83cd310"),
        },
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                     "Shirt", "Sneaker", "Bag", "Ankle boot"),
        system_folders=("/usr/share/datasets/fashion-mnist",),
        install_hint=(
            "on Debian or Ubuntu, 'sudo apt-get install dataset-fashion-mnist' installs them "
            "into /usr/share/datasets/fashion-mnist (without root: 'apt-get download "
            "dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb DIR', then "
            "--data-dir DIR/usr/share/datasets/fashion-mnist)"
        ),
    ),
    "mnist": IdxSource(
        title="MNIST",
        folder_name="mnist",
        url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        files={
            "train_images": ("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb",
                             "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            "train_labels": ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624",
                             "d53e105ee54ea40749a09fcbcd1e9432"),
            "test_images": ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea",
                            "9fb629c4189551a2d022fa330f9573f3"),
            "test_labels": ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637",
                            "ec29112dd5afa0611ce80d1b7f02629c"),
        },
        class_names=tuple(str(digit) for digit in range(10)),
    ),
}


def parse_idx(data: bytes, *, source: str, ndim: int) -> np.ndarray:
    """Decodes an IDX file of unsigned bytes (MNIST's format): a 4-byte magic number
    ``0x0000 08 <ndim>``, ``ndim`` big-endian uint32 sizes, then the values row-major.

    Raises:
      ValueError: if the magic number, the rank or the length is wrong.
    """
    header = 4 + 4 * ndim
    if len(data) < header or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise ValueError(
            f"{source}: not an IDX file of unsigned bytes with {ndim} dimension(s) "
            f"(magic number {data[:4].hex() or 'missing'}, expected 000008{ndim:02x})"
        )
    shape = tuple(int(size) for size in np.frombuffer(data, ">u4", ndim, offset=4))
    if len(data) != header + math.prod(shape):
        raise ValueError(
            f"{source}: the header announces shape {shape} ({math.prod(shape)} values), but "
            f"the file holds {len(data) - header} bytes after its {header}-byte header"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _idx_candidates(source: IdxSource, data_dir) -> list[pathlib.Path]:
    if data_dir is not None:
        return [pathlib.Path(os.path.abspath(os.path.expanduser(os.fspath(data_dir))))]
    folders = []
    configured = os.environ.get(DATA_DIR_ENV_VAR, "")
    if configured:
        root = pathlib.Path(os.path.abspath(os.path.expanduser(configured)))
        folders += [root, root / source.folder_name]
    folders.append(_idx_cache(source))
    return folders + [pathlib.Path(folder) for folder in source.system_folders]


def _idx_cache(source: IdxSource) -> pathlib.Path:
    return pathlib.Path(os.path.abspath(os.path.expanduser(
        os.path.join("~", ".cache", "jaxpool", source.folder_name))))


def _read_idx_file(folder: pathlib.Path, name: str) -> tuple[bytes, pathlib.Path] | None:
    """The uncompressed bytes of ``name`` or ``name.gz`` in ``folder``, or None."""
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            raw = path.read_bytes()
            if raw[:2] == b"\x1f\x8b":  # gzip's magic number, whatever the file's name
                try:
                    raw = gzip.decompress(raw)
                except (OSError, EOFError, zlib.error) as error:
                    raise ValueError(f"{path}: not a readable gzip file: {error}") from error
            return raw, path
    return None


def load_idx_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    check_checksums: bool = True,
    timeout: float = 60.0,
) -> Dataset:
    """Loads Fashion-MNIST or MNIST from the four official IDX files.

    The files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each gzipped or not) are
    looked for in ``data_dir`` alone when it is given; else in ``$JAXPOOL_DATA_DIR`` (and
    its ``<name>/`` subfolder), the cache ``~/.cache/jaxpool/<name>`` and, for
    Fashion-MNIST, Debian's ``/usr/share/datasets/fashion-mnist``. The first folder that
    holds all four is used. If none does and ``download`` is true, the official .gz
    files are downloaded into ``data_dir`` or the cache, each to a temporary name,
    checked against its official MD5 and renamed.

    Args:
      name: 'fashion-mnist' or 'mnist'.
      data_dir: the one folder to look in (and download to).
      download: whether to download missing files.
      check_checksums: check each file's content against the official MD5 and the split
        sizes (60,000 / 10,000); ``False`` accepts any well-formed IDX files (tests).
      timeout: seconds for each network operation of a download.

    Returns:
      A :class:`Dataset`: uint8 ``(N, 28, 28, 1)`` images (one grey channel), int32
      labels, 10 classes.

    Raises:
      DatasetUnavailableError: the files are nowhere and cannot be downloaded; the
        message names both ways to get them.
      ChecksumError: a file's content is not the official one.
      ValueError: a file is malformed, or images and labels disagree.
    """
    if name not in IDX_SOURCES:
        raise ValueError(f"load_idx_dataset: unknown dataset {name!r}; expected one of "
                         f"{', '.join(map(repr, IDX_SOURCES))}")
    source = IDX_SOURCES[name]
    folders = _idx_candidates(source, data_dir)
    contents: dict[str, tuple[bytes, pathlib.Path]] | None = None
    for folder in folders:
        found = {part: _read_idx_file(folder, file_name)
                 for part, (file_name, _, _) in source.files.items()}
        if all(found.values()):
            contents = {part: entry for part, entry in found.items() if entry is not None}
            break
    if contents is None:
        target = folders[0] if data_dir is not None else _idx_cache(source)
        names = ", ".join(f"{file_name}.gz" for file_name, _, _ in source.files.values())
        reason = f"{names} (gzipped or not) are not all in {' or '.join(map(str, folders))}"
        error: BaseException | None = None
        if download:
            try:
                for file_name, _, gz_md5 in source.files.values():
                    if _read_idx_file(target, file_name) is None:
                        download_file(source.url + file_name + ".gz", target / f"{file_name}.gz",
                                      md5=gz_md5, timeout=timeout)
                return load_idx_dataset(name, target, download=False,
                                        check_checksums=check_checksums)
            except (OSError, http.client.HTTPException) as caught:
                error = caught
        ways = [f"download them from {source.url} into {target} (with a network this "
                "loader does it itself)"]
        if source.install_hint:
            ways.append(source.install_hint)
        raise DatasetUnavailableError(
            f"{source.title} is not available: {reason}"
            + (f", and downloading failed: {error}" if error else ", and download=False")
            + ".\nTo get the files, " + "; or ".join(ways) + "; or pass --data-dir with the "
            "folder that holds them."
        ) from error

    arrays = {}
    for part, (raw, path) in contents.items():
        file_name, raw_md5, _ = source.files[part]
        if check_checksums:
            actual = hashlib.md5(raw, usedforsecurity=False).hexdigest()
            if actual != raw_md5:
                raise ChecksumError(
                    f"{path}: the content's MD5 is {actual}, but the official {file_name} has "
                    f"{raw_md5}; the file is corrupt, truncated or another dataset's"
                )
        arrays[part] = parse_idx(raw, source=str(path), ndim=3 if part.endswith("images") else 1)
    splits = []
    for split, size in IDX_SPLIT_SIZES.items():
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        where = contents[f"{split}_images"][1]
        if images.shape[1:] != (IDX_IMAGE_SIZE, IDX_IMAGE_SIZE):
            raise ValueError(f"{where}: images of shape {images.shape[1:]}, expected 28x28")
        if len(images) != len(labels) or (check_checksums and len(images) != size):
            raise ValueError(
                f"{where}: {len(images)} images and {len(labels)} labels in the {split} split"
                + (f"; the official split has {size} of each" if check_checksums else "")
            )
        if labels.size and labels.max() >= len(source.class_names):
            raise ValueError(f"{contents[f'{split}_labels'][1]}: label {labels.max()} is out of "
                             f"range 0-{len(source.class_names) - 1}")
        splits.append((np.ascontiguousarray(images[..., None]), labels.astype(np.int32)))
    location = contents["train_images"][1].parent
    return _make_dataset(
        name, splits[0], splits[1], class_names=source.class_names,
        description=(f"{source.title} (official IDX files; {len(splits[0][1]):,} train / "
                     f"{len(splits[1][1]):,} test 28x28 grey images, 10 classes, from "
                     f"{location})"),
    )


# -------------------------------------------------------------------------------- digits


def load_digits() -> Dataset:
    """Loads scikit-learn's digits as an offline stand-in for CIFAR-10.

    The 1,797 real 8x8 grey images (values 0-16) ship inside the scikit-learn wheel, so
    this works without a network. Pixels are rescaled to uint8 with
    ``rint(v * 255 / 16)`` (0 -> 0, 8 -> 128, 16 -> 255). The split is fixed: a stratified
    25 % test split with ``random_state=0``, independent of any training seed, so runs
    with different seeds are scored on the same images. Both splits keep the original
    order of the images.

    Returns:
      A :class:`Dataset` named 'digits': uint8 images of shape ``(N, 8, 8, 1)`` with
      ``N_train + N_test == 1797`` (1,347 / 450), int32 labels, 10 classes.

    Raises:
      ModuleNotFoundError: if scikit-learn is not installed.
    """
    # Imported here so that CIFAR-10 and synthetic data do not need scikit-learn.
    from sklearn import datasets, model_selection

    bunch = datasets.load_digits()
    images = np.rint(np.asarray(bunch.images) * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = np.asarray(bunch.target, dtype=np.int32)
    train_index, test_index = model_selection.train_test_split(
        np.arange(len(labels)),
        test_size=DIGITS_TEST_FRACTION,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    train_index, test_index = np.sort(train_index), np.sort(test_index)
    return _make_dataset(
        "digits",
        (images[train_index], labels[train_index]),
        (images[test_index], labels[test_index]),
        class_names=tuple(str(digit) for digit in range(10)),
        description=(
            f"scikit-learn digits ({len(labels):,} real 8x8 images; "
            f"{len(train_index):,} train / {len(test_index):,} test, fixed stratified split; "
            "offline stand-in for CIFAR-10)"
        ),
    )


# ----------------------------------------------------------------------------- synthetic


def load_synthetic(
    *,
    image_size: int = 32,
    channels: int = 3,
    num_classes: int = 10,
    train_size: int = 512,
    test_size: int = 128,
    seed: int = 0,
) -> Dataset:
    """Makes a small learnable random dataset for smoke runs.

    Each class has a random 4x4 pattern per channel, upsampled (nearest) to the image
    size; an image is ``128 + 48 * pattern + 32 * noise`` with standard normal pattern
    and noise, rounded and clipped to uint8. Classes are balanced and shuffled. The
    patterns, the training set and the test set come from independent streams of
    ``seed``, so changing one split's size does not change the other split.

    Args:
      image_size: height and width, >= 1.
      channels: channels, >= 1.
      num_classes: classes, >= 2.
      train_size: training examples, >= 1.
      test_size: test examples, >= 1.
      seed: non-negative seed; the same arguments always give the same arrays.

    Returns:
      A :class:`Dataset` named 'synthetic': uint8 ``(N, image_size, image_size, channels)``
      images and int32 labels.

    Raises:
      TypeError: if an argument is not an int.
      ValueError: if an argument is below its minimum.
    """
    image_size = _as_int(image_size, "image_size", 1)
    channels = _as_int(channels, "channels", 1)
    num_classes = _as_int(num_classes, "num_classes", 2)
    train_size = _as_int(train_size, "train_size", 1)
    test_size = _as_int(test_size, "test_size", 1)
    seed = _as_int(seed, "seed", 0)

    pattern_rng, train_rng, test_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3)
    )
    coarse = pattern_rng.standard_normal((num_classes, 4, 4, channels))
    upsample = (np.arange(image_size) * 4) // image_size
    patterns = coarse[:, upsample][:, :, upsample]

    def sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.permutation(np.arange(size) % num_classes).astype(np.int32)
        noise = rng.standard_normal((size, image_size, image_size, channels))
        pixels = 128.0 + 48.0 * patterns[labels] + 32.0 * noise
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8), labels

    return _make_dataset(
        "synthetic",
        sample(train_rng, train_size),
        sample(test_rng, test_size),
        class_names=tuple(f"class_{index}" for index in range(num_classes)),
        description=(
            f"synthetic ({train_size:,} train / {test_size:,} test random "
            f"{image_size}x{image_size}x{channels} images, {num_classes} classes, "
            f"seed {seed}; for smoke runs only)"
        ),
    )


# ---------------------------------------------------------------------------- dispatcher


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    url: str = CIFAR10_URL,
    md5: str | None = CIFAR10_MD5,
    synthetic_seed: int = 0,
    synthetic_train_size: int = 512,
    synthetic_test_size: int = 128,
) -> Dataset:
    """Loads a dataset by the name given to ``--dataset``.

    Args:
      name: 'cifar10' (:func:`load_cifar10`), 'digits' (:func:`load_digits`) or
        'synthetic' (:func:`load_synthetic`).
      data_dir: CIFAR-10's folder; default :func:`default_data_dir`. Ignored by the others.
      download: whether CIFAR-10 may be downloaded when missing.
      url: CIFAR-10's download URL.
      md5: expected MD5 of CIFAR-10's tarball (``None``: do not check a local one).
      synthetic_seed: seed of the synthetic data (not the training seed).
      synthetic_train_size: synthetic training examples.
      synthetic_test_size: synthetic test examples.

    Returns:
      The :class:`Dataset`.

    Raises:
      ValueError: if ``name`` is not one of :data:`DATASET_NAMES`; see also the loaders.

    Example:
      >>> dataset = load_dataset("digits")
      >>> dataset.train_images.shape[1:], dataset.num_train + dataset.num_test
      ((8, 8, 1), 1797)
    """
    if name == "cifar10":
        return load_cifar10(data_dir, download=download, url=url, md5=md5)
    if name in IDX_SOURCES:
        return load_idx_dataset(name, data_dir, download=download)
    if name == "digits":
        return load_digits()
    if name == "synthetic":
        return load_synthetic(
            seed=synthetic_seed, train_size=synthetic_train_size, test_size=synthetic_test_size
        )
    raise ValueError(
        f"load_dataset: unknown dataset {name!r}; expected one of "
        f"{', '.join(repr(known) for known in DATASET_NAMES)}"
    )


# ------------------------------------------------------------------------------ batching


def steps_per_epoch(num_examples: int, batch_size: int, *, drop_remainder: bool = True) -> int:
    """Number of batches :func:`epoch_batches` yields per epoch.

    Args:
      num_examples: examples in the split, >= 1.
      batch_size: examples per batch, >= 1.
      drop_remainder: whether a last, smaller batch is dropped.

    Returns:
      ``num_examples // batch_size`` if ``drop_remainder``, else
      ``ceil(num_examples / batch_size)``.

    Raises:
      TypeError: if a count is not an int.
      ValueError: if a count is below 1.

    Example:
      >>> steps_per_epoch(10, 4), steps_per_epoch(10, 4, drop_remainder=False)
      (2, 3)
    """
    num_examples = _as_int(num_examples, "num_examples", 1)
    batch_size = _as_int(batch_size, "batch_size", 1)
    if drop_remainder:
        return num_examples // batch_size
    return -(-num_examples // batch_size)


def epoch_batches(
    num_examples: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    drop_remainder: bool = True,
) -> Iterator[np.ndarray]:
    """Index batches of one shuffled epoch, a pure function of ``(seed, epoch)``.

    The permutation comes from ``np.random.default_rng([seed, epoch])``, so a run resumed
    at epoch ``e`` sees exactly the batches an uninterrupted run would (skip the batches
    already done within the epoch), and every epoch is shuffled differently. Arguments
    are checked when called, not when iteration starts.

    Args:
      num_examples: examples in the split, >= 1.
      batch_size: examples per batch, >= 1; with ``drop_remainder`` at most
        ``num_examples``.
      seed: the run's non-negative seed.
      epoch: the non-negative epoch number.
      drop_remainder: whether to drop the last batch when it is smaller than
        ``batch_size`` (keeps one static batch shape, so jit compiles once).

    Returns:
      An iterator over int64 index arrays of shape ``(batch_size,)`` (the last one
      shorter when ``drop_remainder`` is false), :func:`steps_per_epoch` of them; each
      index appears at most once per epoch, and exactly once without ``drop_remainder``.

    Raises:
      TypeError: if an argument is not an int.
      ValueError: if an argument is out of range, or ``drop_remainder`` is true and
        ``batch_size > num_examples`` (the epoch would have no batch at all).

    Example:
      >>> batches = list(epoch_batches(10, 4, seed=0, epoch=3))
      >>> len(batches), batches[0].shape
      (2, (4,))
      >>> all((a == b).all() for a, b in zip(batches, epoch_batches(10, 4, seed=0, epoch=3)))
      True
    """
    num_examples = _as_int(num_examples, "num_examples", 1)
    batch_size = _as_int(batch_size, "batch_size", 1)
    seed = _as_int(seed, "seed", 0)
    epoch = _as_int(epoch, "epoch", 0)
    if drop_remainder and batch_size > num_examples:
        raise ValueError(
            f"epoch_batches: batch_size={batch_size} exceeds num_examples={num_examples}, so "
            "drop_remainder=True leaves no batch; use a smaller batch_size or "
            "drop_remainder=False"
        )
    permutation = np.random.default_rng([seed, epoch]).permutation(num_examples)
    stop = steps_per_epoch(num_examples, batch_size, drop_remainder=drop_remainder) * batch_size
    return (permutation[start:start + batch_size] for start in range(0, stop, batch_size))
