"""Tests of examples/cifar10/data.py: CIFAR-10's binary files, Fashion-MNIST's and MNIST's
IDX files, the folders they are looked for in, the atomic download, digits and the batch
order.

Everything runs offline: the official files are replaced by tiny ones in their formats,
written here (gzipped or not, and damaged in every way that matters), served through
``file://`` URLs and a local HTTP server on 127.0.0.1. The official checksums and split
sizes are swapped for the tiny files' (``monkeypatch``), so the real code paths check them.
"""

from __future__ import annotations

import dataclasses
import doctest
import gzip
import hashlib
import http.server
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from examples.cifar10 import data
from tests.helpers import REPO

RECORD = data.CIFAR10_RECORD_BYTES


def md5_of(payload: bytes) -> str:
    return hashlib.md5(payload, usedforsecurity=False).hexdigest()


@pytest.fixture(autouse=True)
def no_user_folders(tmp_path_factory, monkeypatch):
    """No test sees the user's $JAXPOOL_DATA_DIR or cache: HOME is an empty folder."""
    monkeypatch.delenv(data.DATA_DIR_ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """``serve({name: payload}, send=k)``: a local HTTP server of the payloads (announcing
    their whole length, sending ``k`` bytes; with ``hold``, then waiting for the test's
    end); returns its base URL."""
    servers: list[http.server.ThreadingHTTPServer] = []
    release = threading.Event()

    def start(files: dict[str, bytes], *, send: int | None = None, hold: bool = False) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                payload = files.get(self.path.lstrip("/"))
                try:
                    if payload is None:
                        self.send_error(404)
                        return
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[:send])
                    self.wfile.flush()
                    if hold:
                        release.wait(timeout=30)
                except OSError:  # the client went away
                    pass

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    release.set()
    for server in servers:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------ CIFAR-10


def encode_records(images: np.ndarray, labels: np.ndarray) -> bytes:
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels.astype(np.uint8)[:, None], planes], axis=1).tobytes()


def build_tarball(files: dict[str, bytes], *, folder: str = data.CIFAR10_FOLDER,
                  symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, payload in {"batches.meta.txt": b"airplane", **files}.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


class TinyCifar:
    """5 training files of 4 records and a test file of 6, known pixels and labels."""

    def __init__(self) -> None:
        rng = np.random.default_rng(1234)
        self.train_images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
        self.train_labels = (np.arange(20) % 10).astype(np.int32)
        self.test_images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
        self.test_labels = np.array([9, 0, 5, 3, 3, 1], dtype=np.int32)
        self.files = {name: encode_records(self.train_images[4 * i:4 * i + 4],
                                           self.train_labels[4 * i:4 * i + 4])
                      for i, name in enumerate(data.CIFAR10_FILES[:5])}
        self.files["test_batch.bin"] = encode_records(self.test_images, self.test_labels)
        self.tarball = build_tarball(self.files)

    def assert_matches(self, dataset: data.Dataset) -> None:
        assert dataset.name == "cifar10" and dataset.num_classes == 10
        for got, expected in ((dataset.train_images, self.train_images),
                              (dataset.train_labels, self.train_labels),
                              (dataset.test_images, self.test_images),
                              (dataset.test_labels, self.test_labels)):
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)


@pytest.fixture
def tiny(monkeypatch) -> TinyCifar:
    """The tiny CIFAR-10, whose tarball's MD5 stands in for the official one."""
    cifar = TinyCifar()
    monkeypatch.setattr(data, "CIFAR10_MD5", md5_of(cifar.tarball))
    return cifar


def test_parse_puts_rgb_planes_last_in_row_major_order() -> None:
    record = bytearray(RECORD)
    record[0] = 7
    record[1 + 1 * 32 + 2], record[1 + 1024 + 1 * 32 + 2], record[1 + 2048 + 1 * 32 + 2] = 200, 100, 50
    record[1 + 2 * 32 + 1] = 11  # red at the transposed position (2, 1)
    images, labels = data.parse_cifar10_records(bytes(record), source="x.bin")
    assert images.shape == (1, 32, 32, 3) and images.dtype == np.uint8 and images.flags.c_contiguous
    assert labels.tolist() == [7] and labels.dtype == np.int32
    assert images[0, 1, 2].tolist() == [200, 100, 50] and images[0, 2, 1].tolist() == [11, 0, 0]
    assert int(images.astype(np.int64).sum()) == 361


@pytest.mark.parametrize("size", [0, 1, RECORD - 1, RECORD + 1])
def test_parse_rejects_truncated_records(size: int) -> None:
    with pytest.raises(ValueError, match=rf"broken\.bin: truncated record: {size} bytes"):
        data.parse_cifar10_records(bytes(size), source="broken.bin")


def test_parse_rejects_labels_above_9() -> None:
    records = bytearray(3 * RECORD)
    records[2 * RECORD] = 10
    with pytest.raises(ValueError, match=r"b\.bin: record 2 has label 10, but CIFAR-10 labels are 0-9"):
        data.parse_cifar10_records(bytes(records), source="b.bin")


@pytest.mark.parametrize("layout", ["tarball", "extracted", "files in the folder"])
def test_loads_every_local_layout(layout, tiny, tmp_path) -> None:
    if layout == "tarball":
        (tmp_path / data.CIFAR10_ARCHIVE).write_bytes(tiny.tarball)
    for name, payload in tiny.files.items() if layout != "tarball" else ():
        folder = tmp_path / (data.CIFAR10_FOLDER if layout == "extracted" else "")
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(payload)
    dataset = data.load_cifar10(tmp_path, download=False)
    tiny.assert_matches(dataset)
    reference = tiny.train_images.astype(np.float64) / 255.0
    np.testing.assert_allclose(dataset.mean, reference.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(dataset.std, reference.std(axis=(0, 1, 2)), rtol=1e-6)
    if layout == "tarball":  # read, not extracted
        assert sorted(path.name for path in tmp_path.iterdir()) == [data.CIFAR10_ARCHIVE]


@pytest.mark.parametrize(("damage", "error", "pattern"), [
    ("other bytes", data.ChecksumError, "MD5 mismatch for .*cifar-10-binary.tar.gz: expected"),
    ("truncated record", ValueError, r"test_batch\.bin: truncated record"),
    ("label 10", ValueError, r"data_batch_3\.bin: record 2 has label 10"),
    ("missing member", ValueError, r"lacks cifar-10-batches-bin/data_batch_4\.bin"),
    ("link member", ValueError, r"test_batch\.bin' is not a regular file"),
    ("not gzip", ValueError, r"not a readable \.tar\.gz archive"),
    ("dot-slash names", None, None),
])
def test_tarball_damage_is_reported(damage, error, pattern, tiny, tmp_path, monkeypatch) -> None:
    files = dict(tiny.files)
    if damage == "truncated record":
        files["test_batch.bin"] = files["test_batch.bin"][:-1]
    if damage == "label 10":
        files["data_batch_3.bin"] = (files["data_batch_3.bin"][:2 * RECORD] + b"\x0a"
                                     + files["data_batch_3.bin"][2 * RECORD + 1:])
    links = {"test_batch.bin": "/etc/passwd"} if damage == "link member" else None
    if damage in ("missing member", "link member"):
        files.pop("data_batch_4.bin" if damage == "missing member" else "test_batch.bin")
    payload = build_tarball(files, symlinks=links,
                            folder=f"./{data.CIFAR10_FOLDER}" if "dot" in damage else data.CIFAR10_FOLDER)
    payload = b"not a tarball" * 10 if damage == "not gzip" else payload
    if damage == "other bytes":
        payload = tiny.tarball[:100] + bytes([tiny.tarball[100] ^ 0xFF]) + tiny.tarball[101:]
    if damage != "other bytes":  # the damaged file is "official": only its content is wrong
        monkeypatch.setattr(data, "CIFAR10_MD5", md5_of(payload))
    (tmp_path / data.CIFAR10_ARCHIVE).write_bytes(payload)
    if error is None:
        tiny.assert_matches(data.load_cifar10(tmp_path, download=False))
        return
    with pytest.raises(error, match=pattern):
        data.load_cifar10(tmp_path, download=False)
    assert (tmp_path / data.CIFAR10_ARCHIVE).read_bytes() == payload  # the user's file stays


def test_cifar_downloads_once_then_reads_the_copy(tiny, tmp_path, serve, monkeypatch) -> None:
    monkeypatch.setattr(data, "CIFAR10_URL", serve({"c.tar.gz": tiny.tarball}) + "c.tar.gz")
    tiny.assert_matches(data.load_dataset("cifar10", data_dir=tmp_path / "data"))
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == [data.CIFAR10_ARCHIVE]
    monkeypatch.setattr(data, "CIFAR10_URL", "http://127.0.0.1:9/unreachable")
    tiny.assert_matches(data.load_cifar10(tmp_path / "data"))


def test_cifar_offline_names_what_to_place_where(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "CIFAR10_URL", (tmp_path / "nowhere.tar.gz").as_uri())
    with pytest.raises(data.DatasetUnavailableError) as caught:
        data.load_cifar10("relative/cifar")
    message = str(caught.value)
    assert isinstance(caught.value.__cause__, urllib.error.URLError)
    assert str(tmp_path / "relative" / "cifar") in message and data.CIFAR10_MD5 in message
    assert "downloading failed" in message and "--dataset digits" in message
    assert "--data-dir" in message and list((tmp_path / "relative" / "cifar").iterdir()) == []
    with pytest.raises(data.DatasetUnavailableError, match="download=False"):
        data.load_cifar10(tmp_path, download=False)


# --------------------------------------------------------------- Fashion-MNIST and MNIST


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) in the IDX format."""
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


class TinyIdx:
    """Six training and four test 28x28 images in the four IDX files."""

    def __init__(self) -> None:
        rng = np.random.default_rng(7)
        self.arrays = {"train_images": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
                       "train_labels": np.array([0, 1, 2, 3, 9, 9], np.uint8),
                       "test_images": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
                       "test_labels": np.array([5, 6, 7, 8], np.uint8)}
        self.raw = {part: idx_bytes(array) for part, array in self.arrays.items()}
        # mtime=0: the same bytes each time, as the "official" .gz files must be.
        self.gz = {part: gzip.compress(raw, mtime=0) for part, raw in self.raw.items()}

    def write(self, folder: pathlib.Path, *, gzipped: bool = True, **replaced: bytes) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for part, name in data.IDX_FILES.items():
            payload = replaced.get(part, (self.gz if gzipped else self.raw)[part])
            (folder / (f"{name}.gz" if gzipped else name)).write_bytes(payload)

    def served(self) -> dict[str, bytes]:
        return {f"{name}.gz": self.gz[part] for part, name in data.IDX_FILES.items()}

    def assert_matches(self, dataset: data.Dataset, name: str = "fashion-mnist") -> None:
        assert dataset.name == name and dataset.image_shape == (28, 28, 1)
        np.testing.assert_array_equal(dataset.train_images[..., 0], self.arrays["train_images"])
        np.testing.assert_array_equal(dataset.test_labels, self.arrays["test_labels"])
        assert dataset.train_labels.dtype == np.int32 and dataset.num_classes == 10


@pytest.fixture
def idx(monkeypatch, tmp_path) -> TinyIdx:
    """Tiny files that Fashion-MNIST's and MNIST's sources take for official (their MD5s,
    split sizes 6 / 4, a system folder under tmp_path, a URL that goes nowhere)."""
    tiny = TinyIdx()
    for name, source in list(data.IDX_SOURCES.items()):
        monkeypatch.setitem(data.IDX_SOURCES, name, dataclasses.replace(
            source, url=(tmp_path / "nowhere").as_uri() + "/", split_sizes=(6, 4),
            system_folders=(str(tmp_path / "system" / name),),
            md5s=tuple((md5_of(tiny.raw[part]), md5_of(tiny.gz[part])) for part in data.IDX_FILES)))
    return tiny


@pytest.mark.parametrize("gzipped", [True, False])
@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_idx_files_load_gzipped_or_not(name, gzipped, idx, tmp_path) -> None:
    idx.write(tmp_path / "d", gzipped=gzipped)
    dataset = data.load_dataset(name, data_dir=tmp_path / "d", download=False)
    idx.assert_matches(dataset, name)
    assert f"from {tmp_path / 'd'}" in dataset.description
    np.testing.assert_allclose(dataset.std, (idx.arrays["train_images"] / 255.0).std(), rtol=1e-6)


def test_idx_checks_the_content_not_the_gzip_bytes(idx, tmp_path) -> None:
    """Debian's .gz files differ from the official ones byte for byte, not in content."""
    other = {part: gzip.compress(raw, compresslevel=1, mtime=12345) for part, raw in idx.raw.items()}
    assert other["train_images"] != idx.gz["train_images"]
    idx.write(tmp_path, **other)
    idx.assert_matches(data.load_idx_dataset("fashion-mnist", tmp_path, download=False))


def _truncated(raw: bytes) -> bytes:
    return raw[:-7]


@pytest.mark.parametrize(("part", "payload", "error", "pattern"), [
    ("train_images", lambda raw: gzip.compress(raw)[:-20], ValueError, "not a readable gzip file"),
    ("test_images", lambda raw: _truncated(raw), data.ChecksumError, "the content's MD5 is"),
    ("train_labels", lambda raw: raw[:1] + b"\x01" + raw[2:], data.ChecksumError, "corrupt"),
    ("test_labels", lambda raw: b"\x00\x00\x0d\x01" + raw[4:], data.ChecksumError, "official"),
])
def test_idx_damage_is_a_checksum_error(part, payload, error, pattern, idx, tmp_path) -> None:
    idx.write(tmp_path, gzipped=False, **{part: payload(idx.raw[part])})
    with pytest.raises(error, match=pattern) as caught:
        data.load_idx_dataset("fashion-mnist", tmp_path, download=False)
    assert data.IDX_FILES[part] in str(caught.value)


@pytest.mark.parametrize(("change", "pattern"), [
    (lambda raw: b"\x00\x00\x0d\x03" + raw[4:], r"not an IDX file of unsigned bytes with 3 "
                                                r"dimension\(s\) \(magic number 00000d03"),
    (lambda raw: raw[:3] + b"\x02" + raw[4:], r"magic number 00000802, expected 000008"),
    (_truncated, r"announces shape \(6, 28, 28\) \(4704 values\), but 4697 bytes follow"),
    (lambda raw: b"\x00\x00", "magic number 0000, expected"),
])
def test_parse_idx_refuses_malformed_files(change, pattern) -> None:
    raw = idx_bytes(np.zeros((6, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=pattern):
        data.parse_idx(change(raw), source="f", ndim=3)


@pytest.mark.parametrize(("sizes", "labels", "pattern"), [
    ((5, 4), None, r"the train split has images of shape \(6, 28, 28\) and 6 labels; expected "
                   r"\(5, 28, 28\) and 5"),
    ((6, 4), np.array([0, 1, 2, 3, 9, 10], np.uint8), "a train label is 10, above 9"),
    ((6, 4), np.array([0, 1, 2, 3, 9], np.uint8), "6, 28, 28\\) and 5 labels"),
])
def test_idx_counts_and_labels_are_checked(sizes, labels, pattern, idx, tmp_path,
                                           monkeypatch) -> None:
    replaced = {} if labels is None else {"train_labels": idx_bytes(labels)}
    source = data.IDX_SOURCES["fashion-mnist"]
    md5s = tuple((md5_of(replaced[part]), "") if part in replaced else md5
                 for part, md5 in zip(data.IDX_FILES, source.md5s, strict=True))
    monkeypatch.setitem(data.IDX_SOURCES, "fashion-mnist",
                        dataclasses.replace(source, split_sizes=sizes, md5s=md5s))
    idx.write(tmp_path, gzipped=False, **replaced)
    with pytest.raises(ValueError, match=pattern):
        data.load_idx_dataset("fashion-mnist", tmp_path, download=False)


def test_idx_lookup_order(idx, tmp_path, monkeypatch) -> None:
    """data_dir alone; else $JAXPOOL_DATA_DIR, its <name>/, the cache, the system folder."""
    home, root = pathlib.Path(os.environ["HOME"]), tmp_path / "root"
    folders = {"system": tmp_path / "system" / "fashion-mnist",
               "cache": home / ".cache" / "jaxpool" / "fashion-mnist",
               "subfolder": root / "fashion-mnist", "root": root}
    monkeypatch.setenv(data.DATA_DIR_ENV_VAR, str(root))
    for where in folders:  # each newly filled folder comes before all filled before it
        idx.write(folders[where])
        assert data.load_dataset("fashion-mnist").description.endswith(f"from {folders[where]})")
    with pytest.raises(data.DatasetUnavailableError, match=r"are not all in .*/elsewhere"):
        data.load_dataset("fashion-mnist", data_dir=tmp_path / "elsewhere", download=False)
    (folders["root"] / f"{data.IDX_FILES['test_labels']}.gz").unlink()  # one file short
    assert data.load_dataset("fashion-mnist").description.endswith(f"from {folders['subfolder']})")


@pytest.mark.parametrize("scheme", ["file", "http"])
def test_idx_downloads_the_missing_files(scheme, idx, tmp_path, serve, monkeypatch) -> None:
    if scheme == "file":
        (tmp_path / "mirror").mkdir()
        for name, payload in idx.served().items():
            (tmp_path / "mirror" / name).write_bytes(payload)
        url = (tmp_path / "mirror").as_uri() + "/"
    else:
        url = serve(idx.served())
    source = data.IDX_SOURCES["fashion-mnist"]
    monkeypatch.setitem(data.IDX_SOURCES, "fashion-mnist", dataclasses.replace(source, url=url))
    target = pathlib.Path(os.environ["HOME"]) / ".cache" / "jaxpool" / "fashion-mnist"
    target.mkdir(parents=True)
    (target / data.IDX_FILES["train_images"]).write_bytes(idx.raw["train_images"])  # one there
    idx.assert_matches(data.load_dataset("fashion-mnist"))
    assert sorted(path.name for path in target.iterdir()) == sorted(
        [data.IDX_FILES["train_images"]] + [f"{name}.gz" for part, name in data.IDX_FILES.items()
                                            if part != "train_images"])
    # With $JAXPOOL_DATA_DIR, downloads go into its <name>/ subfolder.
    monkeypatch.setenv(data.DATA_DIR_ENV_VAR, str(tmp_path / "root"))
    shutil.rmtree(target)
    idx.assert_matches(data.load_dataset("fashion-mnist"))
    assert len(list((tmp_path / "root" / "fashion-mnist").iterdir())) == 4


def test_idx_offline_error_names_both_ways(idx, tmp_path) -> None:
    with pytest.raises(data.DatasetUnavailableError) as caught:
        data.load_dataset("fashion-mnist", data_dir=tmp_path / "d")
    message = str(caught.value)
    assert message.startswith("Fashion-MNIST is not available: train-images-idx3-ubyte.gz, ")
    assert "downloading failed" in message and isinstance(caught.value.__cause__, OSError)
    assert f"download them from {data.IDX_SOURCES['fashion-mnist'].url} into {tmp_path / 'd'}" in message
    assert "apt-get install dataset-fashion-mnist" in message and "dpkg-deb -x" in message
    assert "--data-dir" in message and message.count("\n") == 1
    with pytest.raises(data.DatasetUnavailableError, match=r"MNIST is not available.*download=False"):
        data.load_dataset("mnist", download=False)


def test_the_real_fashion_mnist_checksums_are_the_official_ones() -> None:
    """Where Debian's package is installed, its files pass (CI needs no real data)."""
    folder = pathlib.Path("/usr/share/datasets/fashion-mnist")
    if not all((folder / f"{name}.gz").is_file() for name in data.IDX_FILES.values()):
        pytest.skip("dataset-fashion-mnist is not installed")
    for part, name in data.IDX_FILES.items():
        content = gzip.decompress((folder / f"{name}.gz").read_bytes())
        index = list(data.IDX_FILES).index(part)
        assert md5_of(content) == data.IDX_SOURCES["fashion-mnist"].md5s[index][0], name


# ---------------------------------------------------------------------------- download


def test_download_file_replaces_atomically(tmp_path) -> None:
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "file").write_bytes(b"new contents")
    destination = tmp_path / "file.bin"
    destination.write_bytes(b"old")
    result = data.download_file((tmp_path / "mirror" / "file").as_uri(), destination,
                                md5=md5_of(b"new contents").upper())
    assert result == destination and destination.read_bytes() == b"new contents"
    assert oct(destination.stat().st_mode & 0o777) == "0o644"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file.bin", "mirror"]


@pytest.mark.parametrize("failure", ["checksum", "closed early"])
def test_a_failed_download_leaves_nothing(failure, tmp_path, serve) -> None:
    """A transfer cut short (http.client returns what came, silently) fails the MD5 too."""
    payload = bytes(range(256)) * 64
    url = serve({"x": payload}, send=None if failure == "checksum" else len(payload) // 2) + "x"
    md5 = "0" * 32 if failure == "checksum" else md5_of(payload)
    with pytest.raises(data.ChecksumError, match=f"expected {md5}, got "):
        data.download_file(url, tmp_path / "d" / "x", md5=md5)
    assert list((tmp_path / "d").iterdir()) == []


def test_an_interrupted_download_leaves_nothing(tmp_path, monkeypatch) -> None:
    class Interrupted(io.BytesIO):
        headers: dict = {}  # noqa: RUF012

        def read(self, size: int = -1) -> bytes:
            raise KeyboardInterrupt

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Interrupted())
    with pytest.raises(KeyboardInterrupt):
        data.download_file("https://example.invalid/x", tmp_path / "x", md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_download_never_passes_for_complete(tmp_path, serve) -> None:
    # Larger than one 1 MiB read, so a first chunk reaches the disk before the server stalls.
    payload = np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    url = serve({"x": payload}, send=len(payload) // 2, hold=True) + "x"
    script = ("import sys; from examples.cifar10 import data; "
              "data.download_file(sys.argv[1], sys.argv[2], md5=sys.argv[3])")
    process = subprocess.Popen([sys.executable, "-c", script, url, str(tmp_path / "x"),
                                md5_of(payload)], env={**os.environ, "PYTHONPATH": str(REPO)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(path.stat().st_size for path in tmp_path.glob("x.part-*")):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        process.kill()
        process.wait()
    assert not (tmp_path / "x").exists()


# -------------------------------------------------------------------------------- digits


def test_digits_are_scikit_learns_rescaled_with_a_fixed_stratified_split() -> None:
    from sklearn import datasets

    dataset, again = data.load_digits(), data.load_digits()
    assert (dataset.num_train, len(dataset.test_labels), dataset.image_shape) == (1347, 450, (8, 8, 1))
    np.testing.assert_array_equal(dataset.test_images, again.test_images)
    original = datasets.load_digits()
    expected = np.rint(original.images * 255 / 16).astype(np.uint8)
    both = np.concatenate([dataset.train_images, dataset.test_images])[..., 0]
    key = lambda images: np.lexsort(images.reshape(len(images), -1).T[::-1])  # noqa: E731
    np.testing.assert_array_equal(both[key(both)], expected[key(expected)])
    fraction = np.bincount(dataset.test_labels) / np.bincount(original.target)
    np.testing.assert_allclose(fraction, 0.25, atol=0.01)


def test_load_dataset_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar100'; expected one of 'cifar10', "
                                         r"'fashion-mnist', 'mnist', 'digits'"):
        data.load_dataset("cifar100")


def test_epoch_batches_are_a_pure_function_of_seed_and_epoch() -> None:
    order = lambda seed, epoch: [b.tolist() for b in data.epoch_batches(50, 8, seed=seed,  # noqa: E731
                                                                        epoch=epoch)]
    assert order(0, 2) == order(0, 2) != order(0, 3) != order(1, 3)
    batches = np.concatenate(order(4, 1))
    assert len(order(4, 1)) == 6 and len(set(batches.tolist())) == 48
    np.testing.assert_array_equal(batches, np.random.default_rng([4, 1]).permutation(50)[:48])
    assert list(data.epoch_batches(8, 9, seed=0, epoch=0)) == []


def test_docstring_examples_run() -> None:
    results = doctest.testmod(data)
    assert results.attempted >= 2 and results.failed == 0
