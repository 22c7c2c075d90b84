#!/usr/bin/env bash
# GPU checks + benchmarks for the device machine (NVIDIA H100/H200), run from the repo root:
#   tools/device_check.sh            (installs nothing from the network)
# Needs, carried beside the tree (all git-ignored via .git/info/exclude):
#   .whl/   wheels missing there: rectpack, moderngl, glcontext (cp312)
#   .data/cifar10/cifar-10-batches-py/{test_batch,batches.meta}
#   .gl/    libglvnd/EGL loader .debs (see the device tool's README: apt-get download libegl1 …)
# Call: run(command="bash tools/device_check.sh", carry=[".whl", ".data", ".gl"], timeout_s=540)
# Prints: GPU info, the gpu-marked tests, bench_stats on cuda, and the analysis GPU timing table.
set -uo pipefail
source tools/device_env.sh || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, cupy, numpy; from cnnvis_gl import xp; print('torch', torch.__version__, 'cupy', cupy.__version__, 'numpy', numpy.__version__, 'backend', xp.backend_name)"
echo "== gpu tests"
python3 -m pytest -q -rs -p no:cacheprovider -m gpu tests 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
echo "== bench_stats (cuda)"
python3 tools/bench_stats.py --device cuda --limit 2000 --repeat 3 2>&1 | tail -8
if [ -f tools/bench_gpu_analysis.py ]; then
  echo "== analysis GPU path"
  python3 tools/bench_gpu_analysis.py 2>&1 | tail -30
fi
echo "== bench_models (cuda, 10,000 images at 224 px, batch 256; issue 9's ratio target <= 1.3)"
timeout 300 python3 tools/bench_models.py --device cuda --images 10000 --batch-size 256 resnet50 densenet121 efficientnet_b0 2>&1 | tail -6
echo "== bench_recorder (cuda)"
python3 tools/bench_recorder.py --device cuda --repeat 3 2>&1 | tail -9
echo "== bench_render (EGL on the GPU)"
timeout 240 python3 tools/bench_render.py --full --budget 0.5 2>&1 | tail -16
echo "== bench_video (1080p tour frames on the GPU's EGL; render only where PyAV is not carried)"
timeout 240 python3 tools/bench_video.py --size 1920x1080 2>&1 | tail -7
echo "== bench_distributed (1 rank vs 2 ranks sharing the GPU through Gloo; NCCL needs a GPU per rank)"
timeout 240 python3 tools/bench_distributed.py --model resnet20 --images 5000 --ranks 1,2 2>&1 | tail -8
echo "== bench_ablation (cuda; issue 13's target <= 1.5 forward passes per ablated cluster)"
timeout 120 python3 tools/bench_ablation.py --device cuda --images 1000 2>&1 | tail -6
