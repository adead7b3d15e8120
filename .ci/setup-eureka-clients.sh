#!/usr/bin/env bash
# Installs the real Eureka clients that lameduck-registry's compatibility tests
# drive, at pinned versions, under target/eureka-clients/ (ignored by git):
#   target/eureka-clients/venv           py-eureka-client (PyPI)
#   target/eureka-clients/node_modules   eureka-js-client (npm)
# The tests fail with a message naming this script when either is missing.
# Re-running is cheap: an install already at the pinned version is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

PY_EUREKA_CLIENT=0.13.3
EUREKA_JS_CLIENT=4.5.0
dir=target/eureka-clients
mkdir -p "$dir"

echo "== py-eureka-client $PY_EUREKA_CLIENT"
if ! "$dir/venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('py-eureka-client') != '$PY_EUREKA_CLIENT')" 2>/dev/null; then
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "py-eureka-client==$PY_EUREKA_CLIENT"
fi

echo "== eureka-js-client $EUREKA_JS_CLIENT"
if ! grep -qs "\"version\": \"$EUREKA_JS_CLIENT\"" "$dir/node_modules/eureka-js-client/package.json"; then
    (cd "$dir" && npm install --silent --no-audit --no-fund --no-save --prefix . "eureka-js-client@$EUREKA_JS_CLIENT")
fi
echo "eureka clients ready in $dir"
