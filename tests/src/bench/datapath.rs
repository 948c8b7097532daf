//! The data path at each scale level (issue 17): a bulk TCP transfer into
//! a pod through its hostPort (from a peer outside the node) and from one
//! pod to another, and the rate of new connections through the hostPort.
//! A NAT rule is consulted only by a connection's first packet, so a bulk
//! transfer mostly shows the forwarding path (veth, bridge, conntrack),
//! while new connections also pay the DNAT lookup: one map probe in
//! native mode, a walk of the per-pod rule chain in the reference's.
//!
//! The server and the clients are threads of this process that `setns()`
//! into the pod or peer namespace (created by the benchmark) before
//! opening their socket: no tool is started, nothing is timed but the
//! socket work. Each level attaches a server pod (hostPort
//! [`HOST_PORT`] -> 80) and a client pod, measures, and detaches them.

use super::plugins::{BenchNode, Impl, Instr, Pod};
use super::stats::Series;
use netboot_tests::{first_ip, Netns};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The server pod's hostPort.
pub const HOST_PORT: u16 = 45000;
/// Bytes of one bulk transfer.
const BULK: u64 = 256 << 20;
/// New connections per connection-rate sample.
const CONNS: usize = 200;
/// The node's address on the link to the peer, and the peer's.
const NODE_ON_PEER_LINK: &str = "198.51.100.1";

/// Runs `f` on a new thread inside the network namespace at `ns`.
fn in_netns<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = File::open(ns).unwrap_or_else(|e| panic!("open {}: {e}", ns.display()));
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter netns");
        f()
    })
    .join()
    .expect("thread in netns")
}

/// A client outside the node: a namespace wired to it by a veth
/// (198.51.100.0/24, TEST-NET-2), whose traffic to the node's address
/// meets the hostPort DNAT in the node's prerouting hook.
pub struct Peer {
    ns: Netns,
}

impl Peer {
    pub fn wire(node: &BenchNode) -> Peer {
        let ns = Netns::new("peer");
        let n = &node.node;
        n.ns.add_veth_to("bpeer", &ns);
        n.exec(&["ip", "addr", "add", "198.51.100.1/24", "dev", "bpeer"])
            .expect_ok();
        n.exec(&["ip", "link", "set", "bpeer", "up"]).expect_ok();
        ns.exec(&["ip", "addr", "add", "198.51.100.2/24", "dev", "eth0"])
            .expect_ok();
        ns.exec(&["ip", "link", "set", "eth0", "up"]).expect_ok();
        // Replies from the pod network come back through the node.
        ns.exec(&["ip", "route", "add", "10.2.0.0/16", "via", "198.51.100.1"])
            .expect_ok();
        Peer { ns }
    }
}

/// CPU time (user + system) of the calling thread so far.
pub(super) fn thread_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let Ok(u) = getrusage(UsageWho::RUSAGE_THREAD) else {
        return Duration::ZERO;
    };
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().unsigned_abs())
            + Duration::from_micros(t.tv_usec().unsigned_abs())
    };
    tv(u.user_time()) + tv(u.system_time())
}

/// A sink in a pod: reads each connection to its end, answers the byte
/// count and the CPU time its thread spent receiving (8 bytes each,
/// big-endian nanoseconds), closes. Stopped (and joined) on drop.
struct Sink {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    fn start(ns: &Path, port: u16) -> Sink {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let file = File::open(ns).unwrap_or_else(|e| panic!("open {}: {e}", ns.display()));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter pod");
            let l = TcpListener::bind(("0.0.0.0", port)).expect("bind sink");
            l.set_nonblocking(true).expect("nonblocking");
            tx.send(()).expect("ready");
            while !flag.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).expect("blocking");
                        let cpu = thread_cpu();
                        let n = std::io::copy(&mut c, &mut std::io::sink()).unwrap_or(0);
                        let spent = thread_cpu().saturating_sub(cpu).as_nanos() as u64;
                        let mut reply = n.to_be_bytes().to_vec();
                        reply.extend_from_slice(&spent.to_be_bytes());
                        let _ = c.write_all(&reply);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_micros(100))
                    }
                    Err(e) => panic!("sink accept: {e}"),
                }
            }
        });
        rx.recv().expect("sink started");
        Sink {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection sending `bytes`: the time until the sink's count came
/// back (which proves every byte arrived), and the CPU time the sending
/// and the receiving thread spent. On veths the kernel forwards a packet
/// (bridge, routing, conntrack, NAT) mostly in the softirq the sender
/// raises, which runs on its thread: the CPU time is the data path's cost,
/// which other load on the machine inflates far less than the wall time.
fn send(to: (&str, u16), bytes: u64) -> (Duration, Duration) {
    let t = Instant::now();
    let cpu = thread_cpu();
    let mut s = TcpStream::connect(to).unwrap_or_else(|e| panic!("connect {to:?}: {e}"));
    let chunk = vec![0x5a_u8; 256 << 10];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        s.write_all(&chunk[..n]).expect("send");
        left -= n as u64;
    }
    s.shutdown(Shutdown::Write).expect("shutdown");
    let mut got = [0u8; 16];
    s.read_exact(&mut got).expect("sink's count");
    let took = t.elapsed();
    let word = |i: usize| u64::from_be_bytes(got[i..i + 8].try_into().expect("8 bytes"));
    assert_eq!(word(0), bytes, "sink got all bytes");
    (
        took,
        thread_cpu().saturating_sub(cpu) + Duration::from_nanos(word(8)),
    )
}

/// MB/s of one bulk transfer from the namespace at `from`, and the CPU
/// microseconds (sender + receiver) it took per MB.
fn bulk(from: &Path, to: (String, u16)) -> (f64, f64) {
    let (took, cpu) = in_netns(from, move || send((&to.0, to.1), BULK));
    let mb = BULK as f64 / 1e6;
    (mb / took.as_secs_f64(), cpu.as_secs_f64() * 1e6 / mb)
}

/// New connections per second (each sends one byte and waits for the
/// count) from the namespace at `from`.
fn conn_rate(from: &Path, to: (String, u16)) -> f64 {
    let took = in_netns(from, move || {
        let t = Instant::now();
        for _ in 0..CONNS {
            send((&to.0, to.1), 1);
        }
        t.elapsed()
    });
    CONNS as f64 / took.as_secs_f64()
}

/// The data path of one implementation at one level (values, not ms).
#[derive(Debug, Default, Clone)]
pub struct DataPathLevel {
    /// MB/s into the pod through the node's hostPort, from the peer.
    pub hostport_mbps: Series,
    /// MB/s from the client pod to the server pod's address.
    pub pod_to_pod_mbps: Series,
    /// CPU µs (sending + receiving thread) per MB, same transfers.
    pub hostport_cpu_us_per_mb: Series,
    pub pod_to_pod_cpu_us_per_mb: Series,
    /// New connections per second through the hostPort, from the peer.
    pub hostport_conns_per_s: Series,
}

/// One target's data-path pods: the server (hostPort) and the client.
struct Setup<'a> {
    t: Target<'a>,
    server: Pod,
    client: Pod,
    sink: Option<Sink>,
}

/// Measures every target at the current level, `reps` samples of each
/// quantity, targets interleaved sample by sample, `settle` after the
/// data-path pods are attached: each new pod's IPv6 start-up traffic (DAD,
/// MLD reports, router solicitations) is multicast the bridge floods to
/// every port for ~12 s, work done in the softirqs of whatever runs on the
/// node's CPUs, the transfers included.
pub fn measure(
    targets: &[Target],
    level: usize,
    reps: usize,
    settle: Duration,
) -> Vec<(&'static str, DataPathLevel)> {
    let mut setups: Vec<Setup> = targets
        .iter()
        .map(|&t| {
            t.node.enter();
            let mut server = Pod::new(t.imp, &format!("dps{level}-"), HOST_PORT);
            let mut client = Pod::new(t.imp, &format!("dpc{level}-"), HOST_PORT + 1);
            t.node.add(t.imp, &mut server, Instr::Plain);
            t.node.add(t.imp, &mut client, Instr::Plain);
            let sink = Some(Sink::start(server.ns.path(), 80));
            Setup {
                t,
                server,
                client,
                sink,
            }
        })
        .collect();
    std::thread::sleep(settle);
    let mut out: Vec<(&'static str, DataPathLevel)> = setups
        .iter()
        .map(|s| (s.t.key, DataPathLevel::default()))
        .collect();
    for rep in 0..reps {
        for i in 0..setups.len() {
            let k = (i + rep) % setups.len();
            let s = &setups[k];
            let peer = s.t.peer.ns.path().to_owned();
            let pod_ip = first_ip(s.server.result.as_ref().expect("server attached"));
            let hp = (NODE_ON_PEER_LINK.to_string(), HOST_PORT);
            let d = &mut out[k].1;
            let (mbps, cpu) = bulk(&peer, hp.clone());
            d.hostport_mbps.0.push(mbps);
            d.hostport_cpu_us_per_mb.0.push(cpu);
            let (mbps, cpu) = bulk(s.client.ns.path(), (pod_ip, 80));
            d.pod_to_pod_mbps.0.push(mbps);
            d.pod_to_pod_cpu_us_per_mb.0.push(cpu);
            d.hostport_conns_per_s.0.push(conn_rate(&peer, hp));
        }
    }
    for s in &mut setups {
        s.sink.take();
        s.t.node.enter();
        s.t.node.del(s.t.imp, &mut s.server, Instr::Plain);
        s.t.node.del(s.t.imp, &mut s.client, Instr::Plain);
    }
    out
}

/// One node the scale phase measures: the implementation that attaches
/// its pods, the key its numbers are stored under, the node and its peer,
/// and whether it is filled to each level. The base node (native, key
/// [`super::phases::NATIVE_BASE`]) stays at the first level and is measured in the same
/// rounds as the others, so that "cost at N pods / cost at 1 pod" can be
/// taken between calls made minutes apart on a loaded machine or between
/// calls made side by side.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub imp: Impl,
    pub key: &'static str,
    pub node: &'a BenchNode,
    pub peer: &'a Peer,
    pub grows: bool,
}
