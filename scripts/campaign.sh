#!/usr/bin/env bash
# The robustness campaign (issue 8): hostile-input targets with many cases,
# the path traversal / injection tables against the real plugin, the
# crash trials (SIGKILL mid-ADD and mid-DEL in native, bridge and flannel
# mode, NETBOOT_CRASH_ROUNDS per mode and phase), the truncation trials
# (damaged records and IP files, NETBOOT_TRUNC_ROUNDS per mode), native-mode
# load on one node (many pods at several parallelisms, an exhausted range),
# the reboot simulation with many rounds, podrun's faults (SIGKILL mid-run
# rounds under load, containerd restarted, pause killed, CNI plugin missing
# at rm, an orphaned shim), agent faults as counted trials with heal times
# (etcd restarted, its member killed or cut off, lease deleted or expired,
# subnet taken while the agent was stopped, flannel.1 deleted or its
# address/routes/ARP/FDB removed, two agents on a node), and agent churn
# (2 real agents, 100 simulated nodes joining, leaving and restarting for
# minutes). Prints one table: target/trial, count, failures, time.
#
#   sudo scripts/campaign.sh                    # defaults below
#   NETBOOT_FUZZ_CASES=100000 NETBOOT_CRASH_ROUNDS=1000 sudo scripts/campaign.sh
#   NETBOOT_LOAD_PODS=253 NETBOOT_LOAD_PARALLELISM=4,64 sudo scripts/campaign.sh
#   NETBOOT_REBOOT_ROUNDS=60 sudo scripts/campaign.sh
#   NETBOOT_PODRUN_KILL_ROUNDS=50 NETBOOT_PODRUN_KILL_LOAD=0 sudo scripts/campaign.sh
#   NETBOOT_AGENT_FAULT_ROUNDS=30 sudo scripts/campaign.sh
#   NETBOOT_CHURN_SECS=900 NETBOOT_CHURN_NODES=150 sudo scripts/campaign.sh
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
export NETBOOT_REBOOT_ROUNDS="${NETBOOT_REBOOT_ROUNDS:-30}"
export NETBOOT_PODRUN_KILL_ROUNDS="${NETBOOT_PODRUN_KILL_ROUNDS:-100}"
export NETBOOT_PODRUN_KILL_LOAD="${NETBOOT_PODRUN_KILL_LOAD:-2}"
export NETBOOT_PODRUN_RESTART_ROUNDS="${NETBOOT_PODRUN_RESTART_ROUNDS:-20}"
export NETBOOT_AGENT_FAULT_ROUNDS="${NETBOOT_AGENT_FAULT_ROUNDS:-10}"
export NETBOOT_CHURN_SECS="${NETBOOT_CHURN_SECS:-300}"
export NETBOOT_CHURN_NODES="${NETBOOT_CHURN_NODES:-100}"
export NETBOOT_TEST_NETNS_PREFIX="${NETBOOT_TEST_NETNS_PREFIX:-nbc-}"
export PATH="$HOME/.cargo/bin:$PATH"
log_dir="$(mktemp -d /tmp/netboot-campaign.XXXXXX)"
rows=()
fail=0

row() { rows+=("| $1 | $2 | $3 | $4 |"); }

# tally_num WORDS TALLY: the number just before WORDS in a trial's tally
# line ("... 4 rounds, 2 killed mid-op ..."); empty when it is not there.
tally_num() { sed -nE "s/.* ([0-9]+) $1.*/\1/p" <<<"$2"; }

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
    rounds=$(tally_num rounds "$tally")
    killed=$(tally_num "killed mid-op" "$tally")
    failures=$(tally_num failures "$tally")
    row "SIGKILL mid-$phase ($mode), then DEL or GC restores the node exactly" \
      "${rounds:-?} trials (${killed:-?} killed mid-$phase)" "${failures:-${crash_fail:-1}}" "$elapsed"
  done
done

# "truncation trial <mode>: N rounds, D files damaged (...), A ADDs checked, X failures"
run trunc -p netboot-tests --test truncation_trials
read -r _ trunc_fail < <(counts "$log_dir/trunc.log" || echo "0 1")
for mode in native bridge flannel; do
  tally=$(grep -oE "truncation trial $mode: .*" "$log_dir/trunc.log" | tail -1 || true)
  rounds=$(tally_num rounds "$tally")
  files=$(tally_num "files damaged" "$tally")
  adds=$(tally_num "ADDs checked" "$tally")
  failures=$(tally_num failures "$tally")
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

# "reboot test: 30 rounds (10 recovered by GC, 10 by ADD alone, 10 after
# the lease expired), 0 failures"
run reboot -p netboot-tests --test reboot_sim
reboot=$(grep -oE 'reboot test: [0-9]+ rounds \([^)]*\)' "$log_dir/reboot.log" | tail -1 | sed -E 's/^reboot test: //' || true)
read -r _ reboot_fail < <(counts "$log_dir/reboot.log" || echo "0 1")
row "reboot simulation: power-cycled node with a full /28 (native + bridge), recovered by GC + doctor, by ADD alone, or after its lease expired; /28 refilled, firewall and cross-node traffic checked" "${reboot:-?}" "${reboot_fail:-1}" "$elapsed"
# podrun faults, one test each: "podrun fault NAME: COUNT, F failures, DETAILS".
fault_row() {
  local log="$1" name="$2" desc="$3" line count f details ok bad
  line=$(grep -oE "podrun fault $name: .*" "$log" | tail -1 || true)
  count=$(sed -nE "s/^podrun fault $name: (.*), [0-9]+ failures.*/\1/p" <<<"$line")
  f=$(sed -nE 's/.*, ([0-9]+) failures.*/\1/p' <<<"$line")
  details=$(sed -nE 's/.*, [0-9]+ failures, //p' <<<"$line")
  read -r ok bad < <(counts "$log" || echo "0 1")
  # No line, or a failed test, counts as a failure.
  [ -n "$f" ] && [ "${ok:-0}" -gt 0 ] && [ "${bad:-1}" = 0 ] || f=$((${f:-0} + 1))
  row "podrun: $desc (${details:-no result line})" "${count:-?}" "$f" "$elapsed"
}
for spec in "sigkill-run:sigkill_at_random_points_of_run_then_rm_leaves_nothing:SIGKILL mid-run at random points, odd rounds while containerd starts a shim, every third first rm killed too, $NETBOOT_PODRUN_KILL_LOAD busy loops beside; rm leaves no container/task/snapshot/lease/shim/IP/veth/netns/state" \
            "crash-restart:containerd_and_run_killed_mid_create_then_rm_after_restart_leaves_nothing:containerd and podrun SIGKILLed while containerd starts a shim, containerd restarted; rm leaves nothing" \
            "containerd-restart:containerd_restart_keeps_pods_running_and_podrun_reconnects:containerd restarted under a running pod; it keeps serving, ps/exec/logs/check/stop/rm work after" \
            "pause-killed:killed_pause_makes_the_pod_broken_and_rm_cleans_it:pause process SIGKILLed; ps says broken, check refuses, rm cleans" \
            "cni-plugin-missing:missing_cni_plugin_at_rm_keeps_the_teardown_pending_until_it_is_back:CNI plugin missing at rm; teardown-pending keeps the IP's netns/cache/record until rm or gc" \
            "orphaned-shim:rm_waits_for_a_shim_with_a_bundle_and_kills_an_orphaned_one:shim with its bundle waited for, orphaned shim killed"; do
  IFS=: read -r name test desc <<<"$spec"
  run "podrun-$name" -p netboot-tests --test podrun_faults "$test"
  fault_row "$log_dir/podrun-$name.log" "$name" "$desc"
done
# One line per fault: "agent fault lease-deleted: 10 rounds, 0 failures,
# heal min 0.20 s, median 0.24 s, max 0.79 s (from etcdctl del of ...)".
run agent-faults -p netboot-tests --test agent_faults
while IFS= read -r r; do rows+=("$r"); done < <(
  grep -oE 'agent fault [^ ]+: [0-9]+ rounds, [0-9]+ failures, heal .*' "$log_dir/agent-faults.log" |
    sed -E 's/^agent fault ([^ ]+): ([0-9]+) rounds, ([0-9]+) failures, heal min ([^ ]+) s, median ([^ ]+) s, max ([^ ]+) s \(from (.*)\)$/| agent fault \1, heal timed from \7 | \2 rounds | \3 | heal min \4 s, median \5 s, max \6 s |/'
)
read -r ok bad < <(counts "$log_dir/agent-faults.log" || echo "0 1")
row "agent faults: whole test binary (3-node clusters in namespaces; heal = pods ping both ways + leases/subnet.env/cni0/flannel.1/routes/ARP/FDB agree)" "$((ok + bad)) tests" "${bad:-1}" "$elapsed"
# "agent churn: nodes=100 steps=140 ops=1100 duration=300.2s converge_ms min=6
# median=8 max=40 agent_cpu_s=… sched_cpu_s=… cpu_pct=… children_cpu_s=… rss_mb=…
# peak_rss_mb=…" (two agents: values a/b)
# and "agent resync: leases=100 interval=1s idle=10.0s agent_cpu_ms_per_resync=…".
run churn -p netboot-tests --test agent_churn
churn=$(grep -oE 'agent churn: .*' "$log_dir/churn.log" | tail -1 | sed -E 's/^agent churn: //' || true)
resync=$(grep -oE 'agent_cpu_ms_per_resync=[0-9.]+' "$log_dir/churn.log" | tail -1 || true)
read -r _ churn_fail < <(counts "$log_dir/churn.log" || echo "0 1")
row "agent churn: 2 real agents + simulated flanneld leases (delete/revoke/expire, join, restart, move), exact route/ARP/FDB after every step, compaction, etcd restart, cancelled watch; idle resync ${resync:-?}" "${churn:-?}" "${churn_fail:-1}" "$elapsed"

echo
echo "| target / trial | count | failures | time |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "NETBOOT_FUZZ_CASES=$NETBOOT_FUZZ_CASES NETBOOT_CRASH_ROUNDS=$NETBOOT_CRASH_ROUNDS NETBOOT_TRUNC_ROUNDS=$NETBOOT_TRUNC_ROUNDS NETBOOT_REBOOT_ROUNDS=$NETBOOT_REBOOT_ROUNDS NETBOOT_PODRUN_KILL_ROUNDS=$NETBOOT_PODRUN_KILL_ROUNDS NETBOOT_PODRUN_KILL_LOAD=$NETBOOT_PODRUN_KILL_LOAD NETBOOT_PODRUN_RESTART_ROUNDS=$NETBOOT_PODRUN_RESTART_ROUNDS NETBOOT_AGENT_FAULT_ROUNDS=$NETBOOT_AGENT_FAULT_ROUNDS NETBOOT_CHURN_SECS=$NETBOOT_CHURN_SECS; logs: $log_dir"
[ -n "$crash_tallies" ] && printf '%s\n' "$crash_tallies"
exit "$fail"
