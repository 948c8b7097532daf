//! A pod's network identity from a Kubernetes manifest, proven inside
//! real containers (podrun + our own containerd + runc, netboot-cni in
//! native mode, in a node netns): a hostPort reached from another netns,
//! the namespace CNI is told, dnsPolicy/dnsConfig in resolv.conf, the
//! subdomain FQDN in /etc/hosts, hostNetwork pods in the node's netns
//! with no CNI attachment, and the bandwidth annotations shaping the pod.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netboot_tests::bandwidth_support::{
    go_entry, has_ingress_qdisc, host_veth, ifbs, shaping_qdiscs, tbf_rate, CONTAINERD_BURST,
};
use netboot_tests::containerd::{PodNode, BUSYBOX, NAMESPACE};
use netboot_tests::exec::{self, CmdOutput};
use netboot_tests::{require_root, retry};
use serde_json::{json, Value};

const HOST_IP: &str = "192.168.78.1";
const PEER_IP: &str = "192.168.78.10";

/// Writes `yaml` into the node dir as `<name>.yaml`; returns its path.
fn manifest(n: &PodNode, name: &str, yaml: &str) -> PathBuf {
    let p = n.node.dir().join(format!("{name}.yaml"));
    fs::write(&p, yaml).expect("write manifest");
    p
}

/// `podrun run [ARGS] -f FILE`.
fn run(n: &PodNode, file: &Path, args: &[&str]) -> CmdOutput {
    let mut argv = vec!["run"];
    argv.extend_from_slice(args);
    argv.extend(["-f", file.to_str().expect("utf-8")]);
    n.podrun(&argv)
}

/// The IP `podrun run` printed for `pod` (`NAME\tIP` lines).
#[track_caller]
fn printed_ip(out: &CmdOutput, pod: &str) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{pod}\t")))
        .unwrap_or_else(|| panic!("no IP for {pod}: {out}"))
        .to_string()
}

/// `cat FILE` in container `c` of `pod`.
#[track_caller]
fn cat(n: &PodNode, pod: &str, c: &str, file: &str) -> String {
    n.podrun(&["exec", pod, c, "--", "cat", file])
        .expect_ok()
        .stdout
}

/// `curl http://ip:port/` from namespace `from` until it answers.
fn http_get(from: &Path, ip: &str, port: u16) -> Option<String> {
    let url = format!("http://{ip}:{port}/");
    retry(20, Duration::from_millis(250), || {
        let o = exec::run(
            exec::nsenter(from, &["curl", "-sS", "-m", "5", &url]),
            None,
            Duration::from_secs(30),
        );
        o.success().then_some(o.stdout)
    })
}

/// Replaces the node's netboot-cni with a wrapper that logs
/// `CNI_COMMAND CNI_ARGS` of every call, then runs the real plugin.
fn log_cni_args(n: &PodNode) -> PathBuf {
    let bin = n.node.dir().join("bin/netboot-cni");
    let real = n.node.dir().join("real-netboot-cni");
    fs::rename(&bin, &real).expect("move plugin");
    let log = n.node.dir().join("cni-args.log");
    let script = format!(
        "#!/bin/sh\necho \"$CNI_COMMAND $CNI_ARGS\" >> {}\nexec {} \"$@\"\n",
        log.display(),
        real.display()
    );
    fs::write(&bin, script).expect("write wrapper");
    exec::run_argv(&["chmod", "755", bin.to_str().expect("utf-8")]).expect_ok();
    log
}

/// A port a manifest publishes answers a peer on the LAN, and the plugin
/// is told the manifest's namespace (a pod of podrun's own format: the
/// containerd namespace) on ADD and on DEL.
#[test]
fn manifest_host_port_is_reachable_and_cni_gets_the_manifest_namespace() {
    require_root();
    let n = PodNode::new("mn-port", "10.88.161.1/24");
    let peer = n.add_lan(&[&format!("{HOST_IP}/24")], &format!("{PEER_IP}/24"));
    let log = log_cni_args(&n);
    let file = manifest(
        &n,
        "web",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  \
             containers:\n  - name: httpd\n    image: {BUSYBOX}\n    \
             command: [httpd, -f, -p, '80', -h, /www]\n    \
             ports:\n    - containerPort: 80\n      hostPort: 18380\n"
        ),
    );
    let out = run(&n, &file, &[]).expect_ok();
    assert!(printed_ip(&out, "web").starts_with("10.88.161."), "{out}");
    assert_eq!(
        http_get(peer.path(), HOST_IP, 18380).as_deref(),
        Some("hello from busybox\n"),
        "peer -> {HOST_IP}:18380"
    );
    let sid = n.pr.sandbox_id("web");
    let added = fs::read_to_string(&log).expect("wrapper log");
    let want = format!(
        "ADD IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID={sid}"
    );
    assert!(
        added.lines().any(|l| l == want),
        "{want:?} not in:\n{added}"
    );
    n.podrun(&["rm", "web", "--grace", "0"]).expect_ok();
    let all = fs::read_to_string(&log).expect("wrapper log");
    assert!(
        all.lines()
            .any(|l| l.starts_with("DEL ") && l.contains(";K8S_POD_NAMESPACE=shop;")),
        "{all}"
    );
    n.assert_clean();

    // podrun's own format has no namespace: the containerd one is used.
    let own = n.write_spec(
        "own",
        &json!({"name": "own", "containers": [
            {"name": "c", "image": BUSYBOX, "command": ["sleep", "1000"]}]}),
    );
    run(&n, &own, &[]).expect_ok();
    let all = fs::read_to_string(&log).expect("wrapper log");
    assert!(
        all.lines().any(|l| l.starts_with("ADD ")
            && l.contains(&format!(";K8S_POD_NAMESPACE={NAMESPACE};K8S_POD_NAME=own;"))),
        "{all}"
    );
    n.podrun(&["rm", "own", "--grace", "0"]).expect_ok();
    n.assert_clean();
}

/// dnsPolicy and dnsConfig in /etc/resolv.conf: ClusterFirst takes the
/// CNI result's DNS with dnsConfig merged on top, Default the node's file,
/// None only dnsConfig; a subdomain puts the FQDN (with --cluster-domain)
/// in /etc/hosts. dnsPolicy None without dnsConfig is refused by path.
#[test]
fn dns_policies_and_the_subdomain_fqdn_inside_the_containers() {
    require_root();
    let dns =
        json!({"nameservers": ["10.88.0.53"], "search": ["pods.example"], "options": ["ndots:3"]});
    let n = PodNode::with("mn-dns", "10.88.162.1/24", "native", &json!({"dns": dns}));
    let node_resolv = n.node.dir().join("node-resolv.conf");
    fs::write(
        &node_resolv,
        "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch lab.example\noptions ndots:1\n",
    )
    .expect("write node resolv.conf");
    let sleeper =
        format!("  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '1000']\n");
    let meta = |name: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n")
    };
    let yaml = format!(
        "{}  hostname: cf-host\n  subdomain: web\n  dnsConfig:\n    searches: [extra.example]\n    \
         options: [{{name: ndots, value: '2'}}, {{name: rotate}}]\n{sleeper}---\n\
         {}  dnsPolicy: Default\n{sleeper}---\n\
         {}  dnsPolicy: None\n  dnsConfig:\n    nameservers: [192.0.2.99]\n    searches: [only.example]\n    \
         options: [{{name: timeout, value: '3'}}]\n{sleeper}",
        meta("cf"),
        meta("df"),
        meta("no")
    );
    let file = manifest(&n, "dns", &yaml);
    let resolv = node_resolv.to_str().expect("utf-8");
    let out = run(
        &n,
        &file,
        &["--resolv-conf", resolv, "--cluster-domain", "corp.example"],
    )
    .expect_ok();
    let cf_ip = printed_ip(&out, "cf");

    assert_eq!(
        cat(&n, "cf", "c", "/etc/resolv.conf"),
        "nameserver 10.88.0.53\nsearch pods.example extra.example\noptions ndots:2 rotate\n"
    );
    assert_eq!(
        cat(&n, "df", "c", "/etc/resolv.conf"),
        "nameserver 192.0.2.53\nsearch lab.example\noptions ndots:1\n",
        "Default: the node's file (its stub dropped), not the CNI DNS"
    );
    assert_eq!(
        cat(&n, "no", "c", "/etc/resolv.conf"),
        "nameserver 192.0.2.99\nsearch only.example\noptions timeout:3\n"
    );
    let hosts = cat(&n, "cf", "c", "/etc/hosts");
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file.\n"),
        "{hosts}"
    );
    assert!(
        hosts.ends_with(&format!(
            "{cf_ip}\tcf-host.web.shop.svc.corp.example\tcf-host\n"
        )),
        "{hosts}"
    );
    let hn = n.podrun(&["exec", "cf", "c", "--", "hostname"]).expect_ok();
    assert_eq!(hn.stdout, "cf-host\n");
    let df_hosts = cat(&n, "df", "c", "/etc/hosts");
    let df_ip = printed_ip(&out, "df");
    assert!(df_hosts.ends_with(&format!("{df_ip}\tdf\n")), "{df_hosts}");
    for pod in ["cf", "df", "no"] {
        n.podrun(&["rm", pod, "--grace", "0"]).expect_ok();
    }
    n.assert_clean();

    let bad = manifest(
        &n,
        "bad",
        &format!("{}  dnsPolicy: None\n{sleeper}", meta("bad")),
    );
    let out = run(&n, &bad, &[]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("spec.dnsConfig: is required when dnsPolicy is None"),
        "{out}"
    );
    n.assert_clean();
}

/// The IP files host-local-style IPAM keeps for the node's network.
fn reserved_ips(n: &PodNode) -> Vec<String> {
    fs::read_dir(n.node.data_dir("ipam").join("podnet"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

/// hostNetwork: the containers are in the node's netns (its LAN address
/// and interfaces, its port reached by the peer with no translation), have
/// the node's hostname and hosts file, and the pod IP is the node's; no
/// CNI call is made (no cache entry, no IP reserved, no netns of podrun),
/// `check` says so and `gc` and `rm` leave the node's netns alone.
#[test]
fn host_network_pod_shares_the_node_netns_without_any_cni_attachment() {
    require_root();
    let n = PodNode::new("mn-host", "10.88.163.1/24");
    let peer = n.add_lan(&[&format!("{HOST_IP}/24")], &format!("{PEER_IP}/24"));
    let log = log_cni_args(&n);
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hn\nspec:\n  hostNetwork: true\n  \
         containers:\n  - name: httpd\n    image: {BUSYBOX}\n    \
         command: [httpd, -f, -p, '18480', -h, /www]\n    \
         env:\n    - name: MY_IP\n      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}\n    \
         ports:\n    - containerPort: 18480\n      hostPort: 18480\n"
    );
    let file = manifest(&n, "hn", &yaml);
    let out = run(&n, &file, &[]).expect_ok();
    assert_eq!(printed_ip(&out, "hn"), HOST_IP, "the node's IP: {out}");

    // The node's interfaces and address, seen from inside.
    let inside = n
        .podrun(&[
            "exec", "hn", "httpd", "--", "ip", "-o", "addr", "show", "lan0",
        ])
        .expect_ok();
    assert!(
        inside.stdout.contains(&format!("inet {HOST_IP}/24")),
        "{inside}"
    );
    let links = |o: &str| -> Vec<String> {
        let mut v: Vec<String> = o
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|s| s.split('@').next().unwrap_or(s).to_string())
            .collect();
        v.sort();
        v
    };
    let in_links = n
        .podrun(&["exec", "hn", "httpd", "--", "ip", "-o", "link"])
        .expect_ok();
    let node_links = n.node.exec(&["ip", "-o", "link"]).expect_ok();
    assert_eq!(links(&in_links.stdout), links(&node_links.stdout));
    let env = n.podrun(&["exec", "hn", "httpd", "--", "env"]).expect_ok();
    assert!(env.stdout.contains(&format!("MY_IP={HOST_IP}\n")), "{env}");
    assert_eq!(
        http_get(peer.path(), HOST_IP, 18480).as_deref(),
        Some("hello from busybox\n"),
        "peer -> {HOST_IP}:18480 straight to the container"
    );

    // The node's hostname and hosts file.
    let node_host = exec::run_argv(&["hostname"]).expect_ok().stdout;
    let hn = n
        .podrun(&["exec", "hn", "httpd", "--", "hostname"])
        .expect_ok();
    assert_eq!(hn.stdout, node_host);
    assert_eq!(cat(&n, "hn", "httpd", "/etc/hostname"), node_host);
    let node_hosts = fs::read_to_string("/etc/hosts").expect("node hosts");
    assert_eq!(
        cat(&n, "hn", "httpd", "/etc/hosts"),
        format!("# Kubernetes-managed hosts file (host network).\n{node_hosts}")
    );

    // No CNI at all.
    assert!(
        !log.exists(),
        "the plugin was called: {:?}",
        fs::read_to_string(&log)
    );
    assert_eq!(n.pr.cached(), Vec::<String>::new(), "CNI cache entry");
    assert_eq!(reserved_ips(&n), Vec::<String>::new(), "IP reserved");
    assert_eq!(n.pr.netns(), Vec::<String>::new(), "podrun netns");
    let check = n.podrun(&["check", "hn"]).expect_ok();
    assert!(check.stdout.contains("has no CNI attachment"), "{check}");
    n.podrun(&["gc"]).expect_ok();
    assert!(!log.exists(), "gc called the plugin for it");
    let still = n.podrun(&["exec", "hn", "httpd", "--", "true"]);
    assert!(still.success(), "gc touched the pod: {still}");

    n.podrun(&["rm", "hn", "--grace", "0"]).expect_ok();
    n.assert_clean();
    assert!(n.node.path().exists(), "rm removed the node's netns");
    let lan = n
        .node
        .exec(&["ip", "-o", "addr", "show", "lan0"])
        .expect_ok();
    assert!(lan.stdout.contains(HOST_IP), "{lan}");
    assert!(!log.exists(), "rm called the plugin");

    // A hostPort other than the containerPort cannot be honoured there.
    let bad = manifest(
        &n,
        "bad",
        &yaml.replace("hostPort: 18480", "hostPort: 18481"),
    );
    let out = run(&n, &bad, &[]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("spec.containers[0].ports[0].hostPort: 18481 must equal containerPort"),
        "{out}"
    );
    n.assert_clean();
}

/// The bandwidth annotations: refused (by their path) while no plugin
/// declares the capability, then sent as containerd sends them and
/// applied by netboot-cni (tbf on the host veth, tbf on an ifb); `rm`
/// takes the shaping away.
#[test]
fn bandwidth_annotations_shape_the_pod_or_are_refused_without_the_capability() {
    require_root();
    let n = PodNode::new("mn-bw", "10.88.164.1/24");
    let file = manifest(
        &n,
        "bw",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bw\n  annotations:\n    \
             kubernetes.io/ingress-bandwidth: 8M\n    kubernetes.io/egress-bandwidth: 4M\n\
             spec:\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '1000']\n"
        ),
    );
    let out = run(&n, &file, &[]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr.contains(
            "metadata.annotations.kubernetes.io/ingress-bandwidth: network \"podnet\" has no \
             plugin declaring the `bandwidth` capability"
        ),
        "{out}"
    );
    n.assert_clean();
    // podrun's own format names its own field.
    let own = n.write_spec(
        "own",
        &json!({"name": "own", "bandwidth": {"egressRate": 1_000_000}, "containers": [
            {"name": "c", "image": BUSYBOX, "command": ["sleep", "1000"]}]}),
    );
    let out = run(&n, &own, &[]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("bandwidth: network \"podnet\" has no plugin"),
        "{out}"
    );
    n.assert_clean();

    n.declare_capabilities(&json!({"bandwidth": true}));
    run(&n, &file, &[]).expect_ok();
    let sid = n.pr.sandbox_id("bw");
    let cache = n.cache_dir().join(format!("results/podnet-{sid}-eth0"));
    let cached: Value =
        serde_json::from_slice(&fs::read(&cache).expect("cache entry")).expect("json");
    assert_eq!(
        cached["capabilityArgs"]["bandwidth"],
        go_entry((8_000_000, CONTAINERD_BURST), (4_000_000, CONTAINERD_BURST))
    );
    let veth = host_veth(&cached["result"]);
    assert_eq!(
        tbf_rate(&n.node.ns, &veth),
        Some(1_000_000),
        "ingress tbf on {veth}"
    );
    assert!(
        has_ingress_qdisc(&n.node.ns, &veth),
        "egress redirect on {veth}"
    );
    let ifb = ifbs(&n.node.ns);
    assert_eq!(ifb.len(), 1, "{ifb:?}");
    assert_eq!(
        tbf_rate(&n.node.ns, &ifb[0]),
        Some(500_000),
        "egress tbf on {}",
        ifb[0]
    );
    n.podrun(&["rm", "bw", "--grace", "0"]).expect_ok();
    n.assert_clean();
    assert_eq!(shaping_qdiscs(&n.node.ns), Vec::<String>::new());
    assert_eq!(ifbs(&n.node.ns), Vec::<String>::new());
}
