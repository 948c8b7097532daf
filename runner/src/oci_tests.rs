//! Unit tests of `oci`: specs built for a v1 and a v2 host.

use super::*;
use crate::spec::PodSpec;

fn pod(doc: &str) -> PodSpec {
    PodSpec::from_yaml(doc).unwrap()
}

fn img() -> ImageInfo {
    ImageInfo {
        entrypoint: vec!["/entry".into()],
        cmd: vec!["cmd1".into()],
        env: vec!["A=img".into(), "B=img".into()],
        working_dir: "/img".into(),
        user: String::new(),
        chain_id: "sha256:x".into(),
    }
}

/// The OCI spec of pod `p`'s first container (hostname `p`, state under
/// /state) on `host`, in cgroup `cgroup`.
fn first_container_spec(p: &PodSpec, host: Host, cgroup: &str) -> Value {
    let ns = Namespaces {
        network: "/proc/1/ns/net",
        ipc: Some("/proc/1/ns/ipc"),
        uts: Some("/proc/1/ns/uts"),
    };
    let etc = EtcFiles {
        dir: Path::new("/state/etc"),
    };
    let vols = PodVolumes::of(p, Path::new("/state/pods/p"));
    let parts = PodParts {
        pod: p,
        hostname: "p",
        ns: &ns,
        etc: &etc,
        volumes: &vols,
        host,
    };
    container_spec(&p.containers[0], "containers[0]", &img(), cgroup, &parts).unwrap()
}

#[test]
fn entrypoint_cmd_semantics() {
    let base = "name: p\ncontainers:\n  - name: c\n    image: i\n";
    let cases = [
        ("", vec!["/entry", "cmd1"]),
        ("    args: [x]\n", vec!["/entry", "x"]),
        ("    command: [/bin/sh]\n", vec!["/bin/sh"]),
        (
            "    command: [/bin/sh]\n    args: [-c, id]\n",
            vec!["/bin/sh", "-c", "id"],
        ),
    ];
    for (extra, want) in cases {
        let p = pod(&format!("{base}{extra}"));
        assert_eq!(argv(&p.containers[0], &img()).unwrap(), want, "{extra}");
    }
    let p = pod(base);
    assert!(argv(&p.containers[0], &ImageInfo::default()).is_err());
}

#[test]
fn env_and_resources() {
    let p = pod(
        "name: p\ncontainers:\n  - name: c\n    image: i\n    env: {B: spec, C: x}\n    \
         workingDir: /w\n    mounts:\n      - {hostPath: /h, containerPath: /c, readOnly: true}\n    \
         resources: {memory: 64Mi, cpus: 1.5, cpuset: '0', cpuShares: 100}\n",
    );
    let c = &p.containers[0];
    let e = env(c, &img(), "p");
    assert!(e.contains(&"A=img".to_string()));
    assert!(e.contains(&"B=spec".to_string()));
    assert!(e.contains(&"C=x".to_string()));
    assert!(e.contains(&"HOSTNAME=p".to_string()));
    let v1 = Host {
        v2: false,
        swap: false,
    };
    let s = first_container_spec(&p, v1, "/netboot/x");
    assert_eq!(s["linux"]["cgroupsPath"], "/netboot/x");
    assert_eq!(s["process"]["cwd"], "/w");
    let r = &s["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 64 << 20);
    assert!(r["memory"].get("swap").is_none(), "no memsw on this host");
    assert_eq!(r["cpu"]["quota"], 150_000);
    assert_eq!(r["cpu"]["period"], 100_000);
    assert_eq!(r["cpu"]["cpus"], "0");
    assert_eq!(r["cpu"]["shares"], 100);
    let mounts = s["mounts"].as_array().unwrap();
    let ro = mounts.iter().find(|m| m["destination"] == "/c").unwrap();
    assert_eq!(ro["type"], "bind");
    assert_eq!(ro["options"], json!(["rbind", "ro", "rprivate"]));
    assert!(mounts
        .iter()
        .any(|m| m["destination"] == "/etc/resolv.conf"));
    let nss = s["linux"]["namespaces"].as_array().unwrap();
    assert!(nss.contains(&json!({"type": "network", "path": "/proc/1/ns/net"})));
    assert!(nss.contains(&json!({"type": "pid"})));
    assert!(
        s.get("hostname").is_none(),
        "hostname comes from the shared UTS ns"
    );
    assert!(!nss.contains(&json!({"type": "cgroup"})));
}

/// The same pod on a cgroup v2 host with swap accounting (and on v1
/// with memsw): swap pinned to the limit so the limit OOM-kills, a
/// cgroup namespace on v2 only, the rest unchanged.
#[test]
fn resources_and_namespaces_per_cgroup_version() {
    let p = pod("name: p\ncontainers:\n  - name: c\n    image: i\n    \
         resources: {memory: 16Mi, cpus: 0.5, cpuset: '0-1', cpuShares: 512}\n");
    for (v2, swap) in [(true, true), (true, false), (false, true)] {
        let host = Host { v2, swap };
        let s = first_container_spec(&p, host, "/netboot/p-1.c");
        let r = &s["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 16 << 20, "{host:?}");
        if swap {
            assert_eq!(r["memory"]["swap"], 16 << 20, "{host:?}");
        } else {
            assert!(r["memory"].get("swap").is_none(), "{host:?}");
        }
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["cpu"]["cpus"], "0-1");
        assert_eq!(r["cpu"]["shares"], 512);
        let nss = s["linux"]["namespaces"].as_array().unwrap();
        assert_eq!(nss.contains(&json!({"type": "cgroup"})), v2, "{host:?}");
        assert_eq!(s["linux"]["cgroupsPath"], "/netboot/p-1.c");
        let pause = pause_spec("/netboot/p-1", "/run/netns/x", Some("p"), host);
        let pns = pause["linux"]["namespaces"].as_array().unwrap();
        assert_eq!(pns.contains(&json!({"type": "cgroup"})), v2);
        assert!(pns.contains(&json!({"type": "network", "path": "/run/netns/x"})));
        assert!(pns.contains(&json!({"type": "uts"})));
        assert_eq!(pause["hostname"], "p");
        // hostNetwork: the node's UTS namespace, no hostname of its own.
        let pause = pause_spec("/netboot/p-1", "/proc/1/ns/net", None, host);
        let pns = pause["linux"]["namespaces"].as_array().unwrap();
        assert!(!pns.iter().any(|n| n["type"] == "uts"), "{pns:?}");
        assert!(pause.get("hostname").is_none());
    }
}
