"""Statistics on CUDA equal those on the CPU (run on the device machine; skipped without CUDA)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import cnnvis_gl as cv
from cnnvis_gl.data import open_data
from cnnvis_gl.models import build_model

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_statistics_equal_cpu(cifar_dir):
    data = open_data(f"cifar10:{cifar_dir}", "test").subset(256)
    torch.manual_seed(0)
    cpu_model = build_model("resnet20").eval()
    gpu_model = copy.deepcopy(cpu_model).cuda()
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    a = cv.analyze(cpu_model, data, progress=False)
    b = cv.analyze(gpu_model, data, progress=False)
    assert sorted(a.keys()) == sorted(b.keys())
    for key in a.keys():
        if key.endswith(("A_max", "A_mean", "topk_value", "max_response")) or key.startswith("weights/"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-3, atol=1e-4, err_msg=key)
    # top-k sets agree except where responses are within float noise of each other
    same = np.mean(
        [np.mean(a["image_index"][a[k]] == b["image_index"][b[k]]) for k in a.keys() if k.endswith("topk_image")]
    )
    assert same > 0.95
    assert a.meta["probe_error"] == pytest.approx(b.meta["probe_error"], abs=2 / 256)
