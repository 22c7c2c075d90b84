"""Laying out a big network on several CPU cores.

Clustering a row and packing and ordering a cluster depend on nothing but that row's class
means, so :meth:`~cnnvis_gl.layout.state.LayoutState.build` hands them to worker processes when
a network is big (:func:`workers_for`): the same functions on the same inputs, so the same scene
as on one core.  Processes rather than threads: the work is Python-heavy (the GIL), and the
viewer's window keeps its own core while a layout runs in the background.  The pool starts its
workers with ``spawn`` (forking a process that holds a GL context and threads is unsafe), with
the ``__main__`` module hidden from them: a user's script without an ``if __name__ ==
"__main__"`` guard is not run again in each worker.  The pool is kept for the next layout.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ..analysis._blas import blas_threads
from .content import ClusterContent, cluster_contents, unit_data
from .options import LayoutOptions

if TYPE_CHECKING:
    from .edges import RowSpec
    from .state import LayoutState

__all__ = ["PARALLEL_NEURONS", "cluster_job", "cluster_rows", "contents", "fill_contents", "workers_for"]

#: Networks with at least this many neurons are laid out on every core (``workers=None``).
PARALLEL_NEURONS = 20_000

#: Worker processes run this much nicer than the process that started them.
WORKER_NICENESS = 10

_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()  # (layouts may run on several threads: one pool)


def workers_for(options: LayoutOptions, neurons: int) -> int:
    """How a network of ``neurons`` is laid out: ``0`` in this process, ``k`` on ``k`` worker
    processes.  ``options.workers``: ``1`` this process, ``k > 1`` that many; ``None`` every
    core for a big network (at least :data:`PARALLEL_NEURONS`), ``-n`` all cores but ``n - 1``
    (as joblib counts; the viewer keeps one for its window), and this process otherwise."""
    w = options.workers
    if w is not None and w > 0:
        return 0 if w == 1 else int(w)
    cores = os.cpu_count() or 1
    if neurons < PARALLEL_NEURONS or (w is None and cores == 1):
        return 0
    return max(1, min(cores if w is None else cores + 1 + int(w), 16))


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """While processes start: ``spawn`` finds no main module to import in them."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main and k in main.__dict__}
    try:
        for k in saved:
            setattr(main, k, None)
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def _ready(_: int) -> int:
    return os.getpid()


def _yield_to_the_window() -> None:
    """A worker's priority: below the process that started it (a viewer's window stays
    responsive while the layout uses every core), the same where that is not possible."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(WORKER_NICENESS)


def _executor(workers: int) -> ProcessPoolExecutor:
    with _pool_lock:
        return _start(workers)


def _start(workers: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size != workers:
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
        _pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_yield_to_the_window
        )
        _pool_size = workers
        with _main_hidden():  # every worker starts now (one per submitted job, up to the size)
            list(_pool.map(_ready, range(workers)))
    return _pool


def _cluster_job(job: tuple[tuple[np.ndarray, str, int | None, tuple[int, int], int], int | None]) -> np.ndarray:
    from ..analysis import cluster_neurons

    (A, method, k, k_range, seed), threads = job
    with blas_threads(threads):
        return cluster_neurons(A, method, k, k_range, seed=seed)


def cluster_rows(
    jobs: list[tuple[np.ndarray, str, int | None, tuple[int, int], int]], workers: int, threads: int | None = 1
) -> list[np.ndarray]:
    """``cluster_neurons(A, method, k, k_range, seed=seed)`` of each job, on ``workers``
    processes with ``threads`` BLAS threads each (as :attr:`LayoutOptions.blas_threads`: a
    worker's default, a thread per core, made the layout 1.5x slower: its threads busy-wait
    while the other worker computes); the largest rows are sent first."""
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i][0].shape[0])
    out = list(_executor(workers).map(_cluster_job, [(jobs[i], threads) for i in order]))
    labels: list[np.ndarray] = [np.zeros(0)] * len(jobs)
    for i, lab in zip(order, out, strict=True):
        labels[i] = lab
    return labels


def _content_job(job: tuple[np.ndarray, list[np.ndarray], LayoutOptions]) -> tuple[list[ClusterContent], dict[str, float]]:
    A, members, options = job
    timings: dict[str, float] = {}
    with blas_threads(options.blas_threads):
        return cluster_contents(unit_data(A), members, options, timings), timings


def contents(
    jobs: list[tuple[np.ndarray, list[np.ndarray], LayoutOptions]], workers: int
) -> list[tuple[list[ClusterContent], dict[str, float]]]:
    """``cluster_contents`` of the member sets of each job (a row: its unit's class means, its
    clusters' members), on ``workers`` processes (``0``: in this one), with the seconds each
    stage took in all."""
    if not workers:
        return [_content_job(job) for job in jobs]
    size = [sum(len(m) ** 2 for m in job[1]) for job in jobs]  # (ordering is ~quadratic)
    order = sorted(range(len(jobs)), key=lambda i: -size[i])
    out = list(_executor(workers).map(_content_job, [jobs[i] for i in order]))
    result: list[Any] = [None] * len(jobs)
    for i, r in zip(order, out, strict=True):
        result[i] = r
    return result


def cluster_job(state: LayoutState, row: RowSpec) -> tuple[np.ndarray, str, int | None, tuple[int, int], int]:
    """The arguments of ``cluster_neurons`` for a row of ``state`` (by its group's setting)."""
    o = state.options
    setting = o.clustering_for(state.snapshot.graph.groups[row.group].name)
    return state.data(row.unit).A, setting.method, setting.k, o.k_range, o.seed


def fill_contents(state: LayoutState, workers: int) -> None:
    """Pack and order every cluster of ``state`` not cached yet, on ``workers`` processes
    (``0``: in this one); the seconds of each stage, summed over the processes, go to
    ``state.timings``."""
    todo = []
    for r in state.rows:
        members = [m for m in (state.members[r.name][c] for c in state.order[r.name])
                   if not state.has_content(r, m)]  # fmt: skip
        if members:
            todo.append((r, members))
    jobs = [(state.data(r.unit).A, members, state.options) for r, members in todo]
    for (r, _), (found, timings) in zip(todo, contents(jobs, workers), strict=True):
        for c in found:
            state.put_content(r, c)
        for k, v in timings.items():
            state.timings[k] = state.timings.get(k, 0.0) + v
