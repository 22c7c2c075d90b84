"""Array backend: NumPy fallback here, CuPy with DLPack on a CUDA machine."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from cnnvis_gl import xp as X


def test_backend_is_consistent():
    assert X.backend_name in ("numpy", "cupy")
    assert (X.xp is np) == (X.backend_name == "numpy")
    if not torch.cuda.is_available():
        assert X.backend_name == "numpy"  # CuPy may import, but its first op fails without a GPU


def test_forced_numpy_backend():
    env = {**os.environ, "CNNVIS_BACKEND": "numpy"}
    r = subprocess.run([sys.executable, "-c", "from cnnvis_gl import xp; print(xp.backend_name)"], env=env, capture_output=True, text=True)
    assert r.stdout.strip() == "numpy"


def test_cpu_torch_round_trip_shares_memory():
    t = torch.arange(6, dtype=torch.float32)
    a = X.from_torch(t)
    assert isinstance(a, np.ndarray)
    a[0] = 42
    assert t[0] == 42  # no copy
    back = X.to_torch(a)
    assert back.data_ptr() == t.data_ptr()
    np.testing.assert_array_equal(X.to_numpy(t), a)
    assert X.get_xp(a) is np


@pytest.mark.gpu
def test_cupy_dlpack_without_host_copy():
    cupy = pytest.importorskip("cupy")
    if X.backend_name != "cupy":
        pytest.skip("no usable CUDA device")
    t = torch.arange(1000, dtype=torch.float32, device="cuda")
    a = X.from_torch(t)
    assert isinstance(a, cupy.ndarray) and a.data.ptr == t.data_ptr()
    back = X.to_torch(a)
    assert back.is_cuda and back.data_ptr() == t.data_ptr()
    np.testing.assert_array_equal(X.to_numpy(a), np.arange(1000, dtype=np.float32))
    assert X.get_xp(a) is cupy
