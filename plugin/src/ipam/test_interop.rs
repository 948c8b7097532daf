//! One store, two allocators: Debian's reference host-local binary
//! (containernetworking-plugins) and ours, interleaved on a temp dataDir.
//! A node switching between bridge mode and native mode mid-life does
//! exactly this. Skipped, loudly, when the binary is not installed.

use super::test_pool::{ip, spec};
use super::*;
use std::fs;
use std::io::Write;
use std::process::{Child, Command, Stdio};

const HOST_LOCAL: &str = "/usr/lib/cni/host-local";
const NET: &str = "interop";

struct Node {
    _tmp: tempfile::TempDir,
    data_dir: PathBuf,
    pool: Pool,
    ranges: Value,
}

fn node(specs: Vec<RangeSpec>) -> Option<Node> {
    if !Path::new(HOST_LOCAL).exists() {
        eprintln!("SKIP: {HOST_LOCAL} missing (apt-get install containernetworking-plugins)");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().to_path_buf();
    // The same range sets, in the same order, as host-local config.
    let ranges = specs
        .iter()
        .map(|s| {
            let mut r = serde_json::json!({ "subnet": s.subnet.to_string() });
            if let Some(a) = s.range_start {
                r["rangeStart"] = a.to_string().into();
            }
            if let Some(a) = s.range_end {
                r["rangeEnd"] = a.to_string().into();
            }
            serde_json::json!([r])
        })
        .collect();
    let pool = Pool::new(data_dir.join(NET), specs).unwrap();
    Some(Node {
        _tmp: tmp,
        data_dir,
        pool,
        ranges,
    })
}

impl Node {
    fn start(&self, cmd: &str, id: &str, ifname: &str) -> Child {
        let conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": NET,
            "ipam": { "type": "host-local", "dataDir": self.data_dir, "ranges": self.ranges },
        });
        let mut child = Command::new(HOST_LOCAL)
            .env_clear()
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", id)
            .env("CNI_IFNAME", ifname)
            // Only checked for presence by skel; host-local never enters it.
            .env("CNI_NETNS", "/proc/self/ns/net")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(conf.to_string().as_bytes()).unwrap();
        child
    }

    /// Runs host-local and returns the addresses of its result.
    fn finish(child: Child) -> Result<Vec<IpAddr>, String> {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(text);
        }
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_str(&text).unwrap();
        let ips = v["ips"].as_array().cloned().unwrap_or_default();
        Ok(ips
            .iter()
            .map(|i| ip(i["address"].as_str().unwrap().split('/').next().unwrap()))
            .collect())
    }

    fn host_local(&self, cmd: &str, id: &str, ifname: &str) -> Result<Vec<IpAddr>, String> {
        Node::finish(self.start(cmd, id, ifname))
    }

    fn file(&self, ip: &str) -> Option<Vec<u8>> {
        fs::read(self.data_dir.join(NET).join(ip)).ok()
    }
}

#[test]
fn ours_then_host_local_then_ours() {
    let Some(n) = node(vec![spec("10.8.0.0/24", None, None)]) else {
        return;
    };
    let ours = n.pool.allocate("c1", "eth0").unwrap();
    assert_eq!(ours[0].ip, ip("10.8.0.2"));
    // host-local continues the same round-robin after our last_reserved_ip.
    assert_eq!(n.host_local("ADD", "c2", "eth0").unwrap(), [ip("10.8.0.3")]);
    assert_eq!(n.pool.allocate("c3", "eth0").unwrap()[0].ip, ip("10.8.0.4"));
    // Byte-identical records from both writers.
    assert_eq!(n.file("10.8.0.2").unwrap(), b"c1\r\neth0");
    assert_eq!(n.file("10.8.0.3").unwrap(), b"c2\r\neth0");
    assert_eq!(n.file("last_reserved_ip.0").unwrap(), b"10.8.0.4");
    assert_eq!(n.pool.holds("c2", "eth0").unwrap(), [ip("10.8.0.3")]);
}

#[test]
fn host_local_allocations_are_skipped_and_refused_as_duplicates() {
    let Some(n) = node(vec![spec(
        "10.8.1.0/24",
        Some("10.8.1.10"),
        Some("10.8.1.12"),
    )]) else {
        return;
    };
    assert_eq!(
        n.host_local("ADD", "h1", "eth0").unwrap(),
        [ip("10.8.1.10")]
    );
    // Remove host-local's hint: ours must still skip its file.
    fs::remove_file(n.data_dir.join(NET).join("last_reserved_ip.0")).unwrap();
    assert_eq!(
        n.pool.allocate("o1", "eth0").unwrap()[0].ip,
        ip("10.8.1.11")
    );
    let e = n.pool.allocate("h1", "eth0").unwrap_err();
    assert!(matches!(e, IpamError::AlreadyAllocated { .. }), "{e}");
    // And host-local refuses ours with the same words.
    let theirs = n.host_local("ADD", "o1", "eth0").unwrap_err();
    assert!(
        theirs.contains("10.8.1.11 has been allocated to o1"),
        "{theirs}"
    );
    assert_eq!(
        n.host_local("ADD", "h2", "eth0").unwrap(),
        [ip("10.8.1.12")]
    );
    let ours = n.pool.allocate("o2", "eth0").unwrap_err().to_string();
    let theirs = n.host_local("ADD", "h3", "eth0").unwrap_err();
    assert!(theirs.contains(&ours), "host-local: {theirs}\nours: {ours}");
}

#[test]
fn each_releases_the_others_allocations() {
    let Some(n) = node(vec![
        spec("10.8.2.0/24", None, None),
        spec("fd00:8::/120", None, None),
    ]) else {
        return;
    };
    let ours: Vec<IpAddr> = n
        .pool
        .allocate("o1", "eth0")
        .unwrap()
        .iter()
        .map(|a| a.ip)
        .collect();
    assert_eq!(ours, [ip("10.8.2.2"), ip("fd00:8::2")]);
    let theirs = n.host_local("ADD", "h1", "eth0").unwrap();
    assert_eq!(theirs, [ip("10.8.2.3"), ip("fd00:8::3")]);
    n.host_local("DEL", "o1", "eth0").unwrap();
    assert!(n.file("10.8.2.2").is_none() && n.file("fd00:8::2").is_none());
    let mut freed = n.pool.release("h1", "eth0").unwrap();
    freed.sort();
    assert_eq!(freed, theirs);
    assert_eq!(n.pool.in_use().unwrap(), 0);
    // Legacy ID-only files: host-local DEL frees them by ID, and so do we.
    fs::write(n.data_dir.join(NET).join("10.8.2.50"), "old1").unwrap();
    fs::write(n.data_dir.join(NET).join("10.8.2.51"), "old2").unwrap();
    n.host_local("DEL", "old1", "eth0").unwrap();
    assert!(n.file("10.8.2.50").is_none());
    assert_eq!(n.pool.release("old2", "eth0").unwrap(), [ip("10.8.2.51")]);
}

#[test]
fn concurrent_mix_never_double_assigns() {
    let Some(n) = node(vec![spec("10.8.3.0/24", None, None)]) else {
        return;
    };
    let children: Vec<Child> = (0..25)
        .map(|i| n.start("ADD", &format!("h{i}"), "eth0"))
        .collect();
    let ours: Vec<IpAddr> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..25)
            .map(|i| {
                let pool = &n.pool;
                s.spawn(move || pool.allocate(&format!("o{i}"), "eth0").unwrap()[0].ip)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let theirs: Vec<IpAddr> = children
        .into_iter()
        .flat_map(|c| Node::finish(c).unwrap())
        .collect();
    let all: HashSet<IpAddr> = ours.iter().chain(&theirs).copied().collect();
    assert_eq!((ours.len(), theirs.len(), all.len()), (25, 25, 50));
    assert_eq!(n.pool.in_use().unwrap(), 50);
    for i in 0..25 {
        n.host_local("DEL", &format!("o{i}"), "eth0").unwrap();
        assert_eq!(n.pool.release(&format!("h{i}"), "eth0").unwrap().len(), 1);
    }
    assert_eq!(n.pool.in_use().unwrap(), 0);
}
