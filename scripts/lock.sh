#!/usr/bin/env bash
# Regenerate requirements.lock from the current environment (after a deliberate upgrade).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  sed -n '1,/^$/p' requirements.lock | grep '^#'
  echo
  pip freeze --exclude-editable | grep -viE '^(teacherlm|torchvision|torchaudio|torchcodec|triton)=='
} > requirements.lock.new
mv requirements.lock.new requirements.lock
