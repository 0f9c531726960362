"""Runs as specs, and the engine that executes them: one run, or a sweep over every core.

**A run is a spec**: a frozen dataclass that says everything that decides its numbers (model,
data, optimizer and schedule, steps, seed, stop rule, evaluation) and subclasses :class:`Spec`
with two methods, ``build()`` (a fresh model) and ``train(model)`` (train it in place, return a
result: a :class:`~nnstudies.training.History`, tensors, numbers, or dataclasses, lists and dicts
of them). Its key is a hash of its fields and of the numeric code it runs
(:func:`~nnstudies.provenance.numeric_hash`), so there are no hand-written config dicts.

**execute(spec)** returns a :class:`Run`: the spec, the trained state, the result and the time.
Runs are cached on disk (``$NNSTUDIES_CACHE``) and in memory; on a hit nothing is built, and
:meth:`Run.model` builds the model only when it is asked for.

**run_all(specs)** executes a sweep through any executor with the ``concurrent.futures``
interface (``submit(fn, *args)`` returning something with ``.result()``):

- by default a local process pool: spawned, one worker per core (or per GPU), one torch thread
  each (``$NNSTUDIES_WORKERS`` overrides the count; ``1`` runs in this process);
- a submitit executor (``submitit.AutoExecutor``) for a SLURM cluster: the specs go as one job
  array.

Every run executes with one torch thread on the CPU, wherever it runs, so the same spec gives the
same numbers from any executor. A failed run is reported with its spec (:class:`SweepError`) after
the others have finished; they are kept in the cache.

>>> runs = run_all([replace(spec, seed=s) for s in range(4)])   # doctest: +SKIP
>>> runs[0].result.final_test_accuracy                          # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import dataclasses
import hashlib
import importlib
import json
import multiprocessing
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from .cache import MEMORY as _MEMORY
from .cache import cache_dir
from .device import get_device, threads
from .progress import QUIET_ENV, progress
from .provenance import canonical, numeric_hash
from .scales import dry_run
from .training import History

__all__ = [
    "EXECUTORS",
    "EXECUTOR_ENV",
    "WORKERS_ENV",
    "Run",
    "Spec",
    "SweepError",
    "default_workers",
    "execute",
    "make_executor",
    "run_all",
    "spec_key",
]

WORKERS_ENV = "NNSTUDIES_WORKERS"
EXECUTOR_ENV = "NNSTUDIES_EXECUTOR"
EXECUTORS = ("local", "slurm", "submitit-local")
R = TypeVar("R")


class Spec:
    """Base of run specs: subclass it as a ``@dataclass(frozen=True)`` and define ``build`` and
    ``train``. Fields hold numbers, strings, enums, tuples, and other frozen dataclasses.
    """

    def build(self) -> nn.Module:
        """A fresh model, seeded by the spec."""
        raise NotImplementedError

    def train(self, model: nn.Module) -> Any:
        """Train ``model`` in place; return the result that is kept with its weights."""
        raise NotImplementedError

    @property
    def label(self) -> str:
        """A short name for progress bars and error messages."""
        return type(self).__name__


# ----------------------------------------------------------------------------- keys


def spec_key(spec: Spec) -> str:
    """The cache key of ``spec``: its fields, the numeric code of its module (see
    :func:`~nnstudies.provenance.numeric_hash`) and the kind of device it runs on; a dry run keeps
    its two-step runs apart.
    """
    if not (dataclasses.is_dataclass(spec) and type(spec).__dataclass_params__.frozen):  # type: ignore[attr-defined]
        raise TypeError(f"{type(spec).__name__} must be a frozen dataclass to be a run spec")
    text = json.dumps(canonical(spec), sort_keys=True, separators=(",", ":"))
    code = numeric_hash([type(spec).__module__])
    where = f"{get_device().type}|{'dry' if dry_run() else ''}"  # a GPU's run is not a CPU's
    return hashlib.sha256(f"{code}|{where}|{text}".encode()).hexdigest()[:32]


# ----------------------------------------------------------------------------- results on disk

_ALLOWED_PREFIX = "nnstudies."


def _pack(value: Any) -> Any:
    """``value`` with dataclasses turned into tagged dicts, so that ``torch.load(weights_only=True)``
    reads it back."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kind = f"{type(value).__module__}:{type(value).__qualname__}"
        fields = {f.name: _pack(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__dataclass__": kind, "fields": fields}
    if isinstance(value, Mapping):
        return {k: _pack(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {"__tuple__": [_pack(v) for v in value]}
    if isinstance(value, list):
        return [_pack(v) for v in value]
    return value


def _unpack(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__dataclass__", "fields"}:
            module, _, name = value["__dataclass__"].partition(":")
            if not module.startswith(_ALLOWED_PREFIX):
                raise ValueError(
                    f"a cached result names the class {value['__dataclass__']}, which is not ours"
                )
            kind: Any = importlib.import_module(module)
            for part in name.split("."):
                kind = getattr(kind, part)
            return kind(**{k: _unpack(v) for k, v in value["fields"].items()})
        if set(value) == {"__tuple__"}:
            return tuple(_unpack(v) for v in value["__tuple__"])
        return {k: _unpack(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unpack(v) for v in value]
    return value


@dataclass
class Run(Generic[R]):
    """One executed spec: its trained ``state``, its ``result``, and the seconds it took to train
    (on a cache hit, the seconds of the run that made it)."""

    spec: Spec
    key: str
    state: dict[str, torch.Tensor]
    result: R
    seconds: float
    cached: bool = False

    def model(self, device: torch.device | str | None = None) -> nn.Module:
        """The trained model: built from the spec and loaded with the state (built on each call)."""
        model = self.spec.build()
        if device is not None:
            model = model.to(device)
        target = next(model.parameters(), torch.empty(0)).device
        model.load_state_dict({k: v.to(target) for k, v in self.state.items()})
        return model

    @property
    def history(self) -> History:
        """The result, when the result is a :class:`History`."""
        if not isinstance(self.result, History):
            raise TypeError(
                f"{self.spec.label}'s result is a {type(self.result).__name__}, not a History"
            )
        return self.result


def _load(spec: Spec, key: str, folder: Path) -> Run[Any] | None:
    entry = _MEMORY.get((folder, key))
    path = folder / f"{key}.pt"
    if entry is None and path.exists():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored.get("spec") != json.loads(json.dumps(canonical(spec))):
                raise ValueError("its stored spec differs from the key's")
            entry = (stored["state_dict"], _unpack(stored["result"]), float(stored["seconds"]))
        except Exception as error:  # noqa: BLE001 - any damage means: run again
            warnings.warn(
                f"cache entry {path} is damaged ({type(error).__name__}: {error}); running it again",
                stacklevel=3,
            )
            path.unlink(missing_ok=True)
            return None
        _MEMORY[(folder, key)] = entry
    if entry is None:
        return None
    state, result, seconds = entry
    return Run(spec, key, dict(state), copy.deepcopy(result), seconds, cached=True)


def execute(
    spec: Spec,
    *,
    root: str | os.PathLike[str] | None = None,
    refresh: bool = False,
    cache: bool = True,
) -> Run[Any]:
    """Execute ``spec`` (or load it from the cache), on one torch thread; return its :class:`Run`.

    ``refresh=True`` runs it again regardless; ``cache=False`` neither reads nor writes the cache.
    """
    key = spec_key(spec)
    folder = cache_dir(root)
    if cache and not refresh:
        found = _load(spec, key, folder)
        if found is not None:
            return found
    started = time.perf_counter()
    with threads(1):  # the engine's policy: the same numbers here, in a pool or on a cluster
        model = spec.build()
        result = spec.train(model)
    seconds = time.perf_counter() - started
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    if cache:
        path = folder / f"{key}.pt"
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        packed = {
            "spec": canonical(spec),
            "state_dict": state,
            "result": _pack(result),
            "seconds": seconds,
        }
        torch.save(packed, tmp)
        os.replace(tmp, path)
        _MEMORY[(folder, key)] = (state, _unpack(_pack(result)), seconds)
    return Run(spec, key, state, result, seconds)


# ----------------------------------------------------------------------------- sweeps


class SweepError(RuntimeError):
    """Some runs of a sweep failed. ``failures`` pairs each failed spec with its error; ``runs``
    holds the others (None where a run failed), which are also in the cache."""

    def __init__(
        self, failures: list[tuple[Spec, BaseException]], runs: list[Run[Any] | None]
    ) -> None:
        self.failures, self.runs = failures, runs
        lines = [f"{len(failures)} of {len(runs)} runs failed; the others are kept in the cache:"]
        lines += [f"  {spec!r}\n    {type(err).__name__}: {err}" for spec, err in failures]
        super().__init__("\n".join(lines))


def default_workers() -> int:
    """``$NNSTUDIES_WORKERS``, else one per GPU when CUDA is here, else one per core."""
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"${WORKERS_ENV} must be a positive integer, got {configured!r}")
        return int(configured)
    if torch.cuda.is_available():
        return torch.cuda.device_count()
    cores = (
        os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    )
    return max(1, len(cores))


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _shutdown() -> None:
    for pool in _POOLS.values():
        pool.shutdown(cancel_futures=True)


def _worker_start() -> None:
    """A worker leaves Ctrl-C (and a kernel's interrupt) to the process that runs the sweep."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool(workers: int) -> ProcessPoolExecutor:
    """A spawned process pool of ``workers``, kept for the next sweep (workers start in seconds,
    not milliseconds: each imports torch)."""
    if workers not in _POOLS:
        if not _POOLS:
            atexit.register(_shutdown)
        _POOLS[workers] = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start
        )
    return _POOLS[workers]


def make_executor(kind: str | None = None, folder: str | os.PathLike[str] | None = None) -> Any:
    """The executor named by ``kind`` (default ``$NNSTUDIES_EXECUTOR``, else ``local``).

    ``local``: None, i.e. :func:`run_all`'s own process pool. ``slurm``: a submitit executor
    that sends a sweep to SLURM as one job array (one CPU, and one GPU where CUDA is here, per
    job; ``$NNSTUDIES_SLURM_PARTITION`` and ``$NNSTUDIES_SLURM_MINUTES`` set the partition and the
    time limit). ``submitit-local``: the same through submitit's local executor, on this machine.
    Job logs go to ``folder`` (default: ``submitit/`` in the model cache).
    """
    kind = (kind or os.environ.get(EXECUTOR_ENV, "") or "local").strip()
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; choose one of {EXECUTORS}")
    if kind == "local":
        return None
    try:
        import submitit
    except ImportError:
        raise ImportError(
            f"the {kind} executor needs submitit: pip install 'nnstudies[cluster]'"
        ) from None
    logs = Path(folder) if folder else cache_dir() / "submitit"
    executor = submitit.AutoExecutor(
        folder=str(logs), cluster="local" if kind == "submitit-local" else "slurm"
    )
    minutes = int(os.environ.get("NNSTUDIES_SLURM_MINUTES", "240"))
    executor.update_parameters(
        timeout_min=minutes, cpus_per_task=1, gpus_per_node=int(torch.cuda.is_available())
    )
    partition = os.environ.get("NNSTUDIES_SLURM_PARTITION")
    if partition and kind == "slurm":
        executor.update_parameters(slurm_partition=partition)
    return executor


def _in_worker(spec: Spec, root: str, env: dict[str, str]) -> Run[Any]:
    """What a worker runs: the spec, on one torch thread (the GPU of its slot, when there are GPUs)."""
    os.environ.update({**env, QUIET_ENV: "1"})
    if torch.cuda.is_available():
        torch.cuda.set_device(os.getpid() % torch.cuda.device_count())
    run = execute(spec, root=root)
    run.spec = spec
    return run


def _importable(spec: Spec) -> bool:
    return (
        type(spec).__module__ not in ("__main__", "builtins")
        and "<locals>" not in type(spec).__qualname__
    )


def run_all(
    specs: Sequence[Spec],
    *,
    executor: Any = None,
    workers: int | None = None,
    root: str | os.PathLike[str] | None = None,
    desc: str = "runs",
    show_progress: bool = True,
) -> list[Run[Any]]:
    """Execute every spec; return their runs in the order given.

    Cached runs load at once; the others go to ``executor`` (anything with ``submit(fn, *args)``
    whose return value has ``.result()``: a ``concurrent.futures`` pool, a submitit executor;
    default :func:`make_executor`), else to a spawned process pool of ``workers`` (default
    :func:`default_workers`), kept for the next sweep. With one
    worker, or specs defined in a notebook (not importable by a worker), they run here, one
    thread each. A failed run raises :class:`SweepError` once all the others have finished.
    """
    folder = cache_dir(root)
    keys = [spec_key(s) for s in specs]
    runs: list[Run[Any] | None] = [_load(s, k, folder) for s, k in zip(specs, keys)]
    todo: dict[str, Spec] = {k: s for s, k, r in zip(specs, keys, runs) if r is None}
    done: dict[str, Run[Any]] = {}
    failures: list[tuple[Spec, BaseException]] = []
    count = workers if workers is not None else default_workers()
    executor = executor if executor is not None else make_executor()
    env = {k: v for k, v in os.environ.items() if k.startswith("NNSTUDIES_")}
    local = executor is None and (
        count <= 1 or len(todo) <= 1 or not all(map(_importable, todo.values()))
    )
    with progress(total=len(todo), desc=desc, disable=not show_progress or not todo) as bar:
        if local:
            for key, spec in todo.items():
                try:
                    done[key] = execute(spec, root=folder)
                except Exception as error:  # noqa: BLE001 - reported with its spec below
                    failures.append((spec, error))
                bar.update(1)
        else:
            pool = executor if executor is not None else _pool(min(count, len(todo)))
            batch = getattr(pool, "batch", None)  # submitit: the sweep as one job array
            with batch() if batch is not None else contextlib.nullcontext():
                jobs = [
                    (k, s, pool.submit(_in_worker, s, str(folder), env)) for k, s in todo.items()
                ]
            for key, spec, job in jobs:
                try:
                    done[key] = job.result()
                except BrokenProcessPool as error:  # a worker died (e.g. out of memory)
                    _POOLS.clear()
                    failures.append((spec, error))
                except Exception as error:  # noqa: BLE001 - reported with its spec below
                    failures.append((spec, error))
                bar.update(1)
    for i, (spec, key) in enumerate(zip(specs, keys)):
        if runs[i] is None and key in done:
            run = done[key]
            runs[i] = Run(spec, key, run.state, copy.deepcopy(run.result), run.seconds, run.cached)
    if failures:
        raise SweepError(failures, runs)
    return [r for r in runs if r is not None]


def by_key(runs: Iterable[Run[Any]], field: Callable[[Spec], Any]) -> dict[Any, Run[Any]]:
    """``runs`` in a dict keyed by ``field(spec)``, e.g. ``by_key(runs, lambda s: s.seed)``."""
    return {field(run.spec): run for run in runs}
