//! What runc writes into a container's cgroup for the OCI
//! `linux.resources` podrun sends (see `oci::resources`), per hierarchy
//! version, and how the kernel shows it back: `podrun check` compares the
//! live files with it. runc 1.1 `libcontainer/cgroups/fs` (v1) and `fs2`
//! (v2) do the writing; the conversions are runc's
//! (`cgroups/utils.go` ConvertCPUSharesToCgroupV2Value,
//! ConvertMemorySwapToCgroupV2Value).

use std::fs;
use std::path::PathBuf;

use crate::cgroup::Host;
use crate::spec::{Resources, CFS_PERIOD_US};

/// The kernel keeps memory limits in pages: a limit reads back rounded
/// down to a multiple of the page size (v1 `memory.limit_in_bytes`, v2
/// `memory.max`, both through `page_counter_memparse`).
fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(4096)
}

/// One cgroup file and the content it must have, relative to the cgroup
/// root: `memory/<path>/memory.limit_in_bytes` (v1) or
/// `<path>/memory.max` (v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub file: PathBuf,
    pub value: String,
    /// Other contents that are right too (another runc version's).
    pub also: Vec<String>,
}

/// runc's cpu.shares → cpu.weight mapping before 1.3.2: linear,
/// [2, 262144] → [1, 10000] (so the default 1024 becomes 39).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// runc's mapping since 1.3.2: a quadratic in log2(shares) through the
/// minimum (2 → 1), the default (1024 → 100) and the maximum
/// (262144 → 10000): 10^((l² + 125·l)/612 − 7/34), rounded up.
pub fn shares_to_weight_since_runc_1_3_2(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    }
}

/// The files runc writes for `r` into cgroup `path` (an OCI
/// `cgroupsPath`, cgroupfs driver) and their expected content.
pub fn expected(path: &str, r: &Resources, host: Host) -> Vec<Expected> {
    expected_with_page(path, r, host, page_size())
}

fn expected_with_page(path: &str, r: &Resources, host: Host, page: u64) -> Vec<Expected> {
    let rel = path.trim_start_matches('/');
    let file = |ctrl: &str, name: &str| {
        if host.v2 {
            PathBuf::from(rel).join(name)
        } else {
            PathBuf::from(ctrl).join(rel).join(name)
        }
    };
    let mut out = Vec::new();
    let mut push = |f: PathBuf, v: String| {
        out.push(Expected {
            file: f,
            value: v,
            also: Vec::new(),
        })
    };
    if let Some(m) = r.memory {
        let limit = m.0 / page * page;
        if host.v2 {
            push(file("memory", "memory.max"), limit.to_string());
            if host.swap {
                // OCI swap is memory+swap; v2 wants swap alone: the
                // spec's swap == limit gives 0, no swap at all.
                push(file("memory", "memory.swap.max"), "0".into());
            }
        } else {
            push(file("memory", "memory.limit_in_bytes"), limit.to_string());
            if host.swap {
                push(
                    file("memory", "memory.memsw.limit_in_bytes"),
                    limit.to_string(),
                );
            }
        }
    }
    if let Some(c) = r.cpus {
        if host.v2 {
            push(
                file("cpu", "cpu.max"),
                format!("{} {CFS_PERIOD_US}", c.quota_us()),
            );
        } else {
            push(file("cpu", "cpu.cfs_quota_us"), c.quota_us().to_string());
            push(file("cpu", "cpu.cfs_period_us"), CFS_PERIOD_US.to_string());
        }
    }
    if let Some(s) = &r.cpuset {
        push(file("cpuset", "cpuset.cpus"), s.to_string());
    }
    if let Some(s) = r.cpu_shares {
        if host.v2 {
            push(file("cpu", "cpu.weight"), shares_to_weight(s).to_string());
            // Floating point at a rounding edge may land one off.
            let q = shares_to_weight_since_runc_1_3_2(s);
            if let Some(last) = out.last_mut() {
                last.also = [q.saturating_sub(1), q, q + 1]
                    .iter()
                    .map(u64::to_string)
                    .collect();
            }
        } else {
            push(file("cpu", "cpu.shares"), s.to_string());
        }
    }
    out
}

/// Compares the files under `root` with `expected`: one line per file
/// that differs or cannot be read.
pub fn mismatches(root: &std::path::Path, expected: &[Expected]) -> Vec<String> {
    let mut out = Vec::new();
    for e in expected {
        let p = root.join(&e.file);
        match fs::read_to_string(&p) {
            Ok(v) if v.trim() == e.value || e.also.iter().any(|a| a == v.trim()) => {}
            Ok(v) => out.push(format!(
                "{} is {:?}, want {:?}",
                p.display(),
                v.trim(),
                e.value
            )),
            Err(err) => out.push(format!("{}: {err}", p.display())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::PodSpec;

    fn resources(yaml: &str) -> Resources {
        let doc =
            format!("name: p\ncontainers:\n  - name: c\n    image: i\n    resources: {yaml}\n");
        PodSpec::from_yaml(&doc).unwrap().containers[0]
            .resources
            .clone()
    }

    fn pairs(v: &[Expected]) -> Vec<(String, String)> {
        v.iter()
            .map(|e| (e.file.display().to_string(), e.value.clone()))
            .collect()
    }

    fn s(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn runc_v1_files() {
        let r = resources("{memory: 16Mi, cpus: 0.5, cpuset: '0-1', cpuShares: 256}");
        let host = Host {
            v2: false,
            swap: false,
        };
        assert_eq!(
            pairs(&expected("/netboot/p-1.c", &r, host)),
            [
                s("memory/netboot/p-1.c/memory.limit_in_bytes", "16777216"),
                s("cpu/netboot/p-1.c/cpu.cfs_quota_us", "50000"),
                s("cpu/netboot/p-1.c/cpu.cfs_period_us", "100000"),
                s("cpuset/netboot/p-1.c/cpuset.cpus", "0-1"),
                s("cpu/netboot/p-1.c/cpu.shares", "256"),
            ]
        );
        let swap = Host {
            v2: false,
            swap: true,
        };
        let e = expected_with_page("/n/x", &resources("{memory: 10000000}"), swap, 4096);
        // 10000000 bytes read back as whole pages (4 KiB; 64 KiB pages
        // would give 9961472).
        assert_eq!(
            expected_with_page("/n/x", &resources("{memory: 10000000}"), swap, 65536)[0].value,
            "9961472"
        );
        assert_eq!(
            pairs(&e),
            [
                s("memory/n/x/memory.limit_in_bytes", "9998336"),
                s("memory/n/x/memory.memsw.limit_in_bytes", "9998336"),
            ]
        );
    }

    /// cgroup v2 (unified): files directly under the container's cgroup,
    /// runc's conversions for swap and weight.
    #[test]
    fn runc_v2_files() {
        let r = resources("{memory: 64Mi, cpus: 1.5, cpuset: '0,2-3', cpuShares: 1024}");
        let host = Host {
            v2: true,
            swap: true,
        };
        assert_eq!(
            pairs(&expected("/netboot/p-1.c", &r, host)),
            [
                s("netboot/p-1.c/memory.max", "67108864"),
                s("netboot/p-1.c/memory.swap.max", "0"),
                s("netboot/p-1.c/cpu.max", "150000 100000"),
                s("netboot/p-1.c/cpuset.cpus", "0,2-3"),
                s("netboot/p-1.c/cpu.weight", "39"),
            ]
        );
        let no_swap = Host {
            v2: true,
            swap: false,
        };
        let e = expected("/n/x", &resources("{memory: 16Mi}"), no_swap);
        assert_eq!(pairs(&e), [s("n/x/memory.max", "16777216")]);
        assert!(expected("/n/x", &Resources::default(), host).is_empty());
    }

    #[test]
    fn weight_conversion_matches_runc() {
        // runc: 1 + ((shares-2)*9999)/262142; the ends map to the ends.
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(0), 0);
        // runc >= 1.3.2: the ends, and the default to the default.
        assert_eq!(shares_to_weight_since_runc_1_3_2(2), 1);
        assert_eq!(shares_to_weight_since_runc_1_3_2(1024), 100);
        assert_eq!(shares_to_weight_since_runc_1_3_2(262_144), 10_000);
        assert_eq!(shares_to_weight_since_runc_1_3_2(0), 0);
        let mid = shares_to_weight_since_runc_1_3_2(512);
        assert!((40..100).contains(&mid), "{mid}");
    }

    /// Files laid out as the kernel shows them (v2: one directory per
    /// cgroup with `cpu.max` as "quota period", values with a newline).
    #[test]
    fn mismatches_read_the_real_layout() {
        let d = tempfile::tempdir().unwrap();
        let cg = d.path().join("netboot/p-1.c");
        fs::create_dir_all(&cg).unwrap();
        fs::write(cg.join("memory.max"), "16777216\n").unwrap();
        fs::write(cg.join("cpu.max"), "max 100000\n").unwrap();
        let host = Host {
            v2: true,
            swap: false,
        };
        let e = expected(
            "/netboot/p-1.c",
            &resources("{memory: 16Mi, cpus: 0.5, cpuShares: 512}"),
            host,
        );
        let m = mismatches(d.path(), &e);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(
            m[0].ends_with("cpu.max is \"max 100000\", want \"50000 100000\""),
            "{m:?}"
        );
        assert!(m[1].contains("cpu.weight: "), "{m:?}");
        fs::write(cg.join("cpu.max"), "50000 100000\n").unwrap();
        fs::write(cg.join("cpu.weight"), "20\n").unwrap();
        assert_eq!(mismatches(d.path(), &e), Vec::<String>::new());
        // A newer runc's weight for the same shares is right too.
        let newer = shares_to_weight_since_runc_1_3_2(512).to_string();
        fs::write(cg.join("cpu.weight"), format!("{newer}\n")).unwrap();
        assert_eq!(mismatches(d.path(), &e), Vec::<String>::new());
        fs::write(cg.join("cpu.weight"), "7\n").unwrap();
        assert_eq!(mismatches(d.path(), &e).len(), 1);
    }
}
