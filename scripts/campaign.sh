#!/usr/bin/env bash
# The robustness campaign (issue 8): hostile-input targets with many cases,
# the path traversal / injection tables against the real plugin, and the
# SIGKILL-mid-ADD crash test with many rounds. Prints one table:
# target/trial, count, failures, time.
#
#   sudo scripts/campaign.sh                    # defaults below
#   NETBOOT_FUZZ_CASES=100000 NETBOOT_CRASH_ROUNDS=1000 sudo scripts/campaign.sh
#
# cargo-fuzz needs a nightly toolchain, which this project's machines cannot
# install; the hostile-input targets are proptest strategies plus a seeded
# corpus mutator (tests/corpus/fuzzkit.rs) on stable. NETBOOT_FUZZ_SEED
# replays a run. Runs only in network namespaces the tests create.
set -euo pipefail
cd "$(dirname "$0")/.."

export NETBOOT_FUZZ_CASES="${NETBOOT_FUZZ_CASES:-20000}"
export NETBOOT_CRASH_ROUNDS="${NETBOOT_CRASH_ROUNDS:-1000}"
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

# Mutation targets print "fuzz <target>: N cases (...), 0 failures, Ts".
fuzz_rows() {
  local log="$1"
  grep -E '^fuzz [a-z_]+: ' "$log" | while read -r _ target cases _; do
    local t; t=$(grep -E "^fuzz ${target%:}: " "$log" | head -1 | sed -E 's/.* ([0-9.]+s), seed.*/\1/')
    echo "| fuzz ${target%:} (mutated corpus) | $cases | 0 | $t |"
  done
  # A failed target prints "fuzz <target>: case N ... broke a property/panicked".
  grep -E '^thread .* panicked|broke a property|ran over' "$log" | head -3 | sed 's/^/    /' >&2 || true
}

for spec in "cni:-p cni --test hostile_input" \
            "plugin:-p netboot-cni --test hostile_input" \
            "bootstrap:-p netboot --test hostile_input" \
            "runner:-p podrun --test hostile_spec"; do
  name="${spec%%:*}"; args="${spec#*:}"
  # shellcheck disable=SC2086
  run "fuzz-$name" $args
  while IFS= read -r r; do rows+=("$r"); done < <(fuzz_rows "$log_dir/fuzz-$name.log")
  # proptest targets: NETBOOT_FUZZ_CASES cases each.
  n_prop=$(grep -cE '^test [a-z_]+ \.\.\. ok' "$log_dir/fuzz-$name.log" || true)
  n_bad=$(grep -cE '^test [a-z_]+ \.\.\. FAILED' "$log_dir/fuzz-$name.log" || true)
  row "$name: all tests of the target binary (proptest ones at $NETBOOT_FUZZ_CASES cases)" "$((n_prop + n_bad)) tests" "$n_bad" "$elapsed"
done

run hostile-plugin -p netboot-tests --test hostile_plugin
n_bad=$(grep -cE '^test .* FAILED' "$log_dir/hostile-plugin.log" || true)
n_ok=$(grep -cE '^test .* ok$' "$log_dir/hostile-plugin.log" || true)
row "path traversal / injection tables, real netboot-cni in node netns" "$((n_ok + n_bad)) tests" "$n_bad" "$elapsed"

run crash -p netboot-tests --test plugin_native sigkill_during_add_then_del_or_gc_restores_the_node
tally=$(grep -E '^crash test: ' "$log_dir/crash.log" | tail -1 || true)
rounds=$(sed -E 's/^crash test: ([0-9]+) rounds.*/\1/' <<<"$tally")
killed=$(sed -nE 's/.*killed: ([0-9]+).*/\1/p' <<<"$tally")
crash_fail=0; grep -qE '^test .* FAILED' "$log_dir/crash.log" && crash_fail=1
row "SIGKILL mid-ADD (native), then DEL or GC restores the node exactly" "${rounds:-?} rounds (${killed:-?} killed mid-ADD)" "$crash_fail" "$elapsed"

echo
echo "| target / trial | count | failures | time |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "NETBOOT_FUZZ_CASES=$NETBOOT_FUZZ_CASES NETBOOT_CRASH_ROUNDS=$NETBOOT_CRASH_ROUNDS; logs: $log_dir"
[ -n "$tally" ] && echo "crash tally: ${tally#crash test: }"
exit "$fail"
