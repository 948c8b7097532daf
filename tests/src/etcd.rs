//! A real etcd (Debian's `etcd-server`, v3.4) for the bootstrapper tests:
//! started on free 127.0.0.1 ports (client and peer) with a temp data dir,
//! optionally with TLS (certs made with the `openssl` CLI) and auth, and
//! stopped by PID on drop. Only loopback is used; no namespace is changed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::exec::{run, CmdOutput};

/// A port the kernel just handed out on 127.0.0.1 (free when returned).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// CA and client certificate made for a TLS etcd.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct EtcdServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    /// Client URL, `http://127.0.0.1:PORT` or `https://...`.
    pub url: String,
    pub tls: Option<TlsFiles>,
    /// root credentials once [`EtcdServer::enable_auth`] ran.
    root_password: Option<String>,
    /// Network namespace etcd and etcdctl run in (`None`: the caller's).
    netns: Option<PathBuf>,
}

fn openssl(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.args(args).current_dir(dir);
    run(cmd, None, Duration::from_secs(30)).expect_ok();
}

/// A CA, a server cert for 127.0.0.1 and a client cert, in `dir`.
fn make_certs(dir: &Path) -> TlsFiles {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=netboot-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn) in [("server", "127.0.0.1"), ("client", "netboot-client")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }
    TlsFiles {
        ca: dir.join("ca.crt"),
        cert: dir.join("client.crt"),
        key: dir.join("client.key"),
    }
}

impl EtcdServer {
    /// Plain-HTTP etcd.
    pub fn start() -> EtcdServer {
        Self::launch(false)
    }

    /// etcd serving HTTPS and requiring client certificates.
    pub fn start_tls() -> EtcdServer {
        Self::launch(true)
    }

    /// TLS etcd on the loopback of the network namespace at `netns` (so a
    /// process inside it, e.g. a `netboot agent`, reaches 127.0.0.1).
    pub fn start_tls_in(netns: &Path) -> EtcdServer {
        Self::launch_in(true, Some(netns.to_path_buf()))
    }

    fn command(netns: Option<&Path>, tool: &str) -> Command {
        match netns {
            Some(ns) => crate::exec::nsenter(ns, &[tool]),
            None => Command::new(tool),
        }
    }

    fn launch(tls: bool) -> EtcdServer {
        Self::launch_in(tls, None)
    }

    fn launch_in(tls: bool, netns: Option<PathBuf>) -> EtcdServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = tls.then(|| make_certs(dir.path()));
        let scheme = if tls { "https" } else { "http" };
        let (cport, pport) = (free_port(), free_port());
        let url = format!("{scheme}://127.0.0.1:{cport}");
        let peer = format!("http://127.0.0.1:{pport}");
        let mut cmd = Self::command(netns.as_deref(), "etcd");
        cmd.arg("--name=nbt")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=nbt={peer}"))
            .arg("--log-outputs=stderr");
        if tls {
            let d = dir.path();
            cmd.arg(format!("--cert-file={}", d.join("server.crt").display()))
                .arg(format!("--key-file={}", d.join("server.key").display()))
                .arg(format!("--trusted-ca-file={}", d.join("ca.crt").display()))
                .arg("--client-cert-auth");
        }
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let child = cmd
            .spawn()
            .expect("start etcd (apt-get install etcd-server)");
        let server = EtcdServer {
            child: Some(child),
            dir,
            url,
            tls: files,
            root_password: None,
            netns,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if self.ctl(&["endpoint", "health"]).success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        panic!("etcd at {} not healthy after 20 s; log:\n{log}", self.url);
    }

    /// `etcdctl` against this server (v3 API), as root once auth is on.
    pub fn ctl(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = Self::command(self.netns.as_deref(), "etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.url));
        if let Some(t) = &self.tls {
            cmd.arg(format!("--cacert={}", t.ca.display()))
                .arg(format!("--cert={}", t.cert.display()))
                .arg(format!("--key={}", t.key.display()));
        }
        if let Some(p) = &self.root_password {
            cmd.arg(format!("--user=root:{p}"));
        }
        cmd.args(args);
        run(cmd, None, Duration::from_secs(15))
    }

    /// Value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<String> {
        let out = self.ctl(&["get", "--print-value-only", key]).expect_ok();
        let v = out.stdout.trim_end_matches('\n');
        (!v.is_empty()).then(|| v.to_string())
    }

    pub fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", key, value]).expect_ok();
    }

    /// Put with a fresh etcd lease of `ttl` seconds.
    pub fn put_with_lease(&self, key: &str, value: &str, ttl: u32) {
        put_with_lease(|args| self.ctl(args), key, value, ttl);
    }

    /// Turn on auth: root (password `root_password`) and `user` (password
    /// `password`) with read-write on keys under `prefix`.
    pub fn enable_auth(&mut self, root_password: &str, user: &str, password: &str, prefix: &str) {
        self.ctl(&["user", "add", &format!("root:{root_password}")])
            .expect_ok();
        self.ctl(&["role", "add", "netboot"]).expect_ok();
        self.ctl(&[
            "role",
            "grant-permission",
            "netboot",
            "--prefix=true",
            "readwrite",
            prefix,
        ])
        .expect_ok();
        self.ctl(&["user", "add", &format!("{user}:{password}")])
            .expect_ok();
        self.ctl(&["user", "grant-role", user, "netboot"])
            .expect_ok();
        self.ctl(&["auth", "enable"]).expect_ok();
        self.root_password = Some(root_password.to_string());
    }

    /// The `--etcd`, TLS flags for netboot.
    pub fn netboot_args(&self) -> Vec<String> {
        let mut a = vec![format!("--etcd={}", self.url)];
        if let Some(t) = &self.tls {
            a.push(format!("--cacert={}", t.ca.display()));
            a.push(format!("--cert={}", t.cert.display()));
            a.push(format!("--key={}", t.key.display()));
        }
        a
    }

    /// Stop etcd (SIGTERM to its PID, then wait); idempotent.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Run the `netboot` binary with `args` (bounded at 60 s).
pub fn netboot(args: &[String]) -> CmdOutput {
    let mut cmd = Command::new(crate::bin_path("netboot"));
    cmd.args(args).env_remove("NETBOOT_ETCD_PASSWORD");
    run(cmd, None, Duration::from_secs(60))
}

/// `args` as owned strings: `sv(&["init", "--dry-run"])`.
pub fn sv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `key` = `value` with a fresh etcd lease of `ttl` seconds, through
/// `ctl` (an `etcdctl` run with the connection options).
pub(crate) fn put_with_lease(ctl: impl Fn(&[&str]) -> CmdOutput, key: &str, value: &str, ttl: u32) {
    let out = ctl(&["lease", "grant", &ttl.to_string()]).expect_ok();
    // "lease 694d77aa9e38260f granted with TTL(3600s)"
    let id = out
        .stdout
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    ctl(&["put", &format!("--lease={id}"), key, value]).expect_ok();
}
