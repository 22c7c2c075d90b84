"""Single-threaded BLAS for loops of small matrix products on the host.

OpenBLAS's worker threads busy-wait between calls: on a loaded 2-core machine a loop of many
small products ran 15-20x slower multi-threaded (biclusters of a 512 x 512 matrix: 50 s vs
2.9 s single-threaded, measured with another process busy).  Large single products gain little
from threads here, so the loops below run with one BLAS thread.  No-op for CuPy arrays or when
threadpoolctl (a scikit-learn dependency) is missing.  :func:`blas_threads` sets a number of
threads for a block (the layout: 1, in this process and in its worker processes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np


@contextlib.contextmanager
def single_thread_blas(xp: Any, size: int) -> Iterator[None]:
    """Limit BLAS to one thread while the block runs, for NumPy work of at least ``size`` 4096."""
    if xp is not np or size < 4096:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


_controller: list = []


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit BLAS threads while the block runs (``None``: leave them as they are); small
    matrices: threads only contend on shared CPUs."""
    if n is None:
        yield
        return
    if not _controller:
        try:
            from threadpoolctl import ThreadpoolController

            # Inspecting the loaded libraries costs milliseconds: do it once.
            _controller.append(ThreadpoolController())
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            _controller.append(None)
    ctl = _controller[0]
    if ctl is None:  # pragma: no cover
        yield
        return
    with ctl.limit(limits=n, user_api="blas"):
        yield
