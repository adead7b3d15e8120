#!/bin/sh
# Expected: LD007 on the last line (the app runs without exec; fixable).
set -e
if [ -n "$CONFIG_URL" ]; then
  wget -qO /etc/app.yaml "$CONFIG_URL"
fi
/usr/local/bin/app --config /etc/app.yaml "$@"
