from __future__ import annotations

import gzip
import hashlib
import http.server
import shutil
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import nnstudies.data as data_module
from nnstudies.data import (
    DataError,
    DownloadError,
    dry_run_substitute,
    fetch,
    load_dataset,
    mnist1d,
)
from nnstudies.scales import DRY_RUN_ENV


@pytest.fixture(autouse=True)
def _no_dry_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests below set the dry run themselves where they want it."""
    monkeypatch.delenv(DRY_RUN_ENV, raising=False)


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A folder served over HTTP on localhost: (base URL, folder)."""
    folder = tmp_path / "server"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    server.shutdown()
    server.server_close()


def test_mnist1d_shapes_and_dtypes(tmp_path: Path) -> None:
    data = load_dataset("mnist1d")
    assert data.x_train.shape == (4000, 40) and data.x_test.shape == (1000, 40)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert set(data.y_train.tolist()) == set(range(10)) and data.num_classes == 10
    assert abs(data.x_train.mean().item()) < 0.1
    small = load_dataset("MNIST-1D", n_train=100, n_test=20)
    assert len(small.y_train) == 100 and len(small.y_test) == 20
    assert torch.equal(small.x_train, data.x_train[:100])


def test_mnist1d_is_repeatable_and_rebuilt_when_damaged(tmp_path: Path) -> None:
    state = np.random.get_state()[1]  # type: ignore[index]
    a = mnist1d(num_samples=200, seed=3, root=tmp_path)
    assert np.array_equal(np.random.get_state()[1], state), "global NumPy state must be left alone"  # type: ignore[index]
    (stored,) = tmp_path.glob("mnist1d-n200-seed3.npz")
    stored.write_bytes(b"not a zip file")
    b = mnist1d(num_samples=200, seed=3, root=tmp_path)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, mnist1d(num_samples=200, seed=4, root=tmp_path).x_train)


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    assert "mnist1d" in str(info.value) and "cifar10" in str(info.value)


def test_subset_range_checked() -> None:
    with pytest.raises(ValueError, match="n_train"):
        load_dataset("mnist1d", n_train=10**6)


def test_fetch_checks_hash(served: tuple[str, Path], tmp_path: Path) -> None:
    url, folder = served
    payload = b"a small file made by the test\n" * 10
    (folder / "file.bin").write_bytes(payload)
    good = "sha256:" + hashlib.sha256(payload).hexdigest()
    path = fetch(url + "file.bin", good, fname="file.bin", root=tmp_path / "data")
    assert path.read_bytes() == payload
    (folder / "file.bin").write_bytes(b"changed on the server")
    assert (
        fetch(url + "file.bin", good, fname="file.bin", root=tmp_path / "data").read_bytes()
        == payload
    )  # cached

    bad = "sha256:" + "0" * 64
    with pytest.raises(DownloadError, match="does not match its expected hash"):
        fetch(url + "file.bin", bad, fname="other.bin", root=tmp_path / "data")
    assert not (tmp_path / "data" / "downloads" / "other.bin").exists()


def test_offline_error_names_embedded_alternative(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:  # nothing listens on port 9 of localhost
        fetch("http://127.0.0.1:9/train.gz", "md5:" + "0" * 32, fname="x.gz", root=tmp_path)
    assert "offline" in str(info.value) and "mnist1d" in str(info.value)


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_downloaded_dataset_through_pooch(
    served: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MNIST loader end to end (download, hash check, IDX parsing), on small files made here."""
    url, folder = served
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (50, 28, 28)),
        rng.integers(0, 10, 50),
        rng.integers(0, 256, (20, 28, 28)),
        rng.integers(0, 10, 20),
    ]
    hashes = []
    for name, array in zip(data_module._IDX_FILES, arrays):
        blob = _idx(array)
        (folder / name).write_bytes(blob)
        hashes.append(hashlib.md5(blob).hexdigest())
    monkeypatch.setitem(data_module._SOURCES, "mnist", (url, tuple(hashes)))
    monkeypatch.setattr(data_module, "_torchvision_arrays", lambda name, root: None)
    data = load_dataset("mnist", root=tmp_path)
    assert data.x_train.shape == (50, 1, 28, 28) and data.x_test.shape == (20, 1, 28, 28)
    assert torch.equal(data.y_train, torch.as_tensor(arrays[1], dtype=torch.int64))
    expected = torch.as_tensor(arrays[0], dtype=torch.float32) / 255
    assert torch.allclose(
        data.x_train[:, 0] * expected.std() + expected.mean(), expected, atol=1e-5
    )

    monkeypatch.setitem(
        data_module._SOURCES, "fashion_mnist", ("http://127.0.0.1:9/", tuple(hashes))
    )
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    with pytest.raises(DownloadError, match="mnist1d"):
        load_dataset("fashion_mnist", root=tmp_path)


def test_cifar10_archive_through_pooch(
    served: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CIFAR-10 loader on a small archive laid out like the real one (python pickles in a tar.gz)."""
    import io
    import pickle
    import tarfile

    url, folder = served
    rng = np.random.default_rng(1)
    batches = {f"data_batch_{i}": 4 for i in range(1, 6)} | {"test_batch": 3}
    made = {}
    with tarfile.open(folder / "cifar.tar.gz", "w:gz") as tar:
        for name, n in batches.items():
            batch = {
                "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                "labels": rng.integers(0, 10, n).tolist(),
            }
            made[name] = batch
            blob = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    digest = "md5:" + hashlib.md5((folder / "cifar.tar.gz").read_bytes()).hexdigest()
    monkeypatch.setattr(data_module, "_CIFAR10", (url + "cifar.tar.gz", digest))
    monkeypatch.setattr(data_module, "_torchvision_arrays", lambda name, root: None)
    data = load_dataset("CIFAR-10", root=tmp_path)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (3, 3, 32, 32)
    assert data.y_test.tolist() == made["test_batch"]["labels"]
    # channel 0 of image 0 is the first 1024 bytes of its row (CIFAR stores R, G, B planes)
    raw = (
        torch.as_tensor(made["data_batch_1"]["data"][0, :1024].reshape(32, 32), dtype=torch.float32)
        / 255
    )
    standardised = data.x_train[0, 0]
    corr = torch.corrcoef(torch.stack([raw.flatten(), standardised.flatten()]))[0, 1]
    assert corr > 0.999


# --------------------------------------------------------------------------- Fashion-MNIST: data folder, Debian, download

DEBIAN = data_module.DEBIAN_FASHION_MNIST
# upstream's gzip headers, which Debian's files lack: the stored name and the time stamp (found by search, see data.py)
UPSTREAM_MTIME = {"train": 1504176606, "t10k": 1504176627}


@pytest.fixture()
def debian() -> Path:
    """Debian's Fashion-MNIST files; the test is skipped where the package is not installed."""
    if not all((DEBIAN / f).is_file() for f in data_module._IDX_FILES):
        pytest.skip(
            f"Debian's Fashion-MNIST is absent from {DEBIAN} (sudo apt-get install dataset-fashion-mnist; .ci/run installs it)"
        )
    return DEBIAN


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No torchvision, and ``fetch`` fails as it does offline; the list records each attempted download."""
    attempts: list[str] = []

    def no_network(url: str, known_hash: str, *, fname: str, root: object = None) -> Path:
        attempts.append(url)
        raise DownloadError(
            f"could not download {fname} (no network in this test); are you offline?"
        )

    monkeypatch.setattr(data_module, "fetch", no_network)
    monkeypatch.setattr(data_module, "_torchvision_arrays", lambda name, root: None)
    return attempts


def _fake_arrays(seed: int) -> list[np.ndarray]:
    """Small IDX-like uint8 arrays: train images and labels, test images and labels."""
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 256, (30, 28, 28)),
        rng.integers(0, 10, 30),
        rng.integers(0, 256, (10, 28, 28)),
        rng.integers(0, 10, 10),
    ]


def _write_set(folder: Path, arrays: list[np.ndarray], prefix: str = "") -> tuple[str, ...]:
    """Write the four gzipped IDX files into ``folder``; the sha256 of each decompressed file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(data_module._IDX_FILES, arrays):
        (folder / (prefix + name)).write_bytes(_idx(array))
    return tuple(hashlib.sha256(gzip.decompress(_idx(a))).hexdigest() for a in arrays)


def test_debian_files_are_upstreams(debian: Path) -> None:
    """Debian's files are upstream's (torchvision's md5) once the gzip header's name and time are put back."""
    sizes = {
        "train-images": 47040016,
        "train-labels": 60008,
        "t10k-images": 7840016,
        "t10k-labels": 10008,
    }
    for index, fname in enumerate(data_module._IDX_FILES):
        blob = (debian / fname).read_bytes()
        assert blob[:4] == b"\x1f\x8b\x08\x00", "Debian's header carries no file name"
        upstream = (
            blob[:3]
            + b"\x08"
            + struct.pack("<I", UPSTREAM_MTIME[fname.split("-")[0]])
            + blob[8:10]
            + fname[:-3].encode()
            + b"\0"
            + blob[10:]
        )
        assert (
            hashlib.md5(upstream).hexdigest() == data_module._SOURCES["fashion_mnist"][1][index]
        ), fname
        raw = gzip.decompress(blob)
        assert len(raw) == sizes[fname.rsplit("-", 2)[0]]
        assert (
            hashlib.sha256(raw).hexdigest() == data_module._CONTENT_SHA256["fashion_mnist"][index]
        ), fname


def test_fashion_mnist_from_debian(debian: Path, tmp_path: Path, offline: list[str]) -> None:
    data = load_dataset(
        "Fashion-MNIST", root=tmp_path
    )  # an empty data folder: Debian's files it is
    assert data.name == "fashion_mnist" and data.num_classes == 10
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert (
        torch.bincount(data.y_train).tolist() == [6000] * 10
        and torch.bincount(data.y_test).tolist() == [1000] * 10
    )
    assert abs(data.x_train.mean().item()) < 1e-4 and abs(data.x_train.std().item() - 1) < 1e-4
    assert abs(data.x_test.mean().item()) < 0.05  # standardised with the training statistics
    assert not list(tmp_path.iterdir()) and not offline, (
        "nothing is downloaded or copied into the data folder"
    )


def _copy_with_labels(debian: Path, folder: Path, change: int | None) -> None:
    """Debian's set in ``folder``: images linked, label files re-gzipped (another level, no name, time 0),
    with one label of train-labels changed when ``change`` is given."""
    folder.mkdir(parents=True)
    for fname in data_module._IDX_FILES:
        if "images" in fname:
            (folder / fname).symlink_to(debian / fname)
            continue
        raw = bytearray(gzip.decompress((debian / fname).read_bytes()))
        if change is not None and fname.startswith("train"):
            raw[8 + change] = (raw[8 + change] + 1) % 10
        blob = gzip.compress(bytes(raw), compresslevel=1, mtime=0)
        assert blob != (debian / fname).read_bytes()
        (folder / fname).write_bytes(blob)


def test_data_folder_first_and_checked_by_content(
    debian: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: list[str]
) -> None:
    monkeypatch.setenv(data_module.DATA_ENV, str(tmp_path / "data"))
    _copy_with_labels(debian, tmp_path / "data" / "fashion_mnist", change=123)
    with pytest.raises(
        DataError
    ) as info:  # the data folder is read before Debian's, and its content is checked
        load_dataset("fashion_mnist")
    message = str(info.value)
    assert str(tmp_path / "data" / "fashion_mnist" / "train-labels-idx1-ubyte.gz") in message
    assert "sha256" in message and "Delete it" in message

    shutil.rmtree(tmp_path / "data" / "fashion_mnist")
    _copy_with_labels(debian, tmp_path / "data" / "fashion_mnist", change=None)
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    data = load_dataset("fashion_mnist")  # re-compressed, same content: accepted
    labels = gzip.decompress((debian / "train-labels-idx1-ubyte.gz").read_bytes())[8:]
    assert data.y_train.tolist() == list(labels)


def test_data_folder_takes_precedence_over_debian(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: list[str]
) -> None:
    """On small made-up sets (no Debian package needed): the data folder, then Debian's folder, each checked."""
    mine, debians = _fake_arrays(0), _fake_arrays(1)
    hashes = _write_set(tmp_path / "data" / "fashion_mnist", mine)
    _write_set(tmp_path / "debian", debians)
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    monkeypatch.setitem(data_module._CONTENT_SHA256, "fashion_mnist", hashes)
    monkeypatch.setenv(data_module.DATA_ENV, str(tmp_path / "data"))
    assert load_dataset("fashion_mnist").y_test.tolist() == mine[3].tolist()

    shutil.rmtree(
        tmp_path / "data" / "fashion_mnist"
    )  # now Debian's folder is read, and its files differ
    with pytest.raises(
        DataError,
        match="debian/train-images-idx3-ubyte.gz.*apt-get install --reinstall dataset-fashion-mnist",
    ):
        load_dataset("fashion_mnist")

    monkeypatch.setitem(
        data_module._CONTENT_SHA256, "fashion_mnist", _write_set(tmp_path / "debian", debians)
    )
    (tmp_path / "debian" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        _idx(debians[3])[:-20]
    )  # truncated
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is not a readable gzip file"):
        load_dataset("fashion_mnist")


def test_downloads_checked_by_content(
    served: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A download (pooch, or torchvision) passes its md5 check and is then checked by content too."""
    url, folder = served
    arrays = _fake_arrays(2)
    hashes = _write_set(folder, arrays)
    md5s = tuple(hashlib.md5((folder / f).read_bytes()).hexdigest() for f in data_module._IDX_FILES)
    monkeypatch.setitem(data_module._SOURCES, "fashion_mnist", (url, md5s))
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    monkeypatch.setattr(data_module, "_torchvision_arrays", lambda name, root: None)
    monkeypatch.setitem(
        data_module._CONTENT_SHA256, "fashion_mnist", (hashes[0], "0" * 64, *hashes[2:])
    )
    with pytest.raises(
        DataError,
        match="fashion_mnist-train-labels-idx1-ubyte.gz: the sha256 of the decompressed content",
    ):
        load_dataset("fashion_mnist", root=tmp_path / "data")
    monkeypatch.setitem(data_module._CONTENT_SHA256, "fashion_mnist", hashes)
    assert (
        load_dataset("fashion_mnist", root=tmp_path / "data").y_train.tolist() == arrays[1].tolist()
    )

    tv = [a.astype(np.uint8) for a in _fake_arrays(2)]
    monkeypatch.setattr(data_module, "_torchvision_arrays", lambda name, root: tuple(tv))
    assert load_dataset("fashion_mnist", root=tmp_path / "tv").y_test.tolist() == arrays[3].tolist()
    tv[2][0, 0, 0] ^= 1
    with pytest.raises(
        DataError, match="t10k-images-idx3-ubyte.gz from .*tv/torchvision: the sha256"
    ):
        load_dataset("fashion_mnist", root=tmp_path / "tv")


# --------------------------------------------------------------------------- dry run


@pytest.mark.parametrize(
    ("name", "shape"),
    [("mnist", (1, 28, 28)), ("fashion_mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))],
)
def test_dry_run_stands_in_random_data(
    name: str,
    shape: tuple[int, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    offline: list[str],
) -> None:
    monkeypatch.setattr(data_module, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    with pytest.raises(DownloadError, match="offline"):  # no dry run: the usual error
        load_dataset(name, root=tmp_path)
    offline.clear()
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    with pytest.warns(UserWarning, match=f"{name}: dry run"):
        data = load_dataset(name, root=tmp_path)
    assert (
        data.name == f"{name} (dry-run random)"
        and data.num_classes == 10
        and data.input_shape == shape
    )
    assert (len(data.y_train), len(data.y_test)) == data_module.DRY_RUN_SIZES
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert set(data.y_train.tolist()) == set(range(10))
    with pytest.warns(UserWarning):
        small = load_dataset(name, n_train=100, n_test=60000, root=tmp_path)
    assert (len(small.y_train), len(small.y_test)) == (100, data_module.DRY_RUN_SIZES[1])
    assert not offline, "a dry run tried to download"
    assert not list(tmp_path.iterdir()), "a dry run wrote nothing"


def test_dry_run_uses_real_data_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: list[str]
) -> None:
    arrays = _fake_arrays(3)
    _write_set(tmp_path / "mnist", arrays)
    md5s = tuple(
        hashlib.md5((tmp_path / "mnist" / f).read_bytes()).hexdigest()
        for f in data_module._IDX_FILES
    )
    monkeypatch.setitem(data_module._SOURCES, "mnist", ("http://127.0.0.1:9/", md5s))
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    data = load_dataset("mnist", root=tmp_path)
    assert data.name == "mnist" and data.y_train.tolist() == arrays[1].tolist() and not offline


def test_dry_run_substitute() -> None:
    def never() -> int:
        raise AssertionError("made random data outside a dry run")

    assert dry_run_substitute("ptb", never) is None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DRY_RUN_ENV, "yes")
        with pytest.warns(UserWarning, match="ptb: dry run"):
            assert dry_run_substitute("ptb", lambda: 7) == 7
