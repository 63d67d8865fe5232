#!/bin/sh
# The full check: lint, typecheck, build (tsc emit) and every package's tests through turbo, then one closing
# line "N passed, N failed" added up from each package's vitest JSON report.
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rm -rf packages/*/reports examples/*/reports
status=0
turbo run lint typecheck build test --continue --output-logs=errors-only || status=$?
node scripts/summary.mjs || status=$?
exit $status
