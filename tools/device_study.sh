#!/usr/bin/env bash
# The case studies' full profile (the paper's depths and widths) on the device machine:
#   tools/device_study.sh depth|width [EPOCHS]     (installs nothing from the network)
# Carry: .whl (see device_check.sh) and .data_study/cifar-10-batches-py/{batches.meta,
# data_batch_1,test_batch}: the 64 MiB carry limit leaves out data_batch_2..5, so the models
# train on data_batch_1 (10,000 images) and are tested on all 10,000 test images.
# Call: run(command="bash tools/device_study.sh width 30 2>&1 | tee $OUT/log",
#           carry=[".whl", ".data_study"], timeout_s=580)
# A study stopped by the time limit keeps its finished variants in $OUT/STUDY/MODEL/study.json;
# carry them back (cp -r into .study_done/STUDY) and call again to train only the rest.
set -uo pipefail
source tools/device_env.sh || exit 1
STUDY=${1:?depth or width}
EPOCHS=${2:-30}
mkdir -p "$OUT/$STUDY"
if [ -d ".study_done/$STUDY" ]; then cp -r ".study_done/$STUDY/." "$OUT/$STUDY/"; fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
# (DEVICE=cpu VARIANTS=basecnn-x0.125 tools/device_study.sh width 1: a quick check off the device)
timeout 560 python3 - "$STUDY" "$EPOCHS" "$OUT/$STUDY" "${DEVICE:-cuda}" "${VARIANTS:-}" <<'PY'
import sys
from pathlib import Path

import torch

from cnnvis_gl.data.cifar10 import _read_py_batch, load_cifar10
from cnnvis_gl.data.imagedata import TensorImageData
from cnnvis_gl.study import run_study

study, epochs, out, device, variants = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]
over = {"epochs": epochs, "limit": None}
if variants:
    over["variants"] = tuple(variants.split(","))
root = Path(".data_study")
test = load_cifar10(root, "test")
pixels, labels = _read_py_batch(root / "cifar-10-batches-py" / "data_batch_1")
train = TensorImageData(
    torch.from_numpy(pixels.reshape(-1, 3, 32, 32).copy()), labels, name="cifar10-train-batch1",
    classes=test.classes, mean=test.mean, std=test.std, source="cifar10:data_batch_1",
)
run_study(study, out, "cifar10 (data_batch_1 + test_batch)", profile="full",
          overrides=over, device=device, figures=False,
          progress=False, data=(train, test))
print(open(Path(out) / "results.md").read())
PY
