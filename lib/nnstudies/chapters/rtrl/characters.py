"""Chapter 4, section 5: next-character prediction online, OK against TBPTT (:class:`CharSpec` per
run, :func:`char_study` as one sweep), with the unigram and bigram baselines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from ...device import get_device, threads
from ...rtrl import RecurrentModel
from ...runs import Run, Spec, run_all
from ...scales import dry_run
from ...tasks.sequences import CharStream, encode_text, ptb_text, pydoc_text
from ...training import History, Optimizer, OptimizerSpec, fit
from .experiment import network_model
from .learners import Algorithm, Learner, generator, online_step
from .presets import Network, Preset

__all__ = [
    "CharRun",
    "CharSpec",
    "CharStudy",
    "bigram_bits",
    "bits_per_char",
    "char_spec",
    "char_specs",
    "char_study",
    "text_data",
    "unigram_bits",
]


@lru_cache(maxsize=2)
def text_data(source: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(train codes, held-out codes, symbols)``: the pydoc text split 90/10 (``"pydoc"``), Penn
    Treebank's train and valid splits (``"ptb"``, the paper's), or its valid and test splits
    (``"ptb-valid"``: the `full` scale's, where the train file cannot be had; see the chapter)."""
    if source == "pydoc":
        codes, symbols = encode_text(pydoc_text())
        cut = int(0.9 * len(codes))
        return codes[:cut], codes[cut:], symbols
    if source in ("ptb", "ptb-valid"):
        train, valid = (
            (ptb_text("train"), ptb_text("valid"))
            if source == "ptb"
            else (ptb_text("valid"), ptb_text("test"))
        )
        symbols = "".join(sorted(set(train) | set(valid)))
        codes_train, _ = encode_text(train, symbols)
        codes_valid, _ = encode_text(valid, symbols)
        return codes_train, codes_valid, symbols + "\N{REPLACEMENT CHARACTER}"
    raise ValueError(f"unknown text {source!r}; choose 'pydoc', 'ptb' or 'ptb-valid'")


def unigram_bits(codes: torch.Tensor, vocab: int) -> float:
    """Entropy in bits of the character frequencies of ``codes``: a model without memory does no
    better."""
    p = torch.bincount(codes, minlength=vocab).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log2()).sum())


def bigram_bits(train: torch.Tensor, test: torch.Tensor, vocab: int) -> float:
    """Bits per character on ``test`` of the previous-character model counted on ``train`` (add-one
    smoothing)."""
    counts = torch.ones(vocab, vocab, dtype=torch.float64)
    counts.index_put_(
        (train[:-1], train[1:]), torch.ones(len(train) - 1, dtype=torch.float64), accumulate=True
    )
    p = counts / counts.sum(1, keepdim=True)
    return float(-p[test[:-1], test[1:]].log2().mean())


@torch.no_grad()
def bits_per_char(
    model: RecurrentModel,
    codes: torch.Tensor,
    vocab: int,
    *,
    streams: int,
    steps: int,
    reset_every: int,
) -> float:
    """Mean next-character loss in bits on ``streams`` contiguous pieces of ``codes``, state reset
    every ``reset_every``."""
    device = model.cell.weight.device
    stream = CharStream(
        codes, vocab, streams, reset_every=reset_every, device=device, dtype=model.cell.weight.dtype
    )
    h, total = None, 0.0
    for _ in range(steps):
        s = stream.next()
        if h is not None:
            h = h * (~s.reset)[:, None].to(h.dtype)
        h = model.cell(s.x, h)
        total += float(F.cross_entropy(model.readout(h), s.y))
    return total / steps / math.log(2)


@dataclass(frozen=True)
class CharSpec(Spec):
    """One online run on characters with one learner, held-out bits per character every
    ``eval_every`` steps (``eval_streams`` streams of ``eval_steps`` characters; 20 in a dry run)."""

    learner: Learner
    text: str  #: "pydoc", "ptb" or "ptb-valid" (:func:`text_data`)
    network: Network
    steps: int
    eval_every: int
    eval_streams: int
    eval_steps: int
    reset_every: int
    seed: int
    device: str

    @property
    def label(self) -> str:
        return f"characters, {self.learner.label}, n={self.network.hidden}, seed {self.seed}"

    def build(self) -> RecurrentModel:
        vocab = len(text_data(self.text)[2])
        return network_model(self.network, vocab, seed=self.seed, device=self.device)

    def train(self, model: torch.nn.Module) -> History:
        assert isinstance(model, RecurrentModel)
        net, device = self.network, torch.device(self.device)
        train_codes, test_codes, symbols = text_data(self.text)
        vocab = len(symbols)
        eval_steps = min(self.eval_steps, 20) if dry_run() else self.eval_steps
        stream = CharStream(
            train_codes, vocab, net.batch, reset_every=self.reset_every, device=device
        )
        learner = self.learner.build(model, generator(device, 5000 + self.seed))
        learner.reset(net.batch)
        step = online_step(
            model,
            learner,
            stream,
            OptimizerSpec(Optimizer.ADAM, lr=net.lr).make(model.parameters()),
            clip=net.clip,
        )

        def evaluate() -> dict[str, float]:
            return {
                "bits_per_char": bits_per_char(
                    model,
                    test_codes,
                    vocab,
                    streams=self.eval_streams,
                    steps=eval_steps,
                    reset_every=self.reset_every,
                )
            }

        with threads(1, device):
            return fit(
                step,
                steps=self.steps,
                evaluate=evaluate,
                eval_every=self.eval_every,
                desc=self.label,
            )


def char_spec(learner: Learner, preset: Preset, *, seed: int = 0) -> CharSpec:
    """The run of ``learner`` on the characters of ``preset``."""
    c = preset.characters
    return CharSpec(
        learner,
        c.text,
        c.network,
        c.steps,
        c.eval_every,
        c.eval_streams,
        c.eval_steps,
        c.reset_every,
        seed,
        get_device().type,
    )


@dataclass(frozen=True)
class CharRun:
    """One online run on characters: the training loss per step and the held-out bits per character
    at checkpoints."""

    spec: Learner
    seed: int
    history: History

    @classmethod
    def of(cls, run: Run[History]) -> CharRun:
        spec = run.spec
        assert isinstance(spec, CharSpec)
        return cls(spec.learner, spec.seed, run.result)

    @property
    def checkpoints(self) -> list[int]:
        return self.history.eval_step

    @property
    def bits_per_char(self) -> list[float]:
        return self.history.metrics["bits_per_char"]

    @property
    def final_bits_per_char(self) -> float:
        return self.bits_per_char[-1]


@dataclass(frozen=True)
class CharStudy:
    """Section 5: runs by learner (one per seed) and the two baselines, in bits per character."""

    runs: dict[Learner, list[CharRun]]
    ok: Learner
    tbptt: Learner
    symbols: int
    unigram: float  #: character frequencies alone
    bigram: float  #: the previous character alone

    def final(self, learner: Learner) -> list[float]:
        return [run.final_bits_per_char for run in self.runs[learner]]


def char_specs(preset: Preset) -> list[CharSpec]:
    """Every run of :func:`char_study`: OK(r) on every seed, then TBPTT(k) on every seed."""
    c = preset.characters
    ok, tbptt = Learner(Algorithm.OK, rank=c.rank), Learner(Algorithm.TBPTT, horizon=c.horizon)
    return [char_spec(learner, preset, seed=s) for learner in (ok, tbptt) for s in c.seeds]


def char_study(preset: Preset) -> CharStudy:
    """OK(r) and TBPTT(k) on characters, every seed (one sweep), with the unigram and bigram
    baselines on the held-out text."""
    c = preset.characters
    train, test, symbols = text_data(c.text)
    ok, tbptt = Learner(Algorithm.OK, rank=c.rank), Learner(Algorithm.TBPTT, horizon=c.horizon)
    specs = char_specs(preset)
    done = iter(CharRun.of(run) for run in run_all(specs, desc="character runs"))
    runs = {learner: [next(done) for _ in c.seeds] for learner in (ok, tbptt)}
    vocab = len(symbols)
    return CharStudy(
        runs, ok, tbptt, vocab, unigram_bits(test, vocab), bigram_bits(train, test, vocab)
    )
