#!/bin/sh
# The docs/lab.md GNU parallel example, checked: a small sweep as 2 shards under GNU parallel,
# merged, compared cell for cell (wallMs aside) with the same sweep run on one machine.
# Usage: sh scripts/shard-example.sh   (needs GNU parallel; run `npm run setup` first)
set -e
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v parallel >/dev/null || { echo "shard-example: GNU parallel is not installed" >&2; exit 1; }
out=$(mktemp -d)
flags="--workloads streaming,stencil --footprint 1 --granules 4k,xe --notifiers per-range --seeds 1,2 --quiet"
parallel -j2 "npm run -s hmmkit -- sweep $flags --threads 1 --shard {}/2 --out $out/shard-{}" ::: 0 1 >/dev/null
npm run -s hmmkit -- merge "$out"/shard-*.json --out "$out/merged" --quiet >/dev/null
npm run -s hmmkit -- sweep $flags --threads 0 --out "$out/one" >/dev/null
node -e "
const a = require('$out/merged.json'), b = require('$out/one.json');
const s = (r) => JSON.stringify(r.cells.map((c) => ({ ...c, metrics: { ...c.metrics, wallMs: 0 } })));
if (a.cells.length !== 8 || s(a) !== s(b)) { console.error('shard-example: merged results differ from the one-machine run'); process.exit(1); }
console.log('shard-example: 2 shards under GNU parallel, merged = one-machine run, 8 cells equal');
"
rm -rf "$out"
