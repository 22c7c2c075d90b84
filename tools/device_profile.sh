#!/usr/bin/env bash
# Where analyze's time goes on the GPU (issue 9's ratio): bench_models at 1,000 and 10,000 images,
# and a phase breakdown + profile of ResNet-50.  Same carried files as tools/device_check.sh:
#   run(command="bash tools/device_profile.sh", carry=[".whl", ".data", ".gl"], timeout_s=420)
set -uo pipefail
source tools/device_env.sh || exit 1
python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu_stats.py 2>&1 | tail -3
python3 tools/profile_analyze.py resnet50 --device cuda --images 1000 --batch-size 100 --top 40 2>&1 | head -70
for n in 1000 10000; do
  timeout 300 python3 tools/bench_models.py --device cuda --images $n --batch-size 100 resnet50 densenet121 efficientnet_b0 2>&1 | tail -5
done
