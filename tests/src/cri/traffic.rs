//! Servers inside a CRI pod's netns (socat started with `nsenter --net=`
//! on the netns path CRI reports) and one-shot TCP, HTTP and UDP clients
//! from another netns.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::exec;
use crate::retry;

/// socat servers; killed by PID (and waited for) on [`Servers::stop`] or
/// drop.
#[derive(Default)]
pub struct Servers {
    children: Vec<Child>,
}

impl Servers {
    /// Answers every TCP connection on `port` in `netns` with `text`.
    pub fn tcp(&mut self, netns: &Path, port: u16, text: &str) {
        let listen = format!("TCP4-LISTEN:{port},fork,reuseaddr");
        self.spawn(netns, &["socat", &listen, &format!("SYSTEM:echo {text}")]);
    }

    /// Answers every UDP datagram to `port` in `netns` with `text`; returns
    /// once the socket is bound (a datagram sent earlier would only leave
    /// an unreplied conntrack entry and cost the client its timeout).
    pub fn udp(&mut self, netns: &Path, port: u16, text: &str) {
        let listen = format!("UDP4-RECVFROM:{port},fork");
        self.spawn(netns, &["socat", &listen, &format!("SYSTEM:echo {text}")]);
        let filter = format!("sport = :{port}");
        let bound = retry(50, Duration::from_millis(100), || {
            let out = exec::run(
                exec::nsenter(netns, &["ss", "-Hlun", &filter]),
                None,
                Duration::from_secs(10),
            );
            (!out.stdout.trim().is_empty()).then_some(())
        });
        assert!(
            bound.is_some(),
            "socat did not bind UDP {port} in {}",
            netns.display()
        );
    }

    fn spawn(&mut self, netns: &Path, argv: &[&str]) {
        let child = exec::nsenter(netns, argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {argv:?} in {}: {e}", netns.display()));
        self.children.push(child);
    }

    /// Kills the servers (before the sandbox stops, so that nothing holds
    /// its netns).
    pub fn stop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One TCP connection from `from` to `ip:port`: what the server said, or
/// `None` (refused, timed out).
pub fn tcp_ask(from: &Path, ip: &str, port: u16) -> Option<String> {
    let target = format!("TCP4:{ip}:{port},connect-timeout=2");
    let out = exec::run(
        exec::nsenter(from, &["socat", "-u", &target, "STDOUT"]),
        None,
        Duration::from_secs(10),
    );
    (out.success() && !out.stdout.is_empty()).then(|| out.stdout.trim().to_owned())
}

/// `curl http://ip:port/` from `from`: the body (trimmed), or `None`
/// (refused, timed out).
pub fn http_get(from: &Path, ip: &str, port: u16) -> Option<String> {
    let url = format!("http://{ip}:{port}/");
    let out = exec::run(
        exec::nsenter(from, &["curl", "-sS", "-m", "5", &url]),
        None,
        Duration::from_secs(10),
    );
    (out.success() && !out.stdout.is_empty()).then(|| out.stdout.trim().to_owned())
}

/// One UDP datagram from `from` to `ip:port`: the reply, or `None` when
/// none came within 2 s.
pub fn udp_ask(from: &Path, ip: &str, port: u16) -> Option<String> {
    let target = format!("UDP4:{ip}:{port}");
    let out = exec::run(
        exec::nsenter(from, &["socat", "-t", "2", "STDIO", &target]),
        Some(b"ping\n"),
        Duration::from_secs(10),
    );
    (out.success() && !out.stdout.is_empty()).then(|| out.stdout.trim().to_owned())
}

/// `ask` retried for ~5 s (the server may still be starting).
pub fn eventually(mut ask: impl FnMut() -> Option<String>) -> Option<String> {
    retry(25, Duration::from_millis(200), &mut ask)
}
