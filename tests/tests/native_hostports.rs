//! Native mode's hostPorts as nftables map elements (issue 17), end to end
//! on a real kernel: reachability (TCP and UDP, any address and hostIP,
//! hairpin, localhost), a host port held by a live pod vs. one left by a
//! gone pod, mode switches both ways, attachments netboot made in
//! upstream portmap's layout before the maps, and GC of both layouts.
//! Every node, pod and peer is a namespace the test creates.

use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use netboot_tests::cni_node::CniNode;
use netboot_tests::native_support::{NativeNode, Wired};
use netboot_tests::plugin_support::{
    cid, err_code, fetch, fetch_once, mapping, merged, serve, with_ports, CniPathDir, HOST_PORT,
    NET, POD_PORT,
};
use netboot_tests::{first_ip, require_root, Netns, PluginCall};
use netkit::firewall::{self, PortMapping, PortmapSpec, Proto};
use serde_json::json;

/// Sends datagrams from `from` to `ip:port` until `file` (written by a
/// receiver in the pod) holds `text`, for up to ~6 s.
fn udp_reaches(from: &Netns, ip: &str, port: u16, file: &Path, text: &str) -> bool {
    for _ in 0..30 {
        let cmd = format!("echo {text} | socat -u STDIN UDP-SENDTO:{ip}:{port}");
        from.exec(&["sh", "-c", &cmd]).expect_ok();
        thread::sleep(Duration::from_millis(200));
        if fs::read_to_string(file).unwrap_or_default().contains(text) {
            return true;
        }
    }
    false
}

/// The hostPort elements (JSON text) `pod`'s attachment owns.
fn owned(node: &NativeNode, pod: &Netns) -> Vec<String> {
    let owner = format!("\"{NET}/{}/eth0\"", cid(pod));
    node.nft_elements()
        .into_iter()
        .filter(|(_, e)| e.contains(&owner))
        .map(|(s, e)| format!("{s}: {e}"))
        .collect()
}

#[test]
fn host_ports_reach_the_pod_by_tcp_and_udp_any_address_host_ip_hairpin_and_localhost() {
    require_root();
    let node = NativeNode::new("mreach");
    let peer = Wired::peer(&node, "peer");
    let (pod, conf, res) = node.serving_pod(
        json!([
            mapping(HOST_PORT, POD_PORT, "tcp"),
            merged(
                &mapping(HOST_PORT + 1, POD_PORT, "tcp"),
                json!({"hostIP": "198.51.100.1"}),
            ),
            mapping(HOST_PORT + 2, 5000, "udp"),
        ]),
        "hello-pod",
    );
    let hello = Some("hello-pod");
    let gw = node.gateway();
    // Any address: the node's own addresses, localhost, the peer.
    assert_eq!(fetch(&node.ns, &gw, HOST_PORT).as_deref(), hello);
    assert_eq!(fetch(&node.ns, "127.0.0.1", HOST_PORT).as_deref(), hello);
    assert_eq!(fetch(&peer, "198.51.100.1", HOST_PORT).as_deref(), hello);
    // Hairpin: the pod reaches itself through the node's hostPort.
    assert_eq!(fetch(&pod, &gw, HOST_PORT).as_deref(), hello);
    assert_eq!(fetch(&pod, "198.51.100.1", HOST_PORT).as_deref(), hello);
    // hostIP: that address only.
    assert_eq!(
        fetch(&peer, "198.51.100.1", HOST_PORT + 1).as_deref(),
        hello
    );
    assert_eq!(fetch_once(&node.ns, &gw, HOST_PORT + 1), None);
    // UDP.
    let file = node.dir().join("udp-received");
    let out = format!("OPEN:{},creat,append", file.display());
    pod.spawn(&["socat", "-u", "UDP-RECV:5000", &out]);
    assert!(udp_reaches(
        &peer,
        "198.51.100.1",
        HOST_PORT + 2,
        &file,
        "over-udp"
    ));
    // Elements only: no rule of the node names the pod.
    assert_eq!(owned(&node, &pod).len(), 5, "{:#?}", owned(&node, &pod));
    assert_eq!(node.nft_rules_mentioning(&cid(&pod)), Vec::<String>::new());
    node.check(&pod, &conf, &res).expect_ok();
    node.del(&pod, &node.conf("1.0.0"));
    node.assert_clean(&[&cid(&pod)]);
    assert_eq!(fetch_once(&peer, "198.51.100.1", HOST_PORT), None);
}

#[test]
fn a_live_pod_keeps_its_host_port_and_a_gone_pods_is_taken_over() {
    require_root();
    let node = NativeNode::new("mheld");
    let conf = with_ports(&node.conf("1.0.0"), HOST_PORT, POD_PORT);
    let (a, b, c) = (node.pod("a"), node.pod("b"), node.pod("c"));
    node.add(&a, &conf);
    serve(&a, POD_PORT, "from-a");
    let a_elems = owned(&node, &a);
    // b asks for a's port while a lives: a keeps it (as upstream portmap's
    // older rule would), b is attached without it, and CHECK says so.
    let res_b = node.add(&b, &conf);
    assert_eq!(owned(&node, &a), a_elems);
    assert_eq!(owned(&node, &b).len(), 2, "masquerade pairs only");
    assert_eq!(
        fetch(&node.ns, &node.gateway(), HOST_PORT).as_deref(),
        Some("from-a")
    );
    let out = node.check(&b, &conf, &res_b);
    assert_eq!(err_code(&out), 100, "{}", out.output);
    node.del(&b, &conf);
    assert_eq!(owned(&node, &a), a_elems, "b's DEL leaves a's elements");
    // a's pod dies without a DEL (its netns is gone): c takes the port.
    let a_id = cid(&a);
    drop(a);
    let res_c = node.add(&c, &conf);
    serve(&c, POD_PORT, "from-c");
    assert_eq!(
        fetch(&node.ns, &node.gateway(), HOST_PORT).as_deref(),
        Some("from-c")
    );
    // a's late DEL leaves c's element alone and removes a's own pairs.
    let a_call = PluginCall {
        container_id: a_id.clone(),
        netns: None,
        ..node.call("DEL", &c, &conf)
    };
    node.run(&a_call).expect_ok();
    assert_eq!(owned(&node, &c).len(), 3);
    assert!(
        node.nft_mentioning(&a_id).is_empty(),
        "{:#?}",
        node.nft_mentioning(&a_id)
    );
    node.check(&c, &conf, &res_c).expect_ok();
    node.del(&c, &conf);
    node.assert_clean(&[&a_id, &cid(&b), &cid(&c)]);
}

#[test]
fn native_attachments_are_deleted_after_the_node_moves_to_bridge_mode_and_back() {
    require_root();
    let node = NativeNode::new("mswitch");
    let native = with_ports(&node.conf("1.0.0"), HOST_PORT, POD_PORT);
    let bridge = with_ports(&node.pn.conf("1.0.0"), HOST_PORT + 1, POD_PORT);
    // Native ADD, then the node runs bridge mode (reference plugins on
    // CNI_PATH): DEL and GC read the records and remove the elements.
    let (n1, n2, keep) = (node.pod("n1"), node.pod("n2"), node.pod("keep"));
    node.add(&n1, &native);
    node.add(
        &n2,
        &with_ports(&node.conf("1.1.0"), HOST_PORT + 2, POD_PORT),
    );
    node.add(&keep, &node.conf("1.1.0"));
    assert_eq!(owned(&node, &n1).len(), 3);
    node.pn.del(&n1, &node.pn.conf("1.0.0"));
    assert_eq!(owned(&node, &n1), Vec::<String>::new());
    node.pn.gc(&node.pn.conf("1.1.0"), &[&cid(&keep)]);
    assert_eq!(owned(&node, &n2), Vec::<String>::new());
    assert!(node.nft_mentioning(&cid(&n2)).is_empty());
    // A bridge-mode attachment (the reference portmap's iptables chains,
    // and rules an nftables portmap would have added in cni_hostport),
    // DELeted once the node runs native mode with no binary at all.
    let b = node.pod("b");
    node.pn.add(&b, &bridge);
    let b_id = cid(&b);
    assert!(node.pn.iptables_save().contains("CNI-DN-"), "portmap chain");
    let ips = [first_ip(&node.record(&b)["result"]).parse().unwrap()];
    let maps = [PortMapping {
        host_port: HOST_PORT + 1,
        container_port: POD_PORT,
        protocol: Proto::Tcp,
        host_ip: None,
    }];
    let spec = portmap_spec(&b_id, &ips, &maps);
    in_node(&node, || firewall::add_port_mappings(&spec)).unwrap();
    assert!(!node.nft_rules_mentioning(&b_id).is_empty());
    // Native mode's config; bridge and host-local still installed (the
    // record says they made it), portmap not: its rules of both backends
    // are removed directly.
    let partial = CniPathDir::new();
    partial.reference(&["bridge", "host-local"]);
    node.run(&PluginCall {
        path: partial.cni_path(),
        ..node.call("DEL", &b, &node.conf("1.0.0"))
    })
    .expect_ok();
    assert_eq!(node.nft_rules_mentioning(&b_id), Vec::<String>::new());
    node.del(&keep, &node.conf("1.1.0"));
    node.assert_clean(&[&cid(&n1), &cid(&n2), &cid(&keep), &b_id]);
    node.pn.assert_clean(&[&b_id]);
}

fn portmap_spec<'a>(
    id: &'a str,
    ips: &'a [std::net::IpAddr],
    maps: &'a [PortMapping],
) -> PortmapSpec<'a> {
    PortmapSpec {
        network: NET,
        container_id: id,
        ifname: "eth0",
        container_ips: ips,
        mappings: maps,
        snat: true,
        masq_all: false,
    }
}

/// Runs `f` on a thread inside the node's netns.
fn in_node<T: Send>(node: &NativeNode, f: impl FnOnce() -> T + Send) -> T {
    netkit::Netns::open(node.path())
        .unwrap()
        .run(f)
        .expect("enter node netns")
}

/// Turns `pod`'s native attachment into one netboot made before the maps:
/// its elements removed, upstream portmap's rules in their place (as the
/// earlier netboot programmed them), the record without `portLayout` and
/// with the rules' handles, as that version wrote it.
fn make_it_an_earlier_netboots(node: &NativeNode, pod: &Netns) {
    let rec_path = node.record_path(&cid(pod));
    let mut rec = node.record(pod);
    let ips = [first_ip(&rec["result"]).parse().unwrap()];
    let maps: Vec<PortMapping> = rec["native"]["portMappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| PortMapping {
            host_port: m["hostPort"].as_u64().unwrap() as u16,
            container_port: m["containerPort"].as_u64().unwrap() as u16,
            protocol: Proto::Tcp,
            host_ip: None,
        })
        .collect();
    let id = cid(pod);
    let spec = portmap_spec(&id, &ips, &maps);
    in_node(node, || {
        firewall::del_hostports(&spec).unwrap();
        // Twice: the first creates the tables through `nft` (no handles),
        // so make sure the second one's rules are the recorded ones.
        firewall::add_port_mappings_tracked(&spec).unwrap();
        firewall::del_port_mappings(NET, &id).unwrap();
        firewall::add_port_mappings_tracked(&spec).unwrap()
    })
    .iter()
    .for_each(|r| {
        let rules = rec["native"]["portRules"].as_array_mut();
        let entry = json!({"family": if r.v6 { "ip6" } else { "ip" }, "chain": r.chain, "handle": r.handle});
        match rules {
            Some(v) => v.push(entry),
            None => rec["native"]["portRules"] = json!([entry]),
        }
    });
    rec["native"].as_object_mut().unwrap().remove("portLayout");
    fs::write(rec_path, serde_json::to_vec(&rec).unwrap()).unwrap();
    assert!(owned(node, pod).is_empty());
    assert_eq!(
        node.nft_rules_mentioning(&id).len(),
        3,
        "DNAT + 2 masquerade"
    );
}

#[test]
fn attachments_in_portmaps_layout_are_still_deleted_and_gc_covers_both_layouts() {
    require_root();
    let node = NativeNode::new("mlayout");
    let conf = |port| with_ports(&node.conf("1.1.0"), port, POD_PORT);
    let pods: Vec<Netns> = ["old1", "old2", "oldgc", "newgc", "norec", "keep"]
        .iter()
        .map(|t| node.pod(t))
        .collect();
    let mut results = Vec::new();
    for (i, p) in pods.iter().enumerate() {
        results.push(node.add(p, &conf(HOST_PORT + i as u16)));
    }
    for p in &pods[..3] {
        make_it_an_earlier_netboots(&node, p);
    }
    // DEL of an earlier netboot's attachment, in native mode, then in
    // bridge mode: its portmap-layout rules go.
    node.del(&pods[0], &conf(HOST_PORT));
    assert_eq!(node.nft_mentioning(&cid(&pods[0])), Vec::<String>::new());
    node.pn.del(&pods[1], &node.pn.conf("1.1.0"));
    assert_eq!(node.nft_mentioning(&cid(&pods[1])), Vec::<String>::new());
    // Elements whose record and scratch file are gone (only their owner
    // comment says whose they are), and another network's element.
    fs::remove_file(node.record_path(&cid(&pods[4]))).unwrap();
    fs::remove_file(node.data_dir.join(cid(&pods[4]))).unwrap();
    let other_ip = ["10.99.9.9".parse().unwrap()];
    let other_map = [PortMapping {
        host_port: 9999,
        container_port: 99,
        protocol: Proto::Udp,
        host_ip: None,
    }];
    let other = PortmapSpec {
        network: "othernet",
        ..portmap_spec("ctr-other", &other_ip, &other_map)
    };
    in_node(&node, || firewall::add_hostports(&other)).unwrap();
    // GC keeping only `keep`: the old-layout attachment, the new one and
    // the record-less elements go; the other network's element stays.
    node.gc(&node.conf("1.1.0"), &[&cid(&pods[5])]);
    for p in &pods[2..5] {
        let left = node.nft_mentioning(&cid(p));
        assert!(left.is_empty(), "{}: {left:#?}", cid(p));
    }
    assert_eq!(owned(&node, &pods[5]).len(), 3);
    let others = node.nft_mentioning("othernet/ctr-other/eth0");
    assert_eq!(others.len(), 3, "DNAT, hairpin, localhost: {others:#?}");
    node.check(&pods[5], &conf(HOST_PORT + 5), &results[5])
        .expect_ok();
    in_node(&node, || firewall::del_hostports(&other)).unwrap();
    node.del(&pods[5], &conf(HOST_PORT + 5));
    let ids: Vec<String> = pods.iter().map(cid).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    node.assert_clean(&ids);
}
