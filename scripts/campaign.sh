#!/usr/bin/env bash
# The robustness campaign (issue 8): hostile-input targets with many cases,
# the path traversal / injection tables against the real plugin, the
# crash trials (SIGKILL mid-ADD and mid-DEL in native, bridge and flannel
# mode, NETBOOT_CRASH_ROUNDS per mode and phase), the truncation trials
# (damaged records and IP files, NETBOOT_TRUNC_ROUNDS per mode), and native-mode load on one
# node (many pods at several parallelisms, an exhausted range). Prints one table:
# target/trial, count, failures, time.
#
#   sudo scripts/campaign.sh                    # defaults below
#   NETBOOT_FUZZ_CASES=100000 NETBOOT_CRASH_ROUNDS=1000 sudo scripts/campaign.sh
#   NETBOOT_LOAD_PODS=253 NETBOOT_LOAD_PARALLELISM=4,64 sudo scripts/campaign.sh
#
# cargo-fuzz needs a nightly toolchain, which this project's machines cannot
# install; the hostile-input targets are proptest strategies plus a seeded
# corpus mutator (tests/corpus/fuzzkit.rs) on stable. NETBOOT_FUZZ_SEED
# replays a run. Runs only in network namespaces the tests create.
set -euo pipefail
cd "$(dirname "$0")/.."

export NETBOOT_FUZZ_CASES="${NETBOOT_FUZZ_CASES:-20000}"
# Crash trials per mode *and* phase: 500 = 1000 trials per mode.
export NETBOOT_CRASH_ROUNDS="${NETBOOT_CRASH_ROUNDS:-500}"
# Truncation rounds per mode (each damages three files of live pods).
export NETBOOT_TRUNC_ROUNDS="${NETBOOT_TRUNC_ROUNDS:-50}"
export NETBOOT_LOAD_PODS="${NETBOOT_LOAD_PODS:-250}"
export NETBOOT_LOAD_PARALLELISM="${NETBOOT_LOAD_PARALLELISM:-2,8,32}"
export NETBOOT_TEST_NETNS_PREFIX="${NETBOOT_TEST_NETNS_PREFIX:-nbc-}"
export PATH="$HOME/.cargo/bin:$PATH"
log_dir="$(mktemp -d /tmp/netboot-campaign.XXXXXX)"
rows=()
fail=0

row() { rows+=("| $1 | $2 | $3 | $4 |"); }

# run NAME CARGO-ARGS... : one cargo test invocation, output kept in the log.
run() {
  local name="$1"; shift
  local start end rc=0
  start=$(date +%s.%N)
  cargo test "$@" -- --nocapture --test-threads=1 >"$log_dir/$name.log" 2>&1 || rc=$?
  end=$(date +%s.%N)
  elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1fs", b - a }')
  [ "$rc" = 0 ] || { fail=1; echo "FAILED: $name (log: $log_dir/$name.log)" >&2; }
  return 0
}

echo "building..." >&2
cargo build --workspace --quiet

# Mutation targets print "fuzz <target>: N cases (...), 0 failures, Ts, seed S"
# (libtest may put it on the same line as "test <name> ... ").
fuzz_rows() {
  grep -oE 'fuzz [a-z_]+: [0-9]+ cases \([0-9]+ accepted, [0-9]+ rejected\), 0 failures, [0-9.]+s' "$1" |
    sed -E 's/^fuzz ([a-z_]+): ([0-9]+) cases \(([0-9]+) accepted, ([0-9]+) rejected\), 0 failures, ([0-9.]+s)$/| fuzz \1 (mutated corpus; \3 accepted, \4 rejected) | \2 | 0 | \5 |/'
  # A failed target names its case, seed and input.
  grep -oE 'fuzz [a-z_]+: case [0-9]+ .*' "$1" | head -3 | sed 's/^/    /' >&2 || true
}

# "test result: ok. 9 passed; 0 failed; ..." of a test binary.
counts() { grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$1" | tail -1 | sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed/\1 \2/'; }

for spec in "cni:-p cni --test hostile_input" \
            "plugin:-p netboot-cni --test hostile_input" \
            "bootstrap:-p netboot --test hostile_input" \
            "runner:-p podrun --test hostile_spec"; do
  name="${spec%%:*}"; args="${spec#*:}"
  # shellcheck disable=SC2086
  run "fuzz-$name" $args
  while IFS= read -r r; do rows+=("$r"); done < <(fuzz_rows "$log_dir/fuzz-$name.log")
  read -r ok bad < <(counts "$log_dir/fuzz-$name.log" || echo "0 1")
  row "$name: whole test binary (proptest targets at $NETBOOT_FUZZ_CASES cases each, tables, corpus replay)" "$((ok + bad)) tests" "${bad:-1}" "$elapsed"
done

run hostile-plugin -p netboot-tests --test hostile_plugin
read -r ok bad < <(counts "$log_dir/hostile-plugin.log" || echo "0 1")
row "path traversal / injection tables, real netboot-cni in node netns" "$((ok + bad)) tests" "${bad:-1}" "$elapsed"

# Crash trials: one test per mode and phase, each printing
# "crash trial <mode> mid-<PHASE>: N rounds, K killed mid-op, F finished first, X failures (...)".
run crash -p netboot-tests --test crash_trials
read -r _ crash_fail < <(counts "$log_dir/crash.log" || echo "0 1")
crash_tallies=$(grep -oE 'crash trial [a-z]+ mid-[A-Z]+: .*' "$log_dir/crash.log" || true)
for mode in native bridge flannel; do
  for phase in ADD DEL; do
    tally=$(grep -E "^crash trial $mode mid-$phase: " <<<"$crash_tallies" | tail -1 || true)
    rounds=$(sed -nE 's/.*: ([0-9]+) rounds.*/\1/p' <<<"$tally")
    killed=$(sed -nE 's/.* ([0-9]+) killed mid-op.*/\1/p' <<<"$tally")
    failures=$(sed -nE 's/.* ([0-9]+) failures.*/\1/p' <<<"$tally")
    row "SIGKILL mid-$phase ($mode), then DEL or GC restores the node exactly" \
      "${rounds:-?} trials (${killed:-?} killed mid-$phase)" "${failures:-${crash_fail:-1}}" "$elapsed"
  done
done

# "truncation trial <mode>: N rounds, D files damaged (...), A ADDs checked, X failures"
run trunc -p netboot-tests --test truncation_trials
read -r _ trunc_fail < <(counts "$log_dir/trunc.log" || echo "0 1")
for mode in native bridge flannel; do
  tally=$(grep -oE "truncation trial $mode: .*" "$log_dir/trunc.log" | tail -1 || true)
  rounds=$(sed -nE 's/.*: ([0-9]+) rounds.*/\1/p' <<<"$tally")
  files=$(sed -nE 's/.* ([0-9]+) files damaged.*/\1/p' <<<"$tally")
  adds=$(sed -nE 's/.* ([0-9]+) ADDs checked.*/\1/p' <<<"$tally")
  failures=$(sed -nE 's/.* ([0-9]+) failures$/\1/p' <<<"$tally")
  row "zero-byte / half-written / garbage files of live pods ($mode): no held IP reused, DEL or GC restores the node" \
    "${rounds:-?} rounds (${files:-?} files damaged, ${adds:-?} ADDs checked)" "${failures:-${trunc_fail:-1}}" "$elapsed"
done

# "load test: 250 pods, parallelism [2, 8, 32], ADDs 1.3s, DELs 2.7s, clean"
# and "exhaust test: 24 ADDs, 13 IPs, 11 failed with code 11".
run load -p netboot-tests --test load_native
load=$(grep -oE 'load test: .*' "$log_dir/load.log" | tail -1 | sed -E 's/^load test: //; s/, clean$//' || true)
exhaust=$(grep -oE 'exhaust test: .*' "$log_dir/load.log" | tail -1 | sed -E 's/^exhaust test: //' || true)
read -r _ load_fail < <(counts "$log_dir/load.log" || echo "0 1")
row "native load on one node: ADD then DEL at each parallelism, /24 clean after; /28 exhausted concurrently (${exhaust:-?})" "${load:-?}" "${load_fail:-1}" "$elapsed"

echo
echo "| target / trial | count | failures | time |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "NETBOOT_FUZZ_CASES=$NETBOOT_FUZZ_CASES NETBOOT_CRASH_ROUNDS=$NETBOOT_CRASH_ROUNDS NETBOOT_TRUNC_ROUNDS=$NETBOOT_TRUNC_ROUNDS; logs: $log_dir"
[ -n "$crash_tallies" ] && printf '%s\n' "$crash_tallies"
exit "$fail"
