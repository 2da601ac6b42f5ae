"""Tests for examples/cifar10/data.py: CIFAR-10 binary reader, download, digits, synthetic.

Everything runs offline: CIFAR-10 is replaced by tiny tarballs in the official binary
layout built here, served through ``file://`` URLs and a localhost HTTP server.
"""

from __future__ import annotations

import doctest
import hashlib
import http.server
import io
import os
import pathlib
import subprocess
import sys
import tarfile
import threading
import time
import typing
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from examples.cifar10 import data
from tests.helpers import REPO

RECORD = data.CIFAR10_RECORD_BYTES
TRAIN_RECORDS_PER_FILE = 4
TEST_RECORDS = 6


# ----------------------------------------------------------------------------- builders


def encode_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    """NHWC uint8 images and labels -> CIFAR-10 binary records (label, R, G, B planes)."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels.astype(np.uint8)[:, None], planes], axis=1).tobytes()


def md5_of(payload: bytes) -> str:
    return hashlib.md5(payload, usedforsecurity=False).hexdigest()


def build_tarball(
    files: dict[str, bytes],
    *,
    folder: str = data.CIFAR10_FOLDER_NAME,
    symlinks: dict[str, str] | None = None,
) -> bytes:
    """A .tar.gz in memory with ``folder/<name>`` members, like the official archive."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        directory = tarfile.TarInfo(folder)
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o755
        archive.addfile(directory)
        members = {"batches.meta.txt": b"\n".join(
            name.encode() for name in data.CIFAR10_CLASS_NAMES), **files}
        for name, payload in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(payload)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(payload))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


class TinyCifar:
    """5 training files of 4 records and a test file of 6, with known pixels and labels."""

    def __init__(self) -> None:
        rng = np.random.default_rng(1234)
        count = len(data.CIFAR10_TRAIN_FILES) * TRAIN_RECORDS_PER_FILE
        self.train_images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
        self.train_labels = (np.arange(count) % 10).astype(np.int32)
        self.test_images = rng.integers(0, 256, (TEST_RECORDS, 32, 32, 3), dtype=np.uint8)
        self.test_labels = np.array([9, 0, 5, 3, 3, 1], dtype=np.int32)
        self.files = {}
        for index, name in enumerate(data.CIFAR10_TRAIN_FILES):
            part = slice(index * TRAIN_RECORDS_PER_FILE, (index + 1) * TRAIN_RECORDS_PER_FILE)
            self.files[name] = encode_records(self.train_images[part], self.train_labels[part])
        self.files[data.CIFAR10_TEST_FILE] = encode_records(self.test_images, self.test_labels)
        self.tarball = build_tarball(self.files)
        self.md5 = md5_of(self.tarball)

    def write_tarball(self, folder: pathlib.Path, payload: bytes | None = None) -> pathlib.Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / data.CIFAR10_ARCHIVE_NAME
        path.write_bytes(self.tarball if payload is None else payload)
        return path

    def write_folder(self, folder: pathlib.Path, **replaced: bytes) -> pathlib.Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, payload in {**self.files, **replaced}.items():
            (folder / name).write_bytes(payload)
        return folder

    def assert_matches(self, dataset: data.Dataset) -> None:
        assert dataset.name == "cifar10"
        assert dataset.train_images.dtype == np.uint8 and dataset.test_images.dtype == np.uint8
        assert dataset.train_labels.dtype == np.int32 and dataset.test_labels.dtype == np.int32
        np.testing.assert_array_equal(dataset.train_images, self.train_images)
        np.testing.assert_array_equal(dataset.train_labels, self.train_labels)
        np.testing.assert_array_equal(dataset.test_images, self.test_images)
        np.testing.assert_array_equal(dataset.test_labels, self.test_labels)
        assert dataset.num_classes == 10 and dataset.class_names == data.CIFAR10_CLASS_NAMES


@pytest.fixture(scope="module")
def tiny() -> TinyCifar:
    return TinyCifar()


def leftovers(folder: pathlib.Path) -> list[str]:
    """Names in ``folder`` left by a download: the final archive or any ``.part`` file."""
    if not folder.exists():
        return []
    return sorted(path.name for path in folder.iterdir()
                  if path.name.startswith(data.CIFAR10_ARCHIVE_NAME))


# ---------------------------------------------------------------------- local HTTP server


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """Starts localhost HTTP servers; ``serve(payload, send=k)`` sends only k bytes.

    The server always announces ``len(payload)`` as Content-Length; with ``hold`` it sends
    ``send`` bytes and then waits for the test to finish before closing the connection.
    """
    servers: list[http.server.ThreadingHTTPServer] = []
    release = threading.Event()

    def start(payload: bytes, *, send: int | None = None, hold: bool = False) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/gzip")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[:send])
                    self.wfile.flush()
                    if hold:
                        release.wait(timeout=30)
                except OSError:  # the client went away; nothing to report
                    pass
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}/{data.CIFAR10_ARCHIVE_NAME}"

    yield start
    release.set()
    for server in servers:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------ record format


def test_parse_puts_rgb_planes_last_in_row_major_order() -> None:
    record = bytearray(RECORD)
    record[0] = 7
    row, column = 1, 2
    record[1 + row * 32 + column] = 200  # red plane
    record[1 + 1024 + row * 32 + column] = 100  # green plane
    record[1 + 2048 + row * 32 + column] = 50  # blue plane
    record[1 + column * 32 + row] = 11  # red at the transposed position (2, 1)
    second = bytearray(RECORD)
    second[0] = 0
    second[1 + 2048 + 31 * 32 + 31] = 255  # blue, bottom-right corner

    images, labels = data.parse_cifar10_records(bytes(record + second), source="x.bin")

    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    assert images.flags.c_contiguous
    assert labels.tolist() == [7, 0] and labels.dtype == np.int32
    assert images[0, 1, 2].tolist() == [200, 100, 50]
    assert images[0, 2, 1].tolist() == [11, 0, 0]
    assert images[1, 31, 31].tolist() == [0, 0, 255]
    assert int(images.astype(np.int64).sum()) == 200 + 100 + 50 + 11 + 255


@pytest.mark.parametrize("size", [1, RECORD - 1, RECORD + 1, 3 * RECORD - 5])
def test_parse_rejects_truncated_record(size: int) -> None:
    with pytest.raises(ValueError, match=rf"broken\.bin: truncated record: .* {size} bytes"):
        data.parse_cifar10_records(bytes(size), source="broken.bin")


def test_parse_rejects_empty_file() -> None:
    with pytest.raises(ValueError, match=r"empty\.bin: the file is empty"):
        data.parse_cifar10_records(b"", source="empty.bin")


@pytest.mark.parametrize("label", [10, 255])
def test_parse_rejects_label_out_of_range(label: int) -> None:
    records = bytearray(3 * RECORD)
    records[2 * RECORD] = label
    with pytest.raises(ValueError, match=rf"b\.bin: record 2 has label {label}.* 0-9"):
        data.parse_cifar10_records(bytes(records), source="b.bin")


# ------------------------------------------------------------------------ local copies


def test_loads_tarball_without_extracting(tiny: TinyCifar, tmp_path: pathlib.Path) -> None:
    tiny.write_tarball(tmp_path)

    dataset = data.load_cifar10(tmp_path, download=False, md5=tiny.md5)

    tiny.assert_matches(dataset)
    assert sorted(path.name for path in tmp_path.iterdir()) == [data.CIFAR10_ARCHIVE_NAME]
    assert "official binary distribution" in dataset.description


@pytest.mark.parametrize("subfolder", [data.CIFAR10_FOLDER_NAME, ""])
def test_loads_extracted_folder(tiny: TinyCifar, tmp_path: pathlib.Path, subfolder: str) -> None:
    tiny.write_folder(tmp_path / subfolder)

    dataset = data.load_cifar10(tmp_path, download=False)

    tiny.assert_matches(dataset)


def test_accepts_dot_slash_member_names(tiny: TinyCifar, tmp_path: pathlib.Path) -> None:
    payload = build_tarball(tiny.files, folder=f"./{data.CIFAR10_FOLDER_NAME}")
    tiny.write_tarball(tmp_path, payload)

    tiny.assert_matches(data.load_cifar10(tmp_path, download=False, md5=md5_of(payload)))


def test_statistics_are_per_channel_train_mean_and_std(
    tiny: TinyCifar, tmp_path: pathlib.Path
) -> None:
    tiny.write_folder(tmp_path)

    dataset = data.load_cifar10(tmp_path, download=False)

    reference = tiny.train_images.astype(np.float64) / 255.0
    assert dataset.mean.dtype == np.float32 and dataset.mean.shape == (3,)
    assert dataset.std.dtype == np.float32 and dataset.std.shape == (3,)
    np.testing.assert_allclose(dataset.mean, reference.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(dataset.std, reference.std(axis=(0, 1, 2)), rtol=1e-6)


def test_local_tarball_checked_against_official_md5_by_default(
    tiny: TinyCifar, tmp_path: pathlib.Path
) -> None:
    archive = tiny.write_tarball(tmp_path)

    with pytest.raises(data.ChecksumError) as caught:
        data.load_cifar10(tmp_path, download=False)

    message = str(caught.value)
    assert str(archive) in message
    assert data.CIFAR10_MD5 in message and tiny.md5 in message
    assert isinstance(caught.value, ValueError)
    assert archive.read_bytes() == tiny.tarball  # the user's file is left alone


def test_corrupt_tarball_fails_checksum(tiny: TinyCifar, tmp_path: pathlib.Path) -> None:
    corrupt = bytearray(tiny.tarball)
    corrupt[len(corrupt) // 2] ^= 0xFF
    archive = tiny.write_tarball(tmp_path, bytes(corrupt))

    with pytest.raises(data.ChecksumError, match=rf"{tiny.md5}, got {md5_of(bytes(corrupt))}"):
        data.load_cifar10(tmp_path, download=False, md5=tiny.md5)
    assert archive.exists()


def test_md5_none_skips_local_check(tiny: TinyCifar, tmp_path: pathlib.Path) -> None:
    tiny.write_tarball(tmp_path)

    tiny.assert_matches(data.load_cifar10(tmp_path, download=False, md5=None))


@pytest.mark.parametrize("where", ["tarball", "folder"])
def test_truncated_record_is_reported(
    tiny: TinyCifar, tmp_path: pathlib.Path, where: str
) -> None:
    truncated = tiny.files[data.CIFAR10_TEST_FILE][:-1]
    if where == "tarball":
        payload = build_tarball({**tiny.files, data.CIFAR10_TEST_FILE: truncated})
        tiny.write_tarball(tmp_path, payload)
        md5 = md5_of(payload)
    else:
        tiny.write_folder(tmp_path / data.CIFAR10_FOLDER_NAME,
                          **{data.CIFAR10_TEST_FILE: truncated})
        md5 = None

    size = TEST_RECORDS * RECORD - 1
    with pytest.raises(ValueError, match=rf"test_batch\.bin: truncated record: .* {size} bytes"):
        data.load_cifar10(tmp_path, download=False, md5=md5)


@pytest.mark.parametrize("where", ["tarball", "folder"])
def test_label_out_of_range_is_reported(
    tiny: TinyCifar, tmp_path: pathlib.Path, where: str
) -> None:
    bad = bytearray(tiny.files["data_batch_3.bin"])
    bad[2 * RECORD] = 10
    if where == "tarball":
        payload = build_tarball({**tiny.files, "data_batch_3.bin": bytes(bad)})
        tiny.write_tarball(tmp_path, payload)
        md5 = md5_of(payload)
    else:
        tiny.write_folder(tmp_path, **{"data_batch_3.bin": bytes(bad)})
        md5 = None

    with pytest.raises(ValueError, match=r"data_batch_3\.bin: record 2 has label 10"):
        data.load_cifar10(tmp_path, download=False, md5=md5)


def test_tarball_missing_member_is_reported(tiny: TinyCifar, tmp_path: pathlib.Path) -> None:
    files = {name: payload for name, payload in tiny.files.items()
             if name != "data_batch_4.bin"}
    payload = build_tarball(files)
    tiny.write_tarball(tmp_path, payload)

    with pytest.raises(ValueError, match=r"lacks cifar-10-batches-bin/data_batch_4\.bin"):
        data.load_cifar10(tmp_path, download=False, md5=md5_of(payload))


def test_tarball_link_members_are_refused(tiny: TinyCifar, tmp_path: pathlib.Path) -> None:
    files = {name: payload for name, payload in tiny.files.items() if name != "test_batch.bin"}
    payload = build_tarball(files, symlinks={"test_batch.bin": "/etc/passwd"})
    tiny.write_tarball(tmp_path, payload)

    with pytest.raises(ValueError, match=r"test_batch\.bin' is not a regular file"):
        data.load_cifar10(tmp_path, download=False, md5=md5_of(payload))


def test_not_a_gzip_archive_is_reported(tmp_path: pathlib.Path) -> None:
    payload = b"this is not a tarball" * 10
    (tmp_path / data.CIFAR10_ARCHIVE_NAME).write_bytes(payload)

    with pytest.raises(ValueError, match=r"not a readable \.tar\.gz archive"):
        data.load_cifar10(tmp_path, download=False, md5=md5_of(payload))


# ----------------------------------------------------------------------------- offline


def assert_unavailable_message(message: str, folder: pathlib.Path, url: str) -> None:
    assert data.CIFAR10_ARCHIVE_NAME in message
    assert str(folder.resolve()) in message
    assert url in message
    assert "--dataset digits" in message


def test_offline_without_download(tmp_path: pathlib.Path) -> None:
    with pytest.raises(data.DatasetUnavailableError) as caught:
        data.load_cifar10(tmp_path, download=False)

    assert isinstance(caught.value, FileNotFoundError)
    assert_unavailable_message(str(caught.value), tmp_path, data.CIFAR10_URL)
    assert "download=False" in str(caught.value)


def test_offline_when_download_fails(tmp_path: pathlib.Path) -> None:
    unreachable = (tmp_path / "nowhere" / data.CIFAR10_ARCHIVE_NAME).as_uri()
    target = tmp_path / "data"

    with pytest.raises(data.DatasetUnavailableError) as caught:
        data.load_cifar10(target, url=unreachable)

    assert isinstance(caught.value.__cause__, urllib.error.URLError)
    assert_unavailable_message(str(caught.value), target, unreachable)
    assert leftovers(target) == []


def test_offline_relative_data_dir_is_reported_absolute(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(data.DatasetUnavailableError) as caught:
        data.load_cifar10("relative/cifar", download=False)

    assert_unavailable_message(str(caught.value), tmp_path / "relative" / "cifar",
                               data.CIFAR10_URL)


def test_incomplete_folder_is_named(tiny: TinyCifar, tmp_path: pathlib.Path) -> None:
    folder = tmp_path / data.CIFAR10_FOLDER_NAME
    folder.mkdir()
    (folder / "data_batch_1.bin").write_bytes(tiny.files["data_batch_1.bin"])

    with pytest.raises(data.DatasetUnavailableError, match=r"lacks data_batch_2\.bin"):
        data.load_cifar10(tmp_path, download=False)


def test_download_without_md5_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="md5=None"):
        data.load_cifar10(tmp_path, md5=None, url=(tmp_path / "x").as_uri())
    assert leftovers(tmp_path) == []


def test_default_data_dir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.DATA_DIR_ENV_VAR, str(tmp_path / "mine"))
    assert data.default_data_dir() == tmp_path / "mine"

    monkeypatch.delenv(data.DATA_DIR_ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.default_data_dir() == tmp_path / ".cache" / "jaxpool" / "cifar10"


def test_default_data_dir_is_used(
    tiny: TinyCifar, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny.write_folder(tmp_path)
    monkeypatch.setenv(data.DATA_DIR_ENV_VAR, str(tmp_path))

    tiny.assert_matches(data.load_dataset("cifar10", download=False))


# ---------------------------------------------------------------------------- download


def test_download_from_file_url(tiny: TinyCifar, tmp_path: pathlib.Path) -> None:
    source = tiny.write_tarball(tmp_path / "mirror")
    target = tmp_path / "data"

    dataset = data.load_cifar10(target, url=source.as_uri(), md5=tiny.md5)

    tiny.assert_matches(dataset)
    assert leftovers(target) == [data.CIFAR10_ARCHIVE_NAME]
    assert data.file_md5(target / data.CIFAR10_ARCHIVE_NAME) == tiny.md5


def test_download_over_http(
    tiny: TinyCifar, tmp_path: pathlib.Path, serve: Callable[..., str]
) -> None:
    url = serve(tiny.tarball)
    target = tmp_path / "data"

    tiny.assert_matches(data.load_dataset("cifar10", data_dir=target, url=url, md5=tiny.md5))

    assert leftovers(target) == [data.CIFAR10_ARCHIVE_NAME]
    assert (target / data.CIFAR10_ARCHIVE_NAME).read_bytes() == tiny.tarball
    # A second load uses the local copy: the server is not needed any more.
    tiny.assert_matches(data.load_cifar10(target, download=False, md5=tiny.md5))


def test_download_file_replaces_atomically(tmp_path: pathlib.Path) -> None:
    payload = b"new contents"
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "file").write_bytes(payload)
    destination = tmp_path / "file.bin"
    destination.write_bytes(b"old")

    result = data.download_file((tmp_path / "mirror" / "file").as_uri(), destination,
                                md5=md5_of(payload).upper())

    assert result == destination and destination.read_bytes() == payload
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file.bin", "mirror"]


def test_download_checksum_mismatch_leaves_nothing(
    tiny: TinyCifar, tmp_path: pathlib.Path, serve: Callable[..., str]
) -> None:
    url = serve(tiny.tarball)
    target = tmp_path / "data"

    with pytest.raises(data.ChecksumError) as caught:
        data.load_cifar10(target, url=url, md5="0" * 32)

    message = str(caught.value)
    assert str(target / data.CIFAR10_ARCHIVE_NAME) in message
    assert "0" * 32 in message and tiny.md5 in message
    assert leftovers(target) == []


def test_download_closed_early_leaves_nothing(
    tiny: TinyCifar, tmp_path: pathlib.Path, serve: Callable[..., str]
) -> None:
    url = serve(tiny.tarball, send=len(tiny.tarball) // 2)
    target = tmp_path / "data"

    with pytest.raises(ConnectionError, match=rf"ended after {len(tiny.tarball) // 2} of"):
        data.download_file(url, target / data.CIFAR10_ARCHIVE_NAME, md5=tiny.md5)
    assert leftovers(target) == []

    with pytest.raises(data.DatasetUnavailableError, match="downloading it failed"):
        data.load_cifar10(target, url=url, md5=tiny.md5)
    assert leftovers(target) == []


def test_download_interrupted_mid_stream_leaves_nothing(
    tiny: TinyCifar, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Interrupted:
        headers: typing.ClassVar[dict[str, str]] = {}

        def __init__(self) -> None:
            self.reads = 0

        def __enter__(self) -> Interrupted:
            return self

        def __exit__(self, *exc_info: object) -> None:
            pass

        def read(self, size: int) -> bytes:
            self.reads += 1
            if self.reads > 2:
                raise KeyboardInterrupt
            return tiny.tarball[:16]

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Interrupted())
    target = tmp_path / "data"

    with pytest.raises(KeyboardInterrupt):
        data.load_cifar10(target, url="https://example.invalid/x", md5=tiny.md5)
    assert leftovers(target) == []


def test_killed_download_never_passes_for_complete(
    tiny: TinyCifar, tmp_path: pathlib.Path, serve: Callable[..., str]
) -> None:
    # Larger than the downloader's 1 MiB read, so a first chunk reaches the disk before
    # the server stalls; the bytes need not be a tarball, since they never become one.
    payload = np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    url = serve(payload, send=len(payload) // 2, hold=True)
    target = tmp_path / "data"
    script = (
        "import sys; from examples.cifar10 import data; "
        "data.download_file(sys.argv[1], sys.argv[2], md5=sys.argv[3])"
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", script, url, str(target / data.CIFAR10_ARCHIVE_NAME),
         md5_of(payload)],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not any(path.stat().st_size for path in target.glob("*.part-*")):
            assert process.poll() is None, "the download ended instead of waiting"
            assert time.monotonic() < deadline, "no partial download appeared"
            time.sleep(0.02)
    finally:
        process.kill()
        process.wait()

    assert not (target / data.CIFAR10_ARCHIVE_NAME).exists()
    with pytest.raises(data.DatasetUnavailableError):
        data.load_cifar10(target, download=False, md5=tiny.md5)


# ------------------------------------------------------------------------------ digits


def test_digits_shapes_and_values() -> None:
    from sklearn import datasets

    dataset = data.load_digits()

    assert dataset.name == "digits" and dataset.num_classes == 10
    assert dataset.train_images.dtype == np.uint8 and dataset.test_images.dtype == np.uint8
    assert dataset.train_images.shape[1:] == (8, 8, 1) == dataset.test_images.shape[1:]
    assert dataset.train_labels.dtype == np.int32 and dataset.test_labels.dtype == np.int32
    assert dataset.num_train + dataset.num_test == 1797
    assert (dataset.num_train, dataset.num_test) == (1347, 450)
    assert "stand-in for CIFAR-10" in dataset.description
    assert dataset.mean.shape == (1,) and dataset.std.shape == (1,)

    # Every original image appears exactly once, rescaled 0..16 -> 0..255.
    original = datasets.load_digits()
    expected = np.rint(original.images * 255 / 16).astype(np.uint8)
    assert expected.max() == 255 and np.rint(8 * 255 / 16) == 128
    both = np.concatenate([dataset.train_images, dataset.test_images])[..., 0]
    both_labels = np.concatenate([dataset.train_labels, dataset.test_labels])
    order = np.lexsort(both.reshape(len(both), -1).T[::-1])
    expected_order = np.lexsort(expected.reshape(len(expected), -1).T[::-1])
    np.testing.assert_array_equal(both[order], expected[expected_order])
    assert np.bincount(both_labels).tolist() == np.bincount(original.target).tolist()


def test_digits_split_is_fixed_and_stratified() -> None:
    first, second = data.load_digits(), data.load_digits()

    np.testing.assert_array_equal(first.train_images, second.train_images)
    np.testing.assert_array_equal(first.test_labels, second.test_labels)
    train_counts = np.bincount(first.train_labels, minlength=10)
    test_counts = np.bincount(first.test_labels, minlength=10)
    assert (train_counts > 0).all() and (test_counts > 0).all()
    fraction = test_counts / (train_counts + test_counts)
    np.testing.assert_allclose(fraction, 0.25, atol=0.01)


# --------------------------------------------------------------------------- synthetic


def test_synthetic_shapes_and_determinism() -> None:
    dataset = data.load_synthetic()
    again = data.load_synthetic()
    other = data.load_synthetic(seed=1)

    assert dataset.train_images.shape == (512, 32, 32, 3)
    assert dataset.test_images.shape == (128, 32, 32, 3)
    assert dataset.train_images.dtype == np.uint8 and dataset.train_labels.dtype == np.int32
    assert np.bincount(dataset.train_labels).tolist() == [52] * 2 + [51] * 8
    np.testing.assert_array_equal(dataset.train_images, again.train_images)
    np.testing.assert_array_equal(dataset.test_labels, again.test_labels)
    assert not np.array_equal(dataset.train_images, other.train_images)


def test_synthetic_split_independent_of_other_split_size() -> None:
    small = data.load_synthetic(image_size=8, channels=1, num_classes=3, train_size=30,
                                test_size=9)
    larger_test = data.load_synthetic(image_size=8, channels=1, num_classes=3, train_size=30,
                                      test_size=40)

    assert small.train_images.shape == (30, 8, 8, 1) and small.num_classes == 3
    np.testing.assert_array_equal(small.train_images, larger_test.train_images)


def test_synthetic_is_learnable() -> None:
    dataset = data.load_synthetic()
    train = dataset.train_images.reshape(dataset.num_train, -1).astype(np.float64)
    test = dataset.test_images.reshape(dataset.num_test, -1).astype(np.float64)
    centroids = np.stack([train[dataset.train_labels == label].mean(axis=0)
                          for label in range(dataset.num_classes)])

    distances = ((test[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    accuracy = (distances.argmin(axis=1) == dataset.test_labels).mean()

    assert accuracy > 0.9


@pytest.mark.parametrize(
    ("arguments", "error", "pattern"),
    [
        ({"image_size": 0}, ValueError, "image_size must be >= 1, but got 0"),
        ({"num_classes": 1}, ValueError, "num_classes must be >= 2"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"train_size": 2.0}, TypeError, "train_size must be an int"),
        ({"channels": True}, TypeError, "channels must be an int"),
    ],
)
def test_synthetic_rejects_bad_arguments(
    arguments: dict[str, object], error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        data.load_synthetic(**arguments)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- dispatch


def test_load_dataset_dispatches(tiny: TinyCifar, tmp_path: pathlib.Path) -> None:
    tiny.write_tarball(tmp_path)

    tiny.assert_matches(data.load_dataset("cifar10", data_dir=tmp_path, download=False,
                                          md5=tiny.md5))
    assert data.load_dataset("digits").name == "digits"
    synthetic = data.load_dataset("synthetic", synthetic_seed=3, synthetic_train_size=20,
                                  synthetic_test_size=10)
    assert (synthetic.num_train, synthetic.num_test) == (20, 10)
    np.testing.assert_array_equal(
        synthetic.train_images, data.load_synthetic(seed=3, train_size=20,
                                                    test_size=10).train_images)
    assert synthetic.image_shape == (32, 32, 3)


@pytest.mark.parametrize("name", ["cifar100", "CIFAR10", "", "mnist"])
def test_load_dataset_rejects_unknown_names(name: str) -> None:
    with pytest.raises(ValueError, match=rf"unknown dataset {name!r}.*'cifar10', 'digits', "
                                         r"'synthetic'"):
        data.load_dataset(name)


# ---------------------------------------------------------------------------- batching


def test_epoch_batches_deterministic_per_seed_and_epoch() -> None:
    def order(seed: int, epoch: int) -> list[list[int]]:
        return [batch.tolist() for batch in data.epoch_batches(50, 8, seed=seed, epoch=epoch)]

    assert order(0, 2) == order(0, 2)
    assert order(0, 2) != order(0, 3)
    assert order(0, 2) != order(1, 2)
    assert order(3, 0) == [batch.tolist() for batch in
                           data.epoch_batches(np.int64(50), 8, seed=3, epoch=0)]


def test_epoch_batches_cover_the_epoch() -> None:
    dropped = list(data.epoch_batches(50, 8, seed=1, epoch=4))
    kept = list(data.epoch_batches(50, 8, seed=1, epoch=4, drop_remainder=False))

    assert [len(batch) for batch in dropped] == [8] * 6
    assert len(dropped) == data.steps_per_epoch(50, 8)
    assert len(np.unique(np.concatenate(dropped))) == 48
    assert [len(batch) for batch in kept] == [8] * 6 + [2]
    assert len(kept) == data.steps_per_epoch(50, 8, drop_remainder=False)
    np.testing.assert_array_equal(np.sort(np.concatenate(kept)), np.arange(50))
    # The dropped remainder is the tail of the same permutation.
    np.testing.assert_array_equal(np.concatenate(dropped), np.concatenate(kept)[:48])
    assert all(batch.dtype == np.int64 for batch in kept)


def test_epoch_batches_checks_arguments_when_called() -> None:
    with pytest.raises(ValueError, match="batch_size=8 exceeds num_examples=5"):
        data.epoch_batches(5, 8, seed=0, epoch=0)
    assert [len(batch) for batch in data.epoch_batches(5, 8, seed=0, epoch=0,
                                                       drop_remainder=False)] == [5]
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        data.epoch_batches(5, 2, seed=0, epoch=-1)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        data.epoch_batches(5, 0, seed=0, epoch=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        data.epoch_batches(5, 2, seed=0.5, epoch=0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- docs


def test_docstring_examples_run() -> None:
    results = doctest.testmod(data, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert results.attempted >= 4 and results.failed == 0


def test_public_functions_are_documented() -> None:
    for name in data.__all__:
        value = getattr(data, name)
        if callable(value):
            assert value.__doc__ and value.__doc__.strip(), name
