//! What containerd 1.6's CRI plugin sends a CNI plugin, observed with a
//! recording stand-in (a fake, for this observation only: the proof that
//! netboot-cni works on this path is in `cri_native`, `cri_bridge` and
//! `cri_flannel`). Pins the facts a plugin must handle: CNI_ARGS, the
//! runtimeConfig keys in their Go spelling, and the two DELs (the second
//! with an empty CNI_NETNS and no prevResult, from RemovePodSandbox).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use k8s_cri::v1::DnsConfig;
use netboot_tests::cri::node::CriNode;
use netboot_tests::cri::round_trip::{web_ports, BANDWIDTH, HOST_IP};
use netboot_tests::plugin_support::{recorded_calls, recording_script, RecordedCall, NET};
use netboot_tests::require_root;
use serde_json::{json, Value};

const RESULT: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"0a:58:0a:02:01:05","sandbox":"/x"}],"ips":[{"address":"10.2.1.5/24","gateway":"10.2.1.1","interface":0}]}"#;

/// Every capability a conflist may declare that go-cni knows of.
fn capabilities() -> Value {
    json!({"portMappings": true, "bandwidth": true, "ipRanges": true, "dns": true,
        "aliases": true, "io.kubernetes.cri.pod-annotations": true})
}

/// CNI_ARGS as a set of `K=V` (containerd builds it from a Go map: its
/// order changes from call to call).
fn cni_args(c: &RecordedCall) -> BTreeSet<String> {
    c.env["CNI_ARGS"].split(';').map(str::to_owned).collect()
}

fn dump(calls: &[RecordedCall]) -> String {
    let mut s = String::new();
    for c in calls {
        s.push_str(&format!("--- {}\n", c.command));
        for (k, v) in c.env.iter().filter(|(k, _)| k.starts_with("CNI_")) {
            s.push_str(&format!("  {k}={v}\n"));
        }
        s.push_str(&format!("  stdin: {}\n", c.stdin));
    }
    s
}

#[test]
fn cri_sends_go_style_capability_args_and_two_dels() {
    require_root();
    let log = tempfile::Builder::new()
        .prefix("netboot-cri-rec-")
        .tempdir()
        .unwrap();
    fs::write(log.path().join("result-ADD"), RESULT).unwrap();
    let node = CriNode::build("cri-obs", |_, bin| {
        let script = bin.join("recorder");
        fs::write(&script, recording_script(log.path())).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        json!({"cniVersion": "1.0.0", "name": NET,
            "plugins": [{"type": "recorder", "capabilities": capabilities()}]})
    });
    let mut config = node.sandbox_config("obs", &web_ports(), &BANDWIDTH);
    config.dns_config = Some(DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["default.svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    let id = node.cri.run_sandbox(&config).expect("RunPodSandbox");
    let netns = node.cri.netns_of(&id).unwrap().expect("netns path");
    assert_eq!(node.cri.sandbox_ip(&id).unwrap(), "10.2.1.5");
    node.cri.stop_sandbox(&id).expect("StopPodSandbox");
    let after_stop = recorded_calls(log.path()).len();
    node.cri.remove_sandbox(&id).expect("RemovePodSandbox");
    let calls = recorded_calls(log.path());
    eprintln!("{}", dump(&calls));
    let commands: Vec<&str> = calls.iter().map(|c| c.command.as_str()).collect();
    assert_eq!(commands, ["ADD", "DEL", "DEL"], "{}", dump(&calls));
    assert_eq!(after_stop, 2, "StopPodSandbox: ADD then DEL");

    let args: BTreeSet<String> = [
        format!("K8S_POD_INFRA_CONTAINER_ID={id}"),
        format!("K8S_POD_UID=uid-obs-{}", std::process::id()),
        "IgnoreUnknown=1".into(),
        "K8S_POD_NAMESPACE=default".into(),
        "K8S_POD_NAME=obs".into(),
    ]
    .into();
    let netns = netns.display().to_string();
    for (c, want_netns) in calls.iter().zip([netns.as_str(), &netns, ""]) {
        assert_eq!(cni_args(c), args, "{}", dump(&calls));
        assert_eq!(c.env["CNI_CONTAINERID"], id);
        assert_eq!(c.env["CNI_IFNAME"], "eth0");
        assert_eq!(c.env["CNI_NETNS"], want_netns, "{}", dump(&calls));
        assert_eq!(
            c.stdin["runtimeConfig"],
            json!({
                // Go field names, protocol in lower case, an empty HostIP
                // for "every address".
                "portMappings": [
                    {"HostPort": 18080, "ContainerPort": 8080, "Protocol": "tcp", "HostIP": ""},
                    {"HostPort": 18053, "ContainerPort": 5353, "Protocol": "udp", "HostIP": ""},
                    {"HostPort": 18081, "ContainerPort": 8080, "Protocol": "tcp", "HostIP": HOST_IP},
                ],
                // bits per second; the burst is Go's math.MaxUint32.
                "bandwidth": {"IngressRate": 8_000_000u64, "IngressBurst": 4_294_967_295u64,
                    "EgressRate": 8_000_000u64, "EgressBurst": 4_294_967_295u64},
                // The sandbox's DNSConfig, Go field names again.
                "dns": {"Servers": ["10.96.0.10"], "Searches": ["default.svc.cluster.local"],
                    "Options": ["ndots:5"]},
                "io.kubernetes.cri.pod-annotations": {
                    "kubernetes.io/ingress-bandwidth": "8M",
                    "kubernetes.io/egress-bandwidth": "8M",
                },
            }),
            "containerd 1.6 sends no ipRanges or aliases: {}",
            dump(&calls)
        );
        assert_eq!(c.stdin["capabilities"], capabilities());
    }
    // The first DEL carries libcni's cached ADD result; the second, after
    // the cache entry went with the first, none.
    let prev: Value = serde_json::from_str(RESULT).unwrap();
    assert_eq!(calls[1].stdin["prevResult"]["ips"], prev["ips"]);
    assert!(calls[0].stdin.get("prevResult").is_none());
    assert!(
        calls[2].stdin.get("prevResult").is_none(),
        "{}",
        dump(&calls)
    );
}
