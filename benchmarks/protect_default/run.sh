#!/usr/bin/env bash
# Cloak every shared test image with the default preset through the CLI and summarise the figures.
# Usage (from the repo root): bash benchmarks/protect_default/run.sh [extra glazeish protect options]
set -euo pipefail
here=$(dirname "$0")
out=${OUT:-benchmarks/_scratch/protect_default}
export GLAZEISH_MODELS=${GLAZEISH_MODELS:-../shared/models}
glazeish protect ../shared/images/paintings ../shared/images/flat -o "$out" --overwrite --json --quiet "$@" \
  > "$here/results.jsonl"
python "$here/summarize.py" "$here/results.jsonl" > "$here/RESULTS.md"
cat "$here/RESULTS.md"
