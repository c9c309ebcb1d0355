#!/usr/bin/env bash
# Line coverage of the workspace's tests, per crate and for the critical paths (lock,
# transaction, recovery), with cargo-llvm-cov. Not part of CI: an instrumented run of
# every test takes about twice as long as the tests.
#
#   rustup component add llvm-tools-preview
#   cargo install cargo-llvm-cov --locked
#   scripts/coverage.sh            # runs the tests, then prints the tables
#   scripts/coverage.sh --report   # only prints the tables of the last run
#
# Process tests spawn the instrumented `checklist` binary; cargo-llvm-cov sets
# LLVM_PROFILE_FILE for them too, so what the children run is counted.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" != "--report" ]]; then
  cargo llvm-cov clean --workspace
  # Some tests run the binary as nobody (setpriv); its profile must still be written.
  mkdir -p target/llvm-cov-target && chmod 1777 target/llvm-cov-target
  RUST_BACKTRACE=0 cargo llvm-cov --workspace --no-report --no-fail-fast
  # The crash tests kill processes with SIGKILL, sometimes while one writes its
  # profile; llvm-profdata refuses to merge anything when one file is torn.
  profdata="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata"
  for profile in target/llvm-cov-target/*.profraw; do
    "$profdata" show "$profile" > /dev/null 2>&1 || { echo "dropping torn profile $profile" >&2; rm -f "$profile"; }
  done
fi

# The per-file table of `cargo llvm-cov report` (columns 8 and 9: lines, missed lines),
# summed per crate; test code under */tests/ is left out of the crates' figures.
cargo llvm-cov report --summary-only 2> /dev/null | awk '
  $1 ~ /\.rs$/ { total[$1] = $8; missed[$1] = $9 }
  END {
    n = split("core/src/ backends/src/ conformance/src/ cli/src/ examples/toml-backend/src/", crates, " ")
    printf "%-30s %8s %8s %8s\n", "crate (library code)", "lines", "missed", "cover"
    for (i = 1; i <= n; i++) {
      t = 0; m = 0
      for (f in total) if (index(f, crates[i]) == 1) { t += total[f]; m += missed[f] }
      if (t > 0) printf "%-30s %8d %8d %7.2f%%\n", crates[i], t, m, 100 * (t - m) / t
    }
    printf "\n%-42s %6s %6s %8s\n", "critical path", "lines", "missed", "cover"
    k = split("core/src/lock.rs backends/src/lock/file.rs backends/src/lock/format.rs backends/src/lock/in_process.rs core/src/coordinator.rs backends/src/fs/atomic.rs backends/src/file_store/mod.rs backends/src/sidecar/audit_log.rs core/src/recovery.rs backends/src/file_store/recovery.rs core/src/quarantine.rs", critical, " ")
    t = 0; m = 0
    for (i = 1; i <= k; i++) {
      f = critical[i]
      if (!(f in total)) { printf "%-42s not in the report\n", f; continue }
      printf "%-42s %6d %6d %7.2f%%\n", f, total[f], missed[f], 100 * (total[f] - missed[f]) / total[f]
      t += total[f]; m += missed[f]
    }
    printf "%-42s %6d %6d %7.2f%%\n", "all critical files", t, m, 100 * (t - m) / t
  }
'
