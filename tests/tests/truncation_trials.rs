//! Power-loss truncation trials (issue 8, cni-plugin#43): the files
//! netboot-cni and host-local keep for *live* attachments are damaged, and
//! ADD, GC and DEL must cope, in native, bridge and flannel mode.
//!
//! Per round, three pods are attached and one file of each is damaged:
//! its netboot record (`.netboot/<id>@eth0.json`), its host-local IP file,
//! the store's `last_reserved_ip.0`, or the flannel scratch file
//! `<dataDir>/<id>` (native mode writes one too), each made zero-byte, cut to half
//! its length, or overwritten with garbage (bytes no owner can contain);
//! the kinds and damages are taken in turn, so every kind and every
//! damage occurs within three rounds. Then:
//! 1. two new pods are ADDed: they must succeed and get IPs no live pod
//!    holds (the file name is the reservation);
//! 2. GC with every live pod valid must succeed and leave every live pod's
//!    IP reserved (its file present, repaired to its owner when the record
//!    names it) and its interface in place;
//! 3. with the round-robin hint also zeroed, so allocation restarts at the
//!    range start and walks over every held IP, one more pod is ADDed: it
//!    too must get a free IP;
//! 4. the damaged pods are removed, alternately by DEL (which must
//!    succeed) and by GC listing only the new pods; the new pods are DELed;
//! 5. the node must equal its snapshot from before the round (as in
//!    `crash_trials.rs`: `ip -j`, iptables, nft, every file but the
//!    round-robin hint).
//!
//! `NETBOOT_TRUNC_ROUNDS` rounds per mode (CI: 3; `scripts/campaign.sh`:
//! more). Each test prints `truncation trial <mode>: N rounds, D files
//! damaged (...), A ADDs checked, X failures` for the campaign table.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use netboot_tests::crash_support::{
    env_count, reference_plugins_present, store_dir, Mode, ModeNode,
};
use netboot_tests::native_support::Rng;
use netboot_tests::plugin_support::{cid, Snapshot};
use netboot_tests::{first_ip, require_root, Netns};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Record,
    IpFile,
    LastReserved,
    Scratch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Damage {
    Zero,
    Half,
    Garbage,
}

const DAMAGES: [Damage; 3] = [Damage::Zero, Damage::Half, Damage::Garbage];

/// Every mode keeps all four: native mode writes a scratch file too
/// (netboot-cni's own config, for a hand-over to the upstream plugin).
const KINDS: [Kind; 4] = [
    Kind::Record,
    Kind::IpFile,
    Kind::LastReserved,
    Kind::Scratch,
];

#[derive(Debug, Default)]
struct Tally {
    rounds: u32,
    damaged: BTreeMap<(Kind, Damage), u32>,
    adds_checked: u32,
    failures: u32,
}

#[test]
fn native_survives_damaged_files() {
    run(Mode::Native);
}

#[test]
fn bridge_survives_damaged_files() {
    run(Mode::Bridge);
}

#[test]
fn flannel_survives_damaged_files() {
    run(Mode::Flannel);
}

fn run(mode: Mode) {
    require_root();
    if mode != Mode::Native {
        assert!(reference_plugins_present(), "needs /usr/lib/cni plugins");
    }
    let rounds = env_count("NETBOOT_TRUNC_ROUNDS", 3);
    let node = ModeNode::new(&format!("t{}", &mode.name()[..3]), mode);
    // Warm up: node-wide state (cni0, shared chains, store) exists.
    let warm = node.pod("w");
    node.run(&node.call("ADD", &warm)).expect_ok();
    node.run(&node.call("DEL", &warm)).expect_ok();
    drop(warm);
    let mut baseline = node.stable_snapshot();
    let mut rng = Rng::from_env_or_clock();
    let mut t = Tally::default();
    for round in 0..rounds {
        let problems = round_trip(&node, round, &mut rng, &baseline, &mut t);
        t.rounds += 1;
        if !problems.is_empty() {
            t.failures += 1;
            eprintln!(
                "FAILURE {} truncation round {round}:\n{}",
                mode.name(),
                problems.join("\n")
            );
            let _ = node.gc(&[]);
            baseline = node.stable_snapshot();
        }
    }
    let damaged: u32 = t.damaged.values().sum();
    eprintln!(
        "truncation trial {}: {} rounds, {damaged} files damaged ({:?}), {} ADDs checked, {} failures",
        mode.name(),
        t.rounds,
        t.damaged,
        t.adds_checked,
        t.failures
    );
    assert_eq!(t.failures, 0, "{t:?}");
}

/// A live attachment of the round.
struct Live {
    pod: Netns,
    id: String,
    ip: String,
}

fn attach(node: &ModeNode, tag: &str) -> Result<Live, String> {
    let pod = node.pod(tag);
    let out = node.run(&node.call("ADD", &pod));
    if !out.success() {
        return Err(format!("ADD {tag} failed: {}", out.output));
    }
    let res = out.json.unwrap_or(Value::Null);
    Ok(Live {
        id: cid(&pod),
        ip: first_ip(&res),
        pod,
    })
}

/// One round; the problems found (empty when all went well).
fn round_trip(
    node: &ModeNode,
    round: u32,
    rng: &mut Rng,
    baseline: &Snapshot,
    t: &mut Tally,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut live = Vec::new();
    for i in 0..3 {
        match attach(node, &format!("d{i}")) {
            Ok(l) => live.push(l),
            Err(e) => return vec![e],
        }
    }
    let held: Vec<String> = live.iter().map(|l| l.ip.clone()).collect();
    let ks = &KINDS;
    let mut damaged_kind = Vec::new();
    for (i, l) in live.iter().enumerate() {
        let slot = round as usize * live.len() + i;
        let kind = ks[slot % ks.len()];
        let damage = DAMAGES[(slot + slot / 3) % 3];
        damage_file(&path_of(node, kind, l), damage, rng);
        *t.damaged.entry((kind, damage)).or_default() += 1;
        damaged_kind.push(kind);
    }
    // 1. New ADDs never get a held IP.
    let mut fresh = Vec::new();
    for i in 0..2 {
        match attach(node, &format!("n{i}")) {
            Ok(l) => fresh.push(l),
            Err(e) => problems.push(e),
        }
    }
    // 2. GC with every live pod valid takes nothing of theirs.
    let valid: Vec<&str> = live.iter().chain(&fresh).map(|l| l.id.as_str()).collect();
    let out = node.gc(&valid);
    if !out.success() {
        problems.push(format!("GC of valid pods failed: {}", out.output));
    }
    for (l, kind) in live.iter().zip(&damaged_kind) {
        let file = store_dir(node).join(&l.ip);
        if !file.exists() {
            problems.push(format!("GC released {} held by live {}", l.ip, l.id));
        } else if *kind == Kind::IpFile {
            // The record names the IP: GC restores the owner.
            let content = fs::read(&file).unwrap_or_default();
            let want = format!("{}\r\neth0", l.id);
            if content != want.as_bytes() {
                problems.push(format!(
                    "GC did not repair {}: {:?}",
                    l.ip,
                    String::from_utf8_lossy(&content)
                ));
            }
        }
        if l.pod.ipv4_addrs("eth0").is_empty() {
            problems.push(format!("live {} lost its address", l.id));
        }
    }
    // 3. Allocation restarting at the range start skips every held IP.
    damage_file(
        &store_dir(node).join("last_reserved_ip.0"),
        Damage::Zero,
        rng,
    );
    match attach(node, "n2") {
        Ok(l) => fresh.push(l),
        Err(e) => problems.push(e),
    }
    let mut ips: Vec<&String> = fresh.iter().map(|l| &l.ip).collect();
    t.adds_checked += ips.len() as u32;
    for ip in &ips {
        if held.contains(ip) {
            problems.push(format!("ADD handed out {ip}, still held by a live pod"));
        }
    }
    ips.sort();
    ips.dedup();
    if ips.len() != fresh.len() {
        problems.push(format!("ADDs got duplicate IPs: {ips:?}"));
    }
    // 4. The damaged pods go, by DEL or by GC.
    if round % 2 == 0 {
        for l in &live {
            let out = node.run(&node.call("DEL", &l.pod));
            if !out.success() {
                problems.push(format!("DEL of damaged {} failed: {}", l.id, out.output));
            }
            if l.pod.link_names().iter().any(|n| n == "eth0") {
                problems.push(format!("DEL left eth0 in {}", l.id));
            }
        }
        drop(live);
    } else {
        drop(live);
        let keep: Vec<&str> = fresh.iter().map(|l| l.id.as_str()).collect();
        let out = node.gc(&keep);
        if !out.success() {
            problems.push(format!("GC of damaged pods failed: {}", out.output));
        }
    }
    for l in &fresh {
        let out = node.run(&node.call("DEL", &l.pod));
        if !out.success() {
            problems.push(format!("DEL of {} failed: {}", l.id, out.output));
        }
    }
    drop(fresh);
    // 5. Everything they owned is gone.
    let diff = node.settled_diff(baseline);
    if !diff.is_empty() {
        problems.push(format!("node differs from before the round:\n{diff}"));
    }
    problems
}

fn path_of(node: &ModeNode, kind: Kind, l: &Live) -> PathBuf {
    match kind {
        Kind::Record => node.record_path(&l.id),
        Kind::IpFile => store_dir(node).join(&l.ip),
        Kind::LastReserved => store_dir(node).join("last_reserved_ip.0"),
        Kind::Scratch => node.data_dir.join(&l.id),
    }
}

/// Damages `path` in place (the name stays, as after a power loss).
fn damage_file(path: &PathBuf, damage: Damage, rng: &mut Rng) {
    let old = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let new: Vec<u8> = match damage {
        Damage::Zero => Vec::new(),
        Damage::Half => old[..old.len() / 2].to_vec(),
        // High bytes: never valid in an ID, an ifname, JSON or an IP.
        Damage::Garbage => (0..old.len().max(1))
            .map(|_| 0x80 + rng.below(0x80) as u8)
            .collect(),
    };
    fs::write(path, new).unwrap_or_else(|e| panic!("damage {}: {e}", path.display()));
}
