//! Separate processes on one store: 50 concurrent allocators (flock must
//! serialize them across processes) and allocators killed with SIGKILL at
//! arbitrary points. The children are this test binary re-run on
//! [`child_process_entry`].

use super::test_pool::{ip, spec};
use super::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CHILD_ENV: &str = "NETBOOT_IPAM_TEST_CHILD";
const SUBNET: &str = "10.7.0.0/22";

/// Not a test of its own: the body of a child process. `CHILD_ENV` holds
/// `<store dir>|<container id>|<count>`; the child allocates `count`
/// attachments `<id>-<n>`/eth0 and prints each IP.
#[test]
fn child_process_entry() {
    let Ok(arg) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = arg.split('|');
    let (dir, id, count) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let p = Pool::new(PathBuf::from(dir), vec![spec(SUBNET, None, None)]).unwrap();
    for n in 0..count.parse::<usize>().unwrap() {
        let got = p.allocate(&format!("{id}-{n}"), "eth0").unwrap();
        println!("IPAM-CHILD-IP={}", got[0].ip);
    }
}

fn spawn(dir: &Path, id: &str, count: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "ipam::test_procs::child_process_entry",
            "--exact",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(CHILD_ENV, format!("{}|{id}|{count}", dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn ips_of(child: Child) -> Vec<IpAddr> {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "child failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // libtest may print "test <name> ... " on the same line.
        .filter_map(|l| l.split_once("IPAM-CHILD-IP=").map(|(_, a)| ip(a.trim())))
        .collect()
}

#[test]
fn fifty_processes_get_fifty_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let children: Vec<Child> = (0..50).map(|i| spawn(&dir, &format!("p{i}"), 1)).collect();
    let ips: Vec<IpAddr> = children.into_iter().flat_map(ips_of).collect();
    assert_eq!(ips.len(), 50);
    assert_eq!(ips.iter().collect::<HashSet<_>>().len(), 50, "{ips:?}");
    let p = Pool::new(dir, vec![spec(SUBNET, None, None)]).unwrap();
    assert_eq!(p.in_use().unwrap(), 50);
}

/// A cheap varying delay without a rand dependency.
fn jitter(max_us: u64, salt: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    Duration::from_micros((now ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % max_us)
}

#[test]
fn sigkill_never_leaks_past_del_and_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let p = Pool::new(dir.clone(), vec![spec(SUBNET, None, None)]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut records = 0;
    for round in 0..25u64 {
        let id = format!("k{round}");
        let mut child = spawn(&dir, &id, 400);
        std::thread::sleep(Duration::from_millis(5) + jitter(40_000, round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let store = Locked::open(&dir).unwrap();
        let files = store.allocations().unwrap();
        drop(store);
        for a in &files {
            // Every file is a whole record of the killed child or torn
            // (some prefix of one): nothing else can appear.
            let text = match &a.ifname {
                Some(i) => format!("{}\r\n{i}", a.container_id),
                None => a.container_id.clone(),
            };
            let prefix = format!("{id}-");
            let whole = a.ifname.as_deref() == Some("eth0") && a.container_id.starts_with(&prefix);
            let torn = prefix.starts_with(&text) || text.starts_with(&prefix);
            assert!(whole || torn, "{a:?}");
            if whole {
                // DEL finds every whole record by its attachment.
                assert_eq!(p.release(&a.container_id, "eth0").unwrap(), [a.ip]);
                records += 1;
            }
        }
        // GC with no valid attachment reclaims whatever DEL could not.
        p.release_invalid(&[], &Claims::default()).unwrap();
        assert_eq!(p.in_use().unwrap(), 0, "round {round}");
        // The store still works, hint file included.
        let again = p.allocate("after", "eth0").unwrap();
        assert_eq!(p.release("after", "eth0").unwrap(), [again[0].ip]);
        if Instant::now() > deadline {
            break;
        }
    }
    eprintln!("killed children had written {records} records");
    assert!(records > 0, "no child got as far as an allocation");
}
