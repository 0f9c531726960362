"""Data sets: MNIST-1D made locally, and MNIST, Fashion-MNIST and CIFAR-10 downloaded once.

Everything lands in one folder, ``$NNSTUDIES_DATA`` or the user's cache folder
(``~/.cache/nnstudies/data`` on Linux). Downloads go through ``torchvision.datasets``
when torchvision imports, else through ``pooch``; either way each file is checked
against a known hash. Offline, loading a downloaded data set fails with an error
that names the embedded alternative, ``"mnist1d"``.

>>> data = load_dataset("mnist1d")          # doctest: +SKIP
>>> data.x_train.shape, data.num_classes    # doctest: +SKIP
(torch.Size([4000, 40]), 10)
"""

from __future__ import annotations

import gzip
import os
import pickle
import random
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pooch
import torch

__all__ = [
    "DATASETS",
    "DATA_ENV",
    "Dataset",
    "DownloadError",
    "data_dir",
    "fetch",
    "load_dataset",
    "mnist1d",
]

DATA_ENV = "NNSTUDIES_DATA"
EMBEDDED_HINT = (
    "The smoke and cpu scales need no download: they use the embedded data set "
    "'mnist1d' (load_dataset('mnist1d'))."
)


class DownloadError(RuntimeError):
    """A data file could not be fetched, or did not match its expected hash."""


def data_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder data sets are kept in: ``root``, else ``$NNSTUDIES_DATA``, else the user cache."""
    folder = Path(root or os.environ.get(DATA_ENV) or Path(pooch.os_cache("nnstudies")) / "data")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class Dataset:
    """A classification data set held in memory as tensors (float inputs, int64 labels)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"{self.name}: {split} inputs {tuple(x.shape)} and labels {tuple(y.shape)} differ in length")
            if y.dtype != torch.int64:
                raise ValueError(f"{self.name}: labels must be int64, got {y.dtype}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(40,)`` or ``(1, 28, 28)``."""
        return tuple(self.x_train.shape[1:])

    @property
    def in_features(self) -> int:
        """Number of input numbers per example (what an MLP's first layer takes)."""
        return int(np.prod(self.input_shape))

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> Dataset:
        """The first ``n_train`` training and ``n_test`` test examples (all when ``None``)."""
        for n, available, what in ((n_train, len(self.y_train), "n_train"), (n_test, len(self.y_test), "n_test")):
            if n is not None and not 0 < n <= available:
                raise ValueError(f"{what}={n} is out of range for {self.name} (1..{available})")
        return Dataset(
            self.name,
            self.x_train[:n_train],
            self.y_train[:n_train],
            self.x_test[:n_test],
            self.y_test[:n_test],
            self.num_classes,
        )

    def to(self, device: torch.device | str) -> Dataset:
        """The same data on ``device``."""
        return Dataset(
            self.name,
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_test.to(device),
            self.y_test.to(device),
            self.num_classes,
        )

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}: {len(self.y_train)} train + {len(self.y_test)} test, "
            f"inputs {self.input_shape}, {self.num_classes} classes)"
        )


# --------------------------------------------------------------------------- download


def fetch(url: str, known_hash: str, *, fname: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Download ``url`` once into the data folder, checked against ``known_hash`` (``"md5:…"``/``"sha256:…"``).

    A file already there with the right hash is not fetched again. A wrong hash
    discards the download and raises ``DownloadError``; so does a failed connection.
    """
    folder = data_dir(root) / "downloads"
    try:
        path = pooch.retrieve(url, known_hash=known_hash, fname=fname, path=folder, progressbar=False)
    except ValueError as error:  # pooch's hash mismatch
        raise DownloadError(f"{fname} from {url} does not match its expected hash {known_hash}; the file was discarded ({error})") from error
    except OSError as error:  # requests' ConnectionError and timeouts are OSErrors
        raise DownloadError(f"could not download {fname} from {url} ({type(error).__name__}); are you offline? {EMBEDDED_HINT}") from error
    return Path(path)


_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    # base URL, md5 of each of _IDX_FILES (the hashes torchvision checks too)
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432", "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
    ),
    "fashion_mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe", "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
    ),
}
_CIFAR10 = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "md5:c58f30108f718f92721af3b95e74349a")


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _torchvision_arrays(name: str, root: Path) -> tuple[np.ndarray, ...] | None:
    """(x_train, y_train, x_test, y_test) as uint8/int arrays via torchvision, or None without it."""
    try:
        from torchvision import datasets as tv
    except Exception:  # noqa: BLE001 - not installed, or installed but broken beside this torch
        return None
    cls = {"mnist": tv.MNIST, "fashion_mnist": tv.FashionMNIST, "cifar10": tv.CIFAR10}[name]
    try:
        train, test = (cls(str(root / "torchvision"), train=flag, download=True) for flag in (True, False))
    except Exception as error:
        raise DownloadError(f"torchvision could not download {name} ({error}); are you offline? {EMBEDDED_HINT}") from error
    return tuple(np.asarray(part) for split in (train, test) for part in (split.data, split.targets))  # type: ignore[union-attr]


def _pooch_arrays(name: str, root: Path) -> tuple[np.ndarray, ...]:
    if name == "cifar10":
        archive = fetch(_CIFAR10[0], _CIFAR10[1], fname="cifar-10-python.tar.gz", root=root)
        batches: dict[str, dict] = {}
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                base = os.path.basename(member.name)
                if base.startswith(("data_batch_", "test_batch")):
                    batches[base] = pickle.load(tar.extractfile(member), encoding="latin1")  # type: ignore[arg-type]
        train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
        x_train = np.concatenate([b["data"] for b in train]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y_train = np.concatenate([b["labels"] for b in train])
        test = batches["test_batch"]
        return x_train, y_train, test["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(test["labels"])
    base, hashes = _SOURCES[name]
    paths = [fetch(base + f, "md5:" + h, fname=f"{name}-{f}", root=root) for f, h in zip(_IDX_FILES, hashes)]
    return tuple(_read_idx(p) for p in paths)


def _images(x: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, H, W, C) as float32 (N, C, H, W) in [0, 1]."""
    t = torch.from_numpy(np.array(x, dtype=np.float32)) / 255.0
    return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()


def _labels(y: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(y, dtype=np.int64))


def _downloaded(name: str, num_classes: int) -> Callable[[Path], Dataset]:
    def load(root: Path) -> Dataset:
        arrays = _torchvision_arrays(name, root) or _pooch_arrays(name, root)
        x_train, y_train, x_test, y_test = arrays
        xtr, xte = _images(x_train), _images(x_test)
        mean = xtr.mean(dim=(0, 2, 3), keepdim=True)
        std = xtr.std(dim=(0, 2, 3), keepdim=True)
        return Dataset(name, (xtr - mean) / std, _labels(y_train), (xte - mean) / std, _labels(y_test), num_classes)

    return load


# --------------------------------------------------------------------------- embedded


def mnist1d(num_samples: int = 5000, seed: int = 42, *, root: str | os.PathLike[str] | None = None) -> Dataset:
    """MNIST-1D (Greydanus 2020) generated locally by the ``mnist1d`` package: 40 features, 10 classes.

    The default gives the package's standard split, 4000 train and 1000 test
    examples. Generation takes about a millisecond per example; the result is
    kept in the data folder. The global random states are left as they were.
    """
    if num_samples < 10:
        raise ValueError(f"num_samples must be at least 10 (one per class), got {num_samples}")
    path = data_dir(root) / f"mnist1d-n{num_samples}-seed{seed}.npz"
    try:
        with np.load(path) as stored:
            arrays = {k: stored[k] for k in ("x", "y", "x_test", "y_test")}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):  # missing or damaged: make it (again)
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples, args.seed = num_samples, seed
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            made = make_dataset(args)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        arrays = {k: np.asarray(made[k]) for k in ("x", "y", "x_test", "y_test")}
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    f32 = lambda k: torch.as_tensor(arrays[k], dtype=torch.float32)
    i64 = lambda k: torch.as_tensor(arrays[k], dtype=torch.int64)
    return Dataset("mnist1d", f32("x"), i64("y"), f32("x_test"), i64("y_test"), 10)


DATASETS: dict[str, tuple[str, bool, Callable[[Path], Dataset]]] = {
    # name: (description, embedded?, loader)
    "mnist1d": ("MNIST-1D, 40 features, 4000 + 1000 examples, made locally", True, lambda root: mnist1d(root=root)),
    "mnist": ("MNIST digits, 1x28x28, 60000 + 10000, downloaded", False, _downloaded("mnist", 10)),
    "fashion_mnist": ("Fashion-MNIST, 1x28x28, 60000 + 10000, downloaded", False, _downloaded("fashion_mnist", 10)),
    "cifar10": ("CIFAR-10, 3x32x32, 50000 + 10000, downloaded", False, _downloaded("cifar10", 10)),
}
_ALIASES = {"mnist_1d": "mnist1d", "fashionmnist": "fashion_mnist", "fmnist": "fashion_mnist", "cifar_10": "cifar10"}


def load_dataset(
    name: str,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    root: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load a data set by name (see ``DATASETS``), optionally only its first examples.

    Inputs are standardised (zero mean, unit variance over the training set);
    images come as ``(N, C, H, W)``, MNIST-1D as ``(N, 40)``.
    """
    key = name.lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(map(repr, DATASETS))}")
    data = DATASETS[key][2](data_dir(root))
    return data.subset(n_train, n_test) if (n_train or n_test) else data
