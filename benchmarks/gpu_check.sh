#!/usr/bin/env bash
# The GPU check on a bare single-GPU machine (PyTorch and transformers installed, no package index):
#
#   bash benchmarks/gpu_check.sh --prepare [PIP-ARGS]  # here, with an index: the light wheels into ./wheels
#   bash benchmarks/gpu_check.sh [OUT.json]            # there: install the missing ones, then measure
#
# Beyond torch and transformers, teacherlm's engines, eval and configs need pydantic (and its
# helpers); lm-evaluation-harness's HF backend needs lm_eval itself, accelerate (+ psutil) and
# requests (+ its helpers): about 13 MB of wheels, well under the 64 MiB a bare machine is sent
# (`wheels/` travels beside the working tree). lm_eval and accelerate go in without their declared
# dependencies: lm_eval's (datasets, pyarrow, evaluate...) serve its task suite, which the check
# does not use, and accelerate's are torch's. The wheels are for this machine's Python; for another,
# pass e.g. `--prepare --python-version 3.12`. The check itself: benchmarks/gpu_check.py (under
# 8 minutes on one GPU); its CPU fallback runs in CI (tests/test_gpu_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--prepare" ]]; then
  shift
  rm -rf wheels
  # pydantic and requests with their own pins (pydantic-core must match pydantic exactly)
  python -m pip download --only-binary=:all: -d wheels "$@" pydantic requests
  python -m pip download --only-binary=:all: --no-deps -d wheels "$@" lm_eval==0.4.13 accelerate psutil
  rm -f wheels/typing_extensions-*.whl  # torch's own dependency: already there
  du -sh wheels
  exit 0
fi
# Install each wheel whose distribution is missing here (never replace what the machine has).
python - <<'EOF'
import glob, importlib.metadata as md, subprocess, sys

missing = []
for wheel in sorted(glob.glob("wheels/*.whl")):
    name = wheel.split("/")[-1].split("-")[0]
    try:
        md.version(name)
    except md.PackageNotFoundError:
        missing.append(wheel)
if missing:
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", *missing], check=True)
EOF
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # teacherlm_core from this tree, not installed
timeout 480 python benchmarks/gpu_check.py --out "${1:-gpu_check.json}"
