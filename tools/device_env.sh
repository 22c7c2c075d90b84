# Sourced by the device scripts (tools/device_check.sh, tools/device_profile.sh) from the repo root:
# unpacks the carried EGL loaders (.gl), installs the carried wheels (.whl) into /tmp/site and
# points CNNVIS_DATA at the carried CIFAR-10 (.data).  Installs nothing from the network.
if ls .gl/*.deb >/dev/null 2>&1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export CNNVIS_DATA="$PWD/.data"
