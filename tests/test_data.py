from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import nnstudies.data as data_module
from nnstudies.data import DownloadError, fetch, load_dataset, mnist1d


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
    state = np.random.get_state()
    a = mnist1d(num_samples=200, seed=3, root=tmp_path)
    assert np.array_equal(np.random.get_state()[1], state[1]), "global NumPy state must be left alone"
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
    assert fetch(url + "file.bin", good, fname="file.bin", root=tmp_path / "data").read_bytes() == payload  # cached

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


def test_downloaded_dataset_through_pooch(served: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The MNIST loader end to end (download, hash check, IDX parsing), on small files made here."""
    url, folder = served
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (50, 28, 28)), rng.integers(0, 10, 50), rng.integers(0, 256, (20, 28, 28)), rng.integers(0, 10, 20)]
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
    assert torch.allclose(data.x_train[:, 0] * expected.std() + expected.mean(), expected, atol=1e-5)

    monkeypatch.setitem(data_module._SOURCES, "fashion_mnist", ("http://127.0.0.1:9/", tuple(hashes)))
    with pytest.raises(DownloadError, match="mnist1d"):
        load_dataset("fashion_mnist", root=tmp_path)


def test_cifar10_archive_through_pooch(served: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
            batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}
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
    raw = torch.as_tensor(made["data_batch_1"]["data"][0, :1024].reshape(32, 32), dtype=torch.float32) / 255
    standardised = data.x_train[0, 0]
    corr = torch.corrcoef(torch.stack([raw.flatten(), standardised.flatten()]))[0, 1]
    assert corr > 0.999
