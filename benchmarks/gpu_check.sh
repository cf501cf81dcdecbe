#!/usr/bin/env bash
# The GPU check on a bare single-GPU machine (PyTorch and transformers installed, no package index):
#
#   bash benchmarks/gpu_check.sh --prepare     # here, with an index: the light wheels into ./wheels (~3 MB)
#   bash benchmarks/gpu_check.sh [OUT.json]    # there: install them if missing, then measure (under 8 min)
#
# teacherlm's engines, eval and configs need only pydantic (and its three helpers) beyond torch and
# transformers; lm-evaluation-harness is measured where it is installed and otherwise left out,
# which the JSON says (its dependencies, pyarrow among them, are far over the 64 MiB a bare
# machine is sent). The CPU fallback (--cpu-fallback) runs in CI: tests/test_gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(pydantic pydantic-core annotated-types typing-inspection)
if [[ "${1:-}" == "--prepare" ]]; then
  pins=()
  for name in "${WHEELS[@]}"; do pins+=("$name==$(python -c "import importlib.metadata as m; print(m.version('$name'))")"); done
  python -m pip download --no-deps --only-binary=:all: -d wheels "${pins[@]}"
  exit 0
fi
if ! python -c "import pydantic" 2>/dev/null; then
  python -m pip install --no-index --no-deps --find-links wheels "${WHEELS[@]}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # teacherlm_core from this tree, not installed
timeout 480 python benchmarks/gpu_check.py --out "${1:-gpu_check.json}"
