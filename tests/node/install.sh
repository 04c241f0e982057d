#!/usr/bin/env bash
# Installs the interop client's npm packages (pinned by package-lock.json) once, even when several
# tests ask at the same time: the first takes the lock and installs, the others wait and find it done.
set -euo pipefail
cd "$(dirname "$0")"
exec 9>.install.lock
flock 9
if [ -f node_modules/hyperstack-typescript/package.json ] && [ -f node_modules/ws/package.json ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
