#!/bin/sh
# Bootstraps the toolchain on a machine that has only Node and npm, then runs "$@".
# pnpm is installed into a repo-local, git-ignored prefix (.tools/) from the npm registry:
# no global state, no corepack (whose signature check fails on Node 20; see docs/toolchain.md).
set -e
root=$(cd "$(dirname "$0")/.." && pwd)
pnpm_version=$(node -p "require('$root/package.json').packageManager.split('@')[1]")
pnpm_bin="$root/.tools/node_modules/.bin/pnpm"
if [ ! -x "$pnpm_bin" ] || [ "$("$pnpm_bin" --version 2>/dev/null)" != "$pnpm_version" ]; then
  echo "hmmkit: installing pnpm $pnpm_version into .tools/" >&2
  npm install --prefix "$root/.tools" --no-audit --no-fund --loglevel=error "pnpm@$pnpm_version" >&2
fi
export PATH="$root/.tools/node_modules/.bin:$root/node_modules/.bin:$PATH"
export TURBO_TELEMETRY_DISABLED=1
export TURBO_NO_UPDATE_NOTIFIER=1
cd "$root"
if [ "${HMMKIT_SKIP_INSTALL:-}" != 1 ]; then
  if [ -n "${CI:-}" ]; then frozen=--frozen-lockfile; else frozen=--prefer-offline; fi
  pnpm install $frozen --reporter=silent >&2
fi
exec "$@"
