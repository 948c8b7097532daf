//! Helpers for netkit's real-kernel tests.
//!
//! Each test builds its own named namespaces (`nk-<pid>-<n>`) and deletes
//! them in `Drop`, so a failing assertion still cleans up. Nothing here ever
//! changes the root namespace; tests only *read* it to prove that.

#![allow(dead_code)]

pub mod hostport;
pub mod portmap;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use netkit::conntrack::Tuple4;
use netkit::{Netlink, Netns};
use serde_json::Value;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A background process of ours: killed (by PID) and reaped on drop.
pub struct Bg(pub Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cmd` in `ns`; it must succeed.
pub fn sh(ns: &TestNs, cmd: &[&str]) {
    let (ok, _) = ns.exec(cmd);
    assert!(ok, "{cmd:?} in {}", ns.name);
}

/// A veth pair `an` (in `a`) - `bn` (in `b`), both ends up.
pub fn veth(a: &TestNs, an: &str, b: &TestNs, bn: &str) {
    sh(
        a,
        &[
            "ip", "link", "add", an, "type", "veth", "peer", "name", bn, "netns", &b.name,
        ],
    );
    sh(a, &["ip", "link", "set", an, "up"]);
    sh(b, &["ip", "link", "set", bn, "up"]);
}

/// A throwaway named netns, deleted on drop.
pub struct TestNs {
    pub name: String,
    pub path: PathBuf,
    pub ns: Netns,
}

impl TestNs {
    pub fn new() -> TestNs {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("nk-{}-{n}", std::process::id());
        let path = netkit::create_named(&name).expect("create test netns");
        // Build the guard before anything else can fail.
        let ns = match Netns::open(&path) {
            Ok(ns) => ns,
            Err(e) => {
                let _ = netkit::delete_named(&name);
                panic!("open {name}: {e}");
            }
        };
        TestNs { name, path, ns }
    }

    pub fn nl(&self) -> Netlink {
        self.ns.netlink().expect("netlink in test netns")
    }

    /// `ip -j -n NAME ARGS...` parsed.
    pub fn ip(&self, args: &[&str]) -> Value {
        ip_json(Some(&self.name), "ip", args)
    }

    /// `bridge -j -n NAME ARGS...` parsed.
    pub fn bridge(&self, args: &[&str]) -> Value {
        ip_json(Some(&self.name), "bridge", args)
    }

    /// `ip netns exec NAME CMD...`, returning (success, stdout).
    pub fn exec(&self, cmd: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()
            .expect("run ip netns exec");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `ip netns exec NAME CMD...` with `input` on its stdin; it must
    /// succeed.
    pub fn feed(&self, cmd: &[&str], input: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdin(Stdio::piped())
            .spawn()
            .expect("run ip netns exec");
        let wrote = child.stdin.take().unwrap().write_all(input.as_bytes());
        let status = child.wait().expect("wait for ip netns exec");
        assert!(
            wrote.is_ok() && status.success(),
            "{cmd:?} in {}: {status}",
            self.name
        );
    }

    /// The `ip -j -d link show dev DEV` object.
    pub fn link_json(&self, dev: &str) -> Value {
        self.ip(&["-d", "link", "show", "dev", dev])[0].clone()
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if let Err(e) = netkit::delete_named(&self.name) {
            eprintln!("cleanup of {} failed: {e}", self.name);
        }
    }
}

/// Run `tool -j [-n ns] args` and parse its JSON (empty output = `[]`).
pub fn ip_json(ns: Option<&str>, tool: &str, args: &[&str]) -> Value {
    let mut cmd = Command::new(tool);
    cmd.arg("-j");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let out = cmd.args(args).output().expect("run ip/bridge");
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Value::Array(vec![]);
    }
    serde_json::from_str(&text).expect("ip -j output is JSON")
}

/// Stable summary of the root namespace's links: (index, name, mtu, master,
/// address, flags). Read-only.
pub fn root_links() -> Vec<String> {
    let v = ip_json(None, "ip", &["link", "show"]);
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{} {} {} {} {} {}",
                l["ifindex"], l["ifname"], l["mtu"], l["master"], l["address"], l["flags"]
            )
        })
        .collect();
    out.sort();
    out
}

/// Skip (pass vacuously, loudly) when not root: these tests need
/// CAP_SYS_ADMIN and CAP_NET_ADMIN.
pub fn need_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIP: netkit kernel tests need root");
    false
}

/// A fresh test namespace, or None (after [`need_root`]'s SKIP) when not
/// root.
pub fn root_ns() -> Option<TestNs> {
    need_root().then(TestNs::new)
}

/// `conntrack -I` in `ns`: a flow `orig` whose reply is `reply` (a DNATed
/// one when `reply.src` is not `orig.dst`), expiring in `timeout` seconds.
/// The datapath makes real entries; tests that only need entries to list
/// and delete write them with the tool netboot's users have too.
pub fn ct_insert(ns: &TestNs, proto: u8, orig: Tuple4, reply: Tuple4, timeout: u32) {
    let proto = match proto {
        netkit::conntrack::TCP => "tcp",
        netkit::conntrack::UDP => "udp",
        p => panic!("ct_insert: protocol {p}"),
    };
    let s = |v: &dyn ToString| v.to_string();
    let mut args: Vec<String> = ["conntrack", "-I", "-p", proto].map(String::from).to_vec();
    for (flag, v) in [
        ("-s", s(&orig.src)),
        ("-d", s(&orig.dst)),
        ("--sport", s(&orig.sport)),
        ("--dport", s(&orig.dport)),
        ("-r", s(&reply.src)),
        ("-q", s(&reply.dst)),
        ("--reply-port-src", s(&reply.sport)),
        ("--reply-port-dst", s(&reply.dport)),
        ("-t", s(&timeout)),
    ] {
        args.extend([flag.to_string(), v]);
    }
    if proto == "tcp" {
        args.extend(["--state", "ESTABLISHED"].map(String::from));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out) = ns.exec(&argv);
    assert!(ok, "{argv:?} in {}: {out}", ns.name);
}

pub fn mac(s: &str) -> [u8; 6] {
    netkit::parse_mac(s).unwrap()
}
