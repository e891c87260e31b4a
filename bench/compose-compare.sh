#!/bin/bash
# The 200-problem comparison (BENCHMARKS.md, "Big/small composition"). Modes take turns in blocks of 50 problems
# (each run resumes where it stopped, --limit grows), so load from other work on the machine falls on all of them alike.
set -e
cd "$(dirname "$0")/.."
export LYNX_THREADS=1
BIG=${BIG:-models/lynx-demo/model.gguf}
SMALL=${SMALL:-models/lynx-demo-small/model.gguf}
OUT=${OUT:-compose-exp}
run() { local limit=$1; shift; echo "== limit $limit: $*"; npx tsx src/cli/main.ts eval -m $BIG --small $SMALL -b demo:test --limit $limit -o $OUT -n 600 -c 1 -s 0 "$@"; }
RATIO=
for limit in 50 100 150 200; do
  run $limit --method big
  run $limit --method small --offload-hint
  run $limit --method split
  if [ -z "$RATIO" ]; then
    SHARE=$(python3 -c "import json;print(json.load(open('$OUT/eval/demo-test/split/segment=128,every=8/metrics.json'))['extra']['compose']['offloadShare'])")
    RATIO=$(python3 -c "s=$SHARE;print(round((1-s)/s,3))")
    echo "split offload share $SHARE (first 50) -> switch ratio $RATIO"
  fi
  run $limit --method random-switch --offload-hint --switch-ratio $RATIO
  run $limit --method logprob-subselect
  run $limit --method specreason
done
npx tsx src/cli/main.ts report $OUT --markdown $OUT/results.md
echo done
