//! What `netboot agent` tells the outside: systemd notifications (READY,
//! STATUS, WATCHDOG), `/healthz`, `/readyz` and `/metrics`, and its log
//! lines (JSON format, `--log-level`). Namespace cluster as in
//! agent_cluster.rs; needs root.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netboot_tests::cluster::{in_ns, wait_until, AgentNode, EtcdCluster, Underlay, CONFIG, PREFIX};
use netboot_tests::require_root;

const PORT: &str = "9099";
const WAIT: Duration = Duration::from_secs(30);

/// One datagram from the agent, and whether subnet.env existed when it
/// arrived.
type Seen = Arc<Mutex<Vec<(String, bool)>>>;

fn listen(sock: PathBuf, subnet_file: PathBuf) -> Seen {
    let rx = UnixDatagram::bind(&sock).expect("bind the notify socket");
    let seen: Seen = Arc::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = rx.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let env = subnet_file.exists();
            match s.lock() {
                Ok(mut s) => s.push((msg, env)),
                Err(_) => return,
            }
        }
    });
    seen
}

fn lines_with(seen: &Seen, prefix: &str) -> Vec<(String, bool)> {
    seen.lock()
        .unwrap()
        .iter()
        .flat_map(|(m, env)| m.lines().map(|l| (l.to_string(), *env)).collect::<Vec<_>>())
        .filter(|(l, _)| l.starts_with(prefix))
        .collect()
}

/// GET `path` on the node's health server from inside its netns: (status,
/// body).
fn get(n: &AgentNode, path: &str) -> (u16, String) {
    let out = in_ns(
        n.ns.path(),
        &[
            "curl",
            "-s",
            "-m",
            "5",
            "-w",
            "\n%{http_code}",
            &format!("http://127.0.0.1:{PORT}{path}"),
        ],
    )
    .output()
    .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The metrics as (name{labels}, value); panics on a line that is not
/// Prometheus text.
fn metrics(n: &AgentNode) -> Vec<(String, f64)> {
    let (code, body) = get(n, "/metrics");
    assert_eq!(code, 200, "{body}");
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let v: f64 = v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (k.to_string(), v)
        })
        .collect()
}

fn metric(n: &AgentNode, name: &str) -> f64 {
    metrics(n)
        .into_iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .sum()
}

fn sum_prefix(n: &AgentNode, prefix: &str) -> f64 {
    metrics(n)
        .into_iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn agent_notifies_systemd_serves_health_and_metrics_and_logs_json() {
    require_root();
    let ul = Underlay::new();
    let mut etcd = EtcdCluster::start(&ul, 1);
    let ep = etcd.endpoints();
    let mut n1 = AgentNode::new(&ul, "n1", 11);
    let sock = n1.dir.path().join("notify.sock");
    let seen = listen(sock.clone(), n1.subnet_file());
    let sock_s = sock.display().to_string();
    let port = format!("--healthz-port={PORT}");
    n1.start_agent_with_env(
        &ep,
        &["--resync-interval=5s", &port, "--log-format=json"],
        &[
            ("NOTIFY_SOCKET", sock_s.as_str()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );

    // Before the config: alive, not ready, and systemd hears why.
    assert!(
        wait_until(WAIT, || get(&n1, "/healthz") == (200, "ok".into())),
        "no /healthz\n{}",
        n1.log()
    );
    let (code, body) = get(&n1, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("network config"), "{body}");
    assert!(wait_until(WAIT, || !lines_with(
        &seen,
        "STATUS=waiting for the network config"
    )
    .is_empty()));
    assert!(lines_with(&seen, "READY=1").is_empty());

    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    assert!(
        wait_until(WAIT, || !lines_with(&seen, "READY=1").is_empty()),
        "no READY=1: {:?}\n{}",
        seen.lock().unwrap(),
        n1.log()
    );
    for (l, env) in lines_with(&seen, "READY=1") {
        assert!(env, "{l} came before subnet.env was written");
    }
    // FLANNEL_SUBNET=10.2.15.1/24: the lease is 10.2.15.0/24.
    let subnet = n1.wait_subnet(WAIT);
    let subnet = format!("{}.0/", subnet.rsplit_once('.').unwrap().0);
    assert!(
        wait_until(WAIT, || lines_with(&seen, "STATUS=ready: subnet")
            .iter()
            .any(|(l, _)| l.contains(&subnet))),
        "{:?}",
        lines_with(&seen, "STATUS=")
    );
    assert!(
        wait_until(WAIT, || lines_with(&seen, "WATCHDOG=1").len() >= 5),
        "watchdog pings: {:?}",
        lines_with(&seen, "WATCHDOG=1")
    );
    assert!(
        wait_until(WAIT, || get(&n1, "/readyz").0 == 200),
        "{:?}",
        get(&n1, "/readyz")
    );

    // Metrics move with the cluster.
    assert_eq!(
        metric(&n1, "netboot_agent_lease_state{state=\"held\"}"),
        1.0
    );
    assert!(metric(&n1, "netboot_agent_lease_ttl_seconds") > 3600.0);
    assert_eq!(
        metric(&n1, "netboot_agent_remote_leases{family=\"ipv4\"}"),
        0.0
    );
    let mut n2 = AgentNode::new(&ul, "n2", 12);
    n2.start_agent(&ep, &["--resync-interval=5s"]);
    n2.wait_subnet(WAIT);
    assert!(
        wait_until(WAIT, || metric(
            &n1,
            "netboot_agent_remote_leases{family=\"ipv4\"}"
        ) == 1.0),
        "{:?}",
        metrics(&n1)
    );
    assert_eq!(
        metric(
            &n1,
            "netboot_agent_programmed_entries{family=\"ipv4\",kind=\"route\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &n1,
            "netboot_agent_programmed_entries{family=\"ipv4\",kind=\"fdb\"}"
        ),
        1.0
    );
    assert!(metric(&n1, "netboot_agent_resync_duration_seconds_count") >= 1.0);

    // A stale route no lease explains is swept by the periodic resync (the
    // device watch only reacts to removals), and the sweep is counted.
    let repairs = metric(&n1, "netboot_agent_repairs_total");
    n1.exec(&[
        "ip",
        "route",
        "add",
        "10.2.250.0/24",
        "via",
        "10.2.250.0",
        "dev",
        "flannel.1",
        "onlink",
    ])
    .expect_ok();
    assert!(
        wait_until(WAIT, || metric(&n1, "netboot_agent_repairs_total")
            > repairs
            && !n1
                .exec(&["ip", "route", "show", "10.2.250.0/24"])
                .stdout
                .contains("10.2.250.0")),
        "stale route not swept or not counted: {:?}\n{}",
        metrics(&n1),
        n1.log()
    );

    // etcd gone: errors count up, and readiness drops once the watch breaks.
    let errors = sum_prefix(&n1, "netboot_agent_etcd_request_errors_total");
    etcd.members[0].stop();
    assert!(
        wait_until(WAIT, || get(&n1, "/readyz").0 == 503),
        "still ready\n{}",
        n1.log()
    );
    let (_, body) = get(&n1, "/readyz");
    assert!(body.contains("watch"), "{body}");
    assert!(
        wait_until(WAIT, || sum_prefix(
            &n1,
            "netboot_agent_etcd_request_errors_total"
        ) > errors),
        "{:?}",
        metrics(&n1)
    );
    assert!(wait_until(WAIT, || !lines_with(
        &seen,
        "STATUS=ready: subnet"
    )
    .iter()
    .all(|(l, _)| !l.contains("watch broken"))));
    assert_eq!(get(&n1, "/healthz"), (200, "ok".into()));
    etcd.members[0].restart();
    assert!(
        wait_until(WAIT, || get(&n1, "/readyz").0 == 200),
        "{}",
        n1.log()
    );
    assert!(metric(&n1, "netboot_agent_watch_restarts_total") >= 1.0);

    // --log-format=json: every line an object with timestamp, level and
    // the message.
    let log = n1.log();
    let mut n = 0;
    for l in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.contains('T')),
            "{l}"
        );
        assert!(v["level"].as_str().is_some(), "{l}");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("netboot agent: ")),
            "{l}"
        );
        n += 1;
    }
    assert!(n > 5, "{log}");
    assert!(log.contains("\"level\":\"WARN\""), "{log}");
    assert!(!log.contains("\"level\":\"DEBUG\""), "{log}");

    // --log-level=warn: only warnings (etcd unreachable), no info lines;
    // it wins over -v.
    let mut n3 = AgentNode::new(&ul, "n3", 13);
    n3.start_agent("http://10.99.0.1:2379", &["--log-level=warn", "-v=3"]);
    assert!(
        wait_until(WAIT, || n3.log().contains("cannot read the network config")),
        "{}",
        n3.log()
    );
    assert!(!n3.log().contains(" INFO "), "{}", n3.log());
    assert!(!n3.log().contains("holding"), "{}", n3.log());
    assert!(n3.log().contains(" WARN "), "{}", n3.log());
    assert!(!n3.log().contains(" DEBUG "), "{}", n3.log());
    assert!(!n3.log().contains(" TRACE "), "{}", n3.log());

    // flanneld's -v=2 without --log-level: debug lines, such as each
    // resync's summary.
    let mut n4 = AgentNode::new(&ul, "n4", 14);
    n4.start_agent(&ep, &["-v=2", "--resync-interval=1s"]);
    assert!(
        wait_until(WAIT, || n4.log().lines().any(
            |l| l.contains(" DEBUG ") && l.contains("resync at etcd revision")
        )),
        "{}",
        n4.log()
    );
    assert!(!n4.log().contains(" TRACE "), "{}", n4.log());
}
