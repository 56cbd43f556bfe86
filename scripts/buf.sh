#!/usr/bin/env bash
# Run buf (from the npm package @bufbuild/buf, pinned in package.json) on this repo.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/buf ] || [ package.json -nt node_modules/.bin/buf ]; then
  command -v npm >/dev/null || { echo "buf needs Node.js and npm (apt-get install nodejs npm)" >&2; exit 1; }
  npm ci --silent --no-audit --no-fund >/dev/null
fi
exec node_modules/.bin/buf "$@"
