#!/bin/sh
# Checks the installable `hmmkit` package the way an outside project uses it: builds it, packs it
# (npm pack), installs the tarball into an empty temporary project (npm install, dependencies
# from the registry), then runs docs/first-driver.mjs against it, type-checks a TypeScript
# consumer, and runs the `hmmkit` bin under plain node (a 2-cell sweep on worker threads).
# Usage: sh scripts/pack-test.sh   (network access to the npm registry needed)
set -e
root=$(cd "$(dirname "$0")/.." && pwd)
HMMKIT_SKIP_INSTALL=${HMMKIT_SKIP_INSTALL:-} sh "$root/scripts/run.sh" pnpm --filter hmmkit build >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root/packages/hmmkit"
tarball=$(npm pack --silent --pack-destination "$tmp")
echo "pack-test: $tarball ($(du -k "$tmp/$tarball" | cut -f1) KiB)"
if tar -tzf "$tmp/$tarball" | grep -E '(^package/(src|test|bench)/|\.test\.)'; then
  echo "pack-test: the tarball holds sources or tests" >&2
  exit 1
fi
mkdir "$tmp/app"
cd "$tmp/app"
npm init -y >/dev/null
npm pkg set type=module >/dev/null
npm install --no-audit --no-fund --loglevel=error "$tmp/$tarball" >/dev/null
cp "$root/docs/first-driver.mjs" .
node first-driver.mjs
cat > consumer.ts <<'TS'
import { createSim, createSvmWorld, runKernel, type SvmWorld, worldVerdict, type Metrics, runExperiment } from 'hmmkit';
const sim = createSim({ seed: 2 });
const world: SvmWorld = await createSvmWorld(sim);
const m: Metrics = await runExperiment({ workload: { generator: 'streaming', params: { footprintBytes: 1 << 20 } } });
export const check: [typeof runKernel, number, string] = [runKernel, m.farFaults, worldVerdict(world).line];
TS
"$root/node_modules/.bin/tsc" --noEmit --strict --module nodenext --moduleResolution nodenext --target es2022 \
  --skipLibCheck false --types node --typeRoots "$root/node_modules/@types" consumer.ts
echo "pack-test: a TypeScript consumer type-checks against dist/index.d.ts"
./node_modules/.bin/hmmkit sweep --workloads streaming --footprint 0.5 --granules 4k,xe --notifiers per-range \
  --threads 2 --out "$tmp/app/r" --quiet | tail -n 2
./node_modules/.bin/hmmkit sweep --vram 3 2>/dev/null && exit 1 || [ $? -eq 2 ]
echo "pack-test: ok (installed from the tarball; library, types and bin work under plain node)"
