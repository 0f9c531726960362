"""What a chapter's setup does on Colab: keep trained models and downloaded data sets on Google Drive.

A Colab runtime forgets its disk when it ends. Every chapter has the parameter
``KEEP_CACHE_ON_DRIVE`` and passes it to :func:`keep_on_drive`; set it to True and a new
runtime loads the models trained before and reads the data sets downloaded before (Fashion-MNIST,
CIFAR-10, Penn Treebank) instead of training and downloading again.

No numeric module imports this one, so it never enters the hash of the code behind a stored result.
"""

from __future__ import annotations

import os
from pathlib import Path

from .cache import use_google_drive
from .data import DATA_ENV

__all__ = ["keep_on_drive"]


def keep_on_drive(enabled: bool, folder: str = "nnstudies-cache") -> Path | None:
    """With ``enabled`` (a chapter's ``KEEP_CACHE_ON_DRIVE``), keep trained models and data sets on
    Google Drive, in ``MyDrive/<folder>`` and ``MyDrive/<folder>/data``; return that folder.

    Mounts the drive (Colab asks for permission once per runtime) and points ``$NNSTUDIES_CACHE``
    (:func:`nnstudies.cache.use_google_drive`) and ``$NNSTUDIES_DATA``
    (:func:`nnstudies.data.data_dir`) there. With ``enabled`` False it does nothing and returns
    None. Outside Colab, True is an error that says so.
    """
    if not enabled:
        return None
    path = use_google_drive(folder)
    data = path / "data"
    data.mkdir(parents=True, exist_ok=True)
    os.environ[DATA_ENV] = str(data)
    print(f"downloaded data sets are kept in {data}")
    return path
