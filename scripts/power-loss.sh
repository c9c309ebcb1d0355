#!/usr/bin/env bash
# The power-loss simulation at scale (docs/decisions/0023-power-loss-model.md): every
# workload of backends/tests/integration/power_loss.rs with up to STATES crash states per
# crash point (all of them where there are fewer, a sample from the seed where there are
# more) instead of the test run's 8, then the counts per workload. Not part of CI: it
# takes about 9 minutes with the default.
#
#   scripts/power-loss.sh                 # 256 states per crash point, the fixed seed
#   scripts/power-loss.sh 4096            # more (the restore workload alone: 10 minutes)
#   CHECKLIST_POWER_LOSS_SEED=7 scripts/power-loss.sh   # another sample
set -euo pipefail
cd "$(dirname "$0")/.."

states="${1:-256}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

started=$(date +%s)
CHECKLIST_POWER_LOSS_STATES="$states" RUST_BACKTRACE=0 \
  cargo test -p checklist-backends --all-features --test integration power_loss -- --nocapture 2>&1 | tee "$log" \
  | grep -E '^test result|FAILED|panicked' || true
elapsed=$(( $(date +%s) - started ))

echo
echo "Crash states checked, up to $states per crash point (wall time ${elapsed} s, build included):"
grep -oE 'power_loss [^:]+: [0-9]+ crash points.*' "$log" | sed 's/^power_loss /  /' | sort
grep -qE '^test result: ok' "$log"
