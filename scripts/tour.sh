#!/usr/bin/env bash
# A short scripted tour of the checklist CLI in a throwaway directory:
# init → start → step complete → status → verify → a hand-made corruption → verify.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p checklist-cli
bin="$PWD/target/release/checklist"
project="$(mktemp -d "${TMPDIR:-/tmp}/checklist-tour.XXXXXX")"
trap 'rm -rf "$project"' EXIT
run() { printf '\n$ checklist %s\n' "$*"; "$bin" --dir "$project" "$@"; }

run init
run start --template release --template-version 1.4.0 --step build
run step complete build --duration-ms 1830 --command "cargo build" --exit-code 0 --stdout "Finished release"
run step current test
run step complete test --result failure --command "cargo test" --exit-code 101 --stderr "1 test failed"
run step complete test --duration-ms 5400
run status
run verify
run --json verify
printf '\n# %s\n' "the state file, as a person reads it:"
cat "$project/.checklist/state.yaml"

printf '\n# %s\n' "now edit a value by hand without fixing the checksum ..."
sed -i.bak 's/exitCode: 101/exitCode: 0/' "$project/.checklist/state.yaml"
set +e
run verify
code=$?
set -e
printf '\n# verify exited with %s (5 = state corrupted); the file was left as it was.\n' "$code"
[ "$code" -eq 5 ]
