#!/bin/sh
# Runs every tinybench script of the current package, one process each, one after another
# (2 cores: concurrent benches would measure each other). Pass a file name to run only that one.
set -e
if [ ! -d bench ]; then echo "no bench/ folder"; exit 0; fi
for f in bench/*.bench.ts; do
  [ -e "$f" ] || continue
  if [ -n "${1:-}" ] && [ "$(basename "$f")" != "$1" ]; then continue; fi
  echo "== $(basename "$(pwd)")/$f"
  tsx "$f"
done
