//! conf/netboot-agent.service and conf/netboot-agent.env: `systemd-analyze
//! verify` finds nothing to say about the unit, its settings example gives
//! the agent valid arguments, and the agent does its whole start-up (vxlan
//! device, sysctl, nftables masquerade, subnet.env) inside the unit's
//! confinement: its capability bounding set and no_new_privs (setpriv),
//! and, checked on an `strace -f` of the run, only system calls its
//! SystemCallFilter= admits, only socket families its
//! RestrictAddressFamilies= allows, writes only where ProtectSystem=
//! strict leaves it room (its RuntimeDirectory= dirs and /proc/sys/net),
//! no device but the pseudo ones (PrivateDevices=) and no writable and
//! executable memory (MemoryDenyWriteExecute=).
//! systemd itself cannot run here (it is not PID 1), hence the emulation.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netboot_tests::cluster::{wait_until, AgentNode, EtcdCluster, Underlay, CONFIG, PREFIX};
use netboot_tests::unit_file::{children, Trace, Unit, ANALYZE_TIMEOUT};
use netboot_tests::{bin_path, nsenter, require_root, run};

/// The unit with ExecStart= pointing at the binary under test (verify
/// wants an executable there), written to `dir`.
fn unit_copy(unit: &Unit, dir: &Path) -> PathBuf {
    let bin = bin_path("netboot");
    let text = unit
        .text()
        .replace("/usr/local/bin/netboot", &bin.display().to_string());
    assert_ne!(
        text,
        unit.text(),
        "ExecStart= no longer names /usr/local/bin/netboot"
    );
    let path = dir.join("netboot-agent.service");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn unit_verifies_without_a_word_and_stays_confined() {
    let unit = Unit::agent();
    let dir = tempfile::tempdir().unwrap();
    let path = unit_copy(&unit, dir.path());
    // Documentation=man:netboot-agent(1) must be a page netboot ships.
    let man = dir.path().join("man");
    let mut gen = Command::new(bin_path("netboot"));
    gen.arg("man").arg(man.join("man1"));
    run(gen, None, ANALYZE_TIMEOUT).expect_ok();
    let mut verify = Command::new("systemd-analyze");
    verify.arg("verify").arg(&path).env("MANPATH", &man);
    let out = run(verify, None, ANALYZE_TIMEOUT);
    assert!(
        out.success() && out.stdout.trim().is_empty() && out.stderr.trim().is_empty(),
        "systemd-analyze verify: {out}"
    );
    // verify warns but succeeds on an unknown key: the silence above is
    // what shows the unit is clean.
    std::fs::write(&path, format!("{}\nProtectSytem=strict\n", unit.text())).unwrap();
    let mut bad = Command::new("systemd-analyze");
    bad.arg("verify").arg("--man=no").arg(&path);
    let out = run(bad, None, ANALYZE_TIMEOUT);
    assert!(out.stderr.contains("ProtectSytem"), "{out}");

    // The hardening as systemd itself scores it (0 = locked down, 10 =
    // none): losing a protection above shows here.
    let path = unit_copy(&unit, dir.path());
    let mut sec = Command::new("systemd-analyze");
    sec.args(["security", "--offline=yes"]).arg(&path);
    let out = run(sec, None, ANALYZE_TIMEOUT);
    let level: f64 = out
        .stdout
        .lines()
        .chain(out.stderr.lines())
        .find_map(|l| {
            l.split("Overall exposure level for netboot-agent.service: ")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level: {out}"));
    assert!(level <= 2.5, "exposure {level}: {out}");
}

#[test]
fn env_example_gives_the_agent_valid_arguments() {
    let unit = Unit::agent();
    let env_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/netboot-agent.env");
    let text = std::fs::read_to_string(&env_path).unwrap();
    let mut vars = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("netboot-agent.env:{}: not VAR=value: {line}", n + 1));
        assert!(
            name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
            "netboot-agent.env:{}: {name}",
            n + 1
        );
        vars.push((name.to_string(), value.to_string()));
    }
    // Every variable ExecStart= expands is set there.
    let exec = unit.values("ExecStart").join(" ");
    let used: Vec<&str> = exec
        .split('$')
        .skip(1)
        .map(|r| r.trim_start_matches('{'))
        .map(|r| {
            r.split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                .next()
                .unwrap()
        })
        .collect();
    assert!(!used.is_empty(), "ExecStart= takes no settings: {exec}");
    for u in &used {
        assert!(
            vars.iter().any(|(n, _)| n == u),
            "${u} is not in netboot-agent.env"
        );
    }
    assert!(
        unit.values("EnvironmentFile")
            .iter()
            .any(|f| f == "/etc/netboot/agent.env"),
        "EnvironmentFile= is where docs/install.md and provision.sh install the example"
    );
    // systemd splits the value at whitespace; clap stops at the first
    // unknown flag or bad value, before --help.
    let check = |args: &str| {
        let mut cmd = Command::new(bin_path("netboot"));
        cmd.arg("agent").args(args.split_whitespace()).arg("--help");
        run(cmd, None, ANALYZE_TIMEOUT)
    };
    let args = &vars
        .iter()
        .find(|(n, _)| n == "NETBOOT_AGENT_ARGS")
        .unwrap()
        .1;
    check(args).expect_ok();
    assert!(!check(&format!("{args} --no-such-flag")).success());
}

/// The traced agent: strace (the spawned process) and, under it, setpriv
/// exec'd into netboot. Dropping kills the agent, then strace, by PID.
struct Traced {
    strace: Child,
}

impl Traced {
    fn agent_pid(&self) -> Option<u32> {
        children(self.strace.id()).first().copied()
    }

    /// SIGTERM the agent, then wait for strace to write the trace and exit.
    fn stop(&mut self) {
        if let Some(pid) = self.agent_pid() {
            netboot_tests::agent_support::signal(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let ok = wait_until(Duration::from_secs(30), || {
            matches!(self.strace.try_wait(), Ok(Some(_)))
        });
        assert!(ok, "the traced agent did not stop on SIGTERM");
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if let Some(pid) = self.agent_pid() {
            netboot_tests::agent_support::signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.strace.kill();
        let _ = self.strace.wait();
    }
}

/// The unit's confinement, as far as it can be had without systemd.
struct Confinement {
    unit: Unit,
    /// setpriv's `--bounding-set`.
    bounding: String,
    /// ReadWritePaths= outside the runtime directories.
    read_write: Vec<String>,
}

impl Confinement {
    fn of(unit: Unit) -> Confinement {
        assert_eq!(unit.words("NoNewPrivileges"), ["yes"]);
        assert_eq!(unit.words("ProtectSystem"), ["strict"]);
        // The agent's default paths are /run/flannel/subnet.env and
        // /run/netboot: the unit's runtime directories. Here they live
        // under each node's dir.
        assert_eq!(unit.words("RuntimeDirectory"), ["flannel", "netboot"]);
        let read_write = unit
            .words("ReadWritePaths")
            .iter()
            .map(|p| p.trim_start_matches('-').to_string())
            .collect();
        Confinement {
            bounding: unit.setpriv_bounding_set(),
            read_write,
            unit,
        }
    }

    /// Start-up of an agent on `node` under the confinement, traced;
    /// `path` goes first on its PATH (where the iptables it runs comes
    /// from). Checks what it set up, stops it, and returns the trace and
    /// the directories standing for the runtime directories.
    fn run(&self, node: &AgentNode, etcd: &EtcdCluster, path: &str) -> (Trace, Vec<PathBuf>) {
        let run_dir = node.dir.path().join("run");
        let writable: Vec<PathBuf> = self
            .unit
            .words("RuntimeDirectory")
            .iter()
            .map(|d| run_dir.join(d))
            .collect();
        for d in &writable {
            std::fs::create_dir_all(d).unwrap();
        }
        assert!(node.subnet_file().starts_with(&writable[0]));
        let bin = bin_path("netboot");
        let trace_file = node.dir.path().join("strace.out");
        let log = std::fs::File::create(node.log_path()).unwrap();
        let mut cmd = nsenter(node.ns.path(), &["strace", "-f", "-qq", "-s", "4096", "-o"]);
        cmd.arg(&trace_file)
            .args([
                "setpriv",
                "--bounding-set",
                &self.bounding,
                "--no-new-privs",
            ])
            .arg(&bin)
            .args(["agent", "--iface=eth0", "--ip-masq", "--etcd-timeout=3"])
            .arg(format!("--etcd={}", etcd.endpoints()))
            .arg(format!("--subnet-file={}", node.subnet_file().display()))
            .env("NETBOOT_LOCK_DIR", &writable[1])
            .env("PATH", format!("{path}:/usr/sbin:/usr/bin:/sbin:/bin"))
            .env_remove("NETBOOT_ETCD_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let mut traced = Traced {
            strace: cmd.spawn().expect("start strace (apt-get install strace)"),
        };
        let subnet = node.wait_subnet(Duration::from_secs(60));
        assert!(subnet.starts_with("10.2."), "{subnet}");
        // Everything start-up does happened, not just subnet.env; a
        // firewall step that failed would have logged a warning.
        assert!(node.vtep_mac().is_some(), "no flannel.1:\n{}", node.log());
        let fwd = node.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
        assert_eq!(fwd.expect_ok().stdout.trim(), "1");
        let nft = node.exec(&["nft", "list", "ruleset"]).expect_ok();
        assert!(nft.stdout.contains("masquerade"), "{nft}");
        let log = node.log();
        assert!(log.contains("in iptables filter FORWARD"), "{log}");
        assert!(!log.contains("warning"), "{log}");
        traced.stop();
        let text = std::fs::read_to_string(&trace_file).unwrap();
        (Trace::parse(&text, &bin), writable)
    }

    /// What the trace did that the unit would not let it do.
    #[track_caller]
    fn check(&self, trace: &Trace, writable: &[PathBuf]) {
        let unit = &self.unit;
        let allowed = unit.allowed_syscalls();
        let denied: Vec<&String> = trace.syscalls.difference(&allowed).collect();
        assert!(denied.is_empty(), "SystemCallFilter= would deny {denied:?}");
        assert!(trace.syscalls.contains("sendto") && trace.syscalls.contains("execve"));
        let families = unit.words("RestrictAddressFamilies");
        let foreign: Vec<&String> = trace
            .families
            .iter()
            .filter(|f| !families.contains(f))
            .collect();
        assert!(
            foreign.is_empty(),
            "RestrictAddressFamilies= would refuse {foreign:?}"
        );
        assert!(
            trace.families.contains("AF_NETLINK"),
            "{:?}",
            trace.families
        );
        let stray: Vec<&String> = trace
            .written
            .iter()
            .filter(|p| {
                !(writable.iter().any(|d| Path::new(p).starts_with(d))
                    || self.read_write.contains(p)
                    || p.starts_with("/proc/sys/net/")
                    || *p == "/dev/null")
            })
            .collect();
        assert!(
            stray.is_empty(),
            "ProtectSystem=strict would refuse writing {stray:?}"
        );
        assert!(
            trace
                .written
                .iter()
                .any(|p| p.starts_with("/proc/sys/net/")),
            "{:?}",
            trace.written
        );
        // PrivateDevices= leaves only the pseudo devices.
        assert_eq!(unit.words("PrivateDevices"), ["yes"]);
        let pseudo =
            ["null", "zero", "full", "random", "urandom", "tty"].map(|d| format!("/dev/{d}"));
        let devices: Vec<&String> = trace
            .devices
            .iter()
            .filter(|d| !pseudo.contains(d))
            .collect();
        assert!(devices.is_empty(), "PrivateDevices= would hide {devices:?}");
        assert_eq!(unit.words("MemoryDenyWriteExecute"), ["yes"]);
        assert_eq!(
            trace.write_exec_maps, 0,
            "MemoryDenyWriteExecute= would refuse a W+X mapping"
        );
    }
}

#[test]
fn agent_works_inside_the_units_confinement() {
    require_root();
    let c = Confinement::of(Unit::agent());
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);

    // Debian's default iptables (nft-based).
    let node = AgentNode::new(&ul, "svc", 31);
    let (trace, writable) = c.run(&node, &etcd, "/nonexistent");
    c.check(&trace, &writable);

    // A host whose iptables is the legacy one: its raw socket needs
    // CAP_NET_RAW, and it takes /run/xtables.lock.
    let legacy = AgentNode::new(&ul, "svcl", 32);
    let tools = legacy.dir.path().join("legacy-bin");
    std::fs::create_dir(&tools).unwrap();
    for t in ["iptables", "ip6tables"] {
        for verb in ["save", "restore"] {
            let target = format!("/usr/sbin/{t}-legacy-{verb}");
            std::os::unix::fs::symlink(target, tools.join(format!("{t}-{verb}"))).unwrap();
        }
    }
    let (trace, writable) = c.run(&legacy, &etcd, &tools.display().to_string());
    c.check(&trace, &writable);
    assert!(trace.families.contains("AF_INET"), "{:?}", trace.families);
    assert!(
        trace.written.contains("/run/xtables.lock"),
        "{:?}",
        trace.written
    );
    let save = legacy
        .exec(&["iptables-legacy-save", "-t", "filter"])
        .expect_ok();
    assert!(save.stdout.contains("NETBOOT-FWD"), "{save}");
}
