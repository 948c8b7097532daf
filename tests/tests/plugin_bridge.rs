//! netboot-cni in bridge mode, end to end on a real kernel with Debian's
//! reference plugins: pods on one node, port mappings, every way DEL can be
//! called, concurrency, rollback of a failed ADD, crash leftovers and GC.

use std::fs;
use std::thread;

use netboot_tests::cni_node::CniNode;
use netboot_tests::mode_suite::{
    assert_second_add_refused, del_after_netns_is_gone, gc_candidates, two_pods_talk, TwoPods,
};
use netboot_tests::plugin_support::{
    cid, err_code, err_text, fetch, recording_script, serve, with_ports, with_prev, CniPathDir,
    PluginNode, HOST_PORT, NET, POD_PORT,
};
use netboot_tests::{assert_ping, first_ip, require_root, Netns, PluginCall};
use serde_json::{json, Value};

#[test]
fn two_pods_talk_through_the_bridge() {
    require_root();
    let node = PluginNode::new("e2e");
    let conf = node.conf("1.0.0");
    let TwoPods {
        a, b, res_a, res_b, ..
    } = two_pods_talk(&node, &conf);
    assert_eq!(node.veths().len(), 2);

    // flannel's scratch file: exactly the config flannel would render.
    let scratch: Value =
        serde_json::from_slice(&fs::read(node.data_dir.join(cid(&a))).unwrap()).unwrap();
    assert_eq!(
        scratch,
        json!({
            "cniVersion": "1.0.0",
            "hairpinMode": true,
            "ipMasq": false,
            "ipam": {
                "dataDir": node.ipam_dir,
                "ranges": [[{"subnet": "10.2.1.0/24"}]],
                "routes": [{"dst": "10.2.0.0/16"}],
                "type": "host-local",
            },
            "isDefaultGateway": true,
            "isGateway": true,
            "mtu": 1450,
            "name": NET,
            "type": "bridge",
        })
    );
    assert_eq!(node.records().len(), 2);
    assert_eq!(node.record(&a)["result"]["ips"], res_a["ips"]);
    assert_second_add_refused(&node, &a, &conf, 2);

    node.del(&a, &with_prev(&conf, &res_a));
    node.del(&b, &with_prev(&conf, &res_b));
    node.assert_clean(&[&cid(&a), &cid(&b)]);
}

fn dnat_rules_for(node: &PluginNode, id: &str) -> usize {
    node.iptables_save()
        .lines()
        .filter(|l| l.contains(id))
        .count()
}

#[test]
fn port_mapping_reaches_the_pod_and_check_sees_its_rules() {
    require_root();
    let node = PluginNode::new("pm");
    let pod = node.pod("pm");
    let conf = with_ports(&node.conf("1.0.0"), HOST_PORT, POD_PORT);
    let res = node.add(&pod, &conf);
    serve(&pod, POD_PORT, "hello-from-pod");
    assert_eq!(
        fetch(&node.ns, &node.gateway(), HOST_PORT).as_deref(),
        Some("hello-from-pod")
    );
    // portmap's snat sets route_localnet: the node's loopback works too.
    assert_eq!(
        fetch(&node.ns, "127.0.0.1", HOST_PORT).as_deref(),
        Some("hello-from-pod")
    );
    let id = cid(&pod);
    assert!(dnat_rules_for(&node, &id) > 0, "no DNAT rule names {id}");
    let rec = node.record(&pod);
    assert_eq!(rec["portmap"]["type"], "portmap", "{rec}");

    node.check(&pod, &conf, &res).expect_ok();
    // Only netboot can notice the DNAT rules are gone (portmap 1.1.1 CHECK
    // is broken, plugins#819): delete the jump tagged with our id.
    let listing = node
        .exec(&[
            "iptables",
            "-t",
            "nat",
            "-L",
            "CNI-HOSTPORT-DNAT",
            "-n",
            "--line-numbers",
        ])
        .expect_ok()
        .stdout;
    let num = listing
        .lines()
        .find(|l| l.contains(&id))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no DNAT jump for {id}:\n{listing}"))
        .to_owned();
    node.exec(&["iptables", "-t", "nat", "-D", "CNI-HOSTPORT-DNAT", &num])
        .expect_ok();
    let broken = node.check(&pod, &conf, &res);
    assert_eq!(err_code(&broken), 100, "{}", broken.output);
    assert!(
        err_text(&broken).contains("port mapping"),
        "{}",
        broken.output
    );

    node.del(&pod, &with_prev(&conf, &res));
    node.assert_clean(&[&id]);
}

/// ADD `pod` with a port mapping and check it is reachable.
fn add_mapped(node: &PluginNode, pod: &Netns, port: u16) -> Value {
    let conf = with_ports(&node.conf("1.0.0"), port, POD_PORT);
    let res = node.add(pod, &conf);
    assert!(dnat_rules_for(node, &cid(pod)) > 0);
    res
}

#[test]
fn del_twice_and_without_port_mappings() {
    require_root();
    let node = PluginNode::new("del2");
    let pod = node.pod("d");
    add_mapped(&node, &pod, HOST_PORT);
    // The runtime forgot the mappings on DEL: the record knows them.
    let plain = node.conf("1.0.0");
    node.del(&pod, &plain);
    node.assert_clean(&[&cid(&pod)]);
    assert!(pod.link_names().iter().all(|l| l != "eth0"));
    node.del(&pod, &plain);
    node.del(&pod, &with_ports(&plain, HOST_PORT, POD_PORT));
    node.assert_clean(&[&cid(&pod)]);
}

/// A node moved off the reference plugins' portmap (e.g. to native mode):
/// DEL of a pod it mapped still removes the pod's iptables DNAT chain.
#[test]
fn del_after_portmap_was_removed_cleans_its_iptables_rules() {
    require_root();
    let node = PluginNode::new("nopm");
    let pod = node.pod("d");
    add_mapped(&node, &pod, HOST_PORT);
    let path = CniPathDir::new();
    path.reference(&["bridge", "host-local"]);
    let call = PluginCall {
        path: path.cni_path(),
        ..node.call("DEL", &pod, &node.conf("1.0.0"))
    };
    node.run(&call).expect_ok();
    assert_eq!(dnat_rules_for(&node, &cid(&pod)), 0, "DNAT rules left");
    node.assert_clean(&[&cid(&pod)]);
}

#[test]
fn del_without_netns_releases_host_state() {
    require_root();
    let node = PluginNode::new("delns");
    let conf = node.conf("1.0.0");
    // containerd's second DEL: CNI_NETNS empty (first DEL never happened).
    let pod = node.pod("empty");
    add_mapped(&node, &pod, HOST_PORT);
    let call = PluginCall {
        netns: None,
        ..node.call("DEL", &pod, &conf)
    };
    node.run(&call).expect_ok();
    assert_eq!(node.allocations(), Vec::<String>::new());
    assert_eq!(dnat_rules_for(&node, &cid(&pod)), 0);
    assert_eq!(node.records(), Vec::<String>::new());
    assert_eq!(node.scratch_files(), Vec::<String>::new());
    node.run(&call).expect_ok();
    drop(pod); // the veth pair goes with the netns

    // The pod netns was deleted before DEL.
    let pod = node.pod("gone");
    add_mapped(&node, &pod, HOST_PORT + 1);
    del_after_netns_is_gone(&node, pod, &conf);
}

#[test]
fn del_after_subnet_env_changed_uses_the_record() {
    require_root();
    let node = PluginNode::new("delenv");
    let pod = node.pod("d");
    let conf = node.conf("1.0.0");
    node.add(&pod, &conf);
    // The node got another lease (or the agent is down) by DEL time.
    fs::write(
        &node.subnet_file,
        "FLANNEL_NETWORK=10.9.0.0/16\nFLANNEL_SUBNET=10.9.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
    )
    .unwrap();
    node.del(&pod, &conf);
    node.assert_clean(&[&cid(&pod)]);
    fs::remove_file(&node.subnet_file).unwrap();
    node.del(&pod, &conf);
}

#[test]
fn concurrent_adds_get_distinct_ips() {
    require_root();
    let node = PluginNode::new("conc");
    let conf = node.conf("1.1.0");
    let pods: Vec<Netns> = (0..20).map(|i| node.pod(&format!("c{i}"))).collect();
    let ips: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .map(|p| s.spawn(|| first_ip(&node.add(p, &conf))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20, "duplicate IPs: {ips:?}");
    assert_eq!(node.allocations().len(), 20);
    assert_eq!(node.veths().len(), 20);
    assert_ping(&pods[0], &ips[19]);
    thread::scope(|s| {
        for p in &pods {
            s.spawn(|| node.del(p, &conf));
        }
    });
    let ids: Vec<String> = pods.iter().map(cid).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    node.assert_clean(&ids);
}

#[test]
fn failed_add_rolls_back() {
    require_root();
    let node = PluginNode::new("rb");
    let conf = node.conf("1.0.0");

    // bridge itself fails: the pod already has an eth0.
    let pod = node.pod("taken");
    pod.exec(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0",
    ])
    .expect_ok();
    let out = node.run(&node.call("ADD", &pod, &conf));
    assert!(err_text(&out).contains("eth0"), "{}", out.output);
    node.assert_clean(&[&cid(&pod)]);

    // portmap fails after bridge succeeded: the veth and IP must go.
    let path = CniPathDir::new();
    path.reference(&["bridge", "host-local"]);
    let log = tempfile::tempdir().unwrap();
    path.script("portmap", &recording_script(log.path()));
    fs::write(
        log.path().join("fail-ADD"),
        r#"{"cniVersion":"1.0.0","code":42,"msg":"portmap stand-in refuses"}"#,
    )
    .unwrap();
    let pod = node.pod("pmfail");
    let call = PluginCall {
        path: path.cni_path(),
        ..node.call("ADD", &pod, &with_ports(&conf, HOST_PORT, POD_PORT))
    };
    let out = node.run(&call);
    assert_eq!(err_code(&out), 42, "{}", out.output);
    assert!(err_text(&out).contains("portmap stand-in refuses"));
    node.assert_clean(&[&cid(&pod)]);
    assert!(pod.link_names().iter().all(|l| l != "eth0"), "eth0 left");
    let cmds: Vec<String> = netboot_tests::plugin_support::recorded_calls(log.path())
        .into_iter()
        .map(|c| c.command)
        .collect();
    assert_eq!(cmds, ["ADD", "DEL"], "portmap must be DELeted on rollback");
}

#[test]
fn unfinished_add_is_undone_by_the_next_add() {
    require_root();
    let node = PluginNode::new("crash");
    let conf = node.conf("1.0.0");
    let pod = node.pod("c");
    let first = node.add(&pod, &conf);
    // As if killed after bridge ADD, before the final record write.
    let path = node.record_path(&cid(&pod));
    let mut rec: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    rec.as_object_mut().unwrap().remove("result");
    fs::write(&path, rec.to_string()).unwrap();

    let second = node.add(&pod, &conf);
    assert_eq!(node.allocations().len(), 1, "stale IP not released");
    assert_eq!(node.veths().len(), 1);
    assert_eq!(pod.ipv4_addrs("eth0").len(), 1);
    assert_ping(&pod, &node.gateway());
    let _ = first;
    node.del(&pod, &with_prev(&conf, &second));
    node.assert_clean(&[&cid(&pod)]);
}

#[test]
fn empty_record_or_scratch_file_does_not_break_del() {
    require_root();
    let node = PluginNode::new("torn");
    let conf = node.conf("1.0.0");
    // 0-byte record: the scratch file still says what to DEL.
    let a = node.pod("a");
    node.add(&a, &conf);
    fs::write(node.record_path(&cid(&a)), b"").unwrap();
    node.del(&a, &conf);
    node.assert_clean(&[&cid(&a)]);
    // 0-byte record and scratch file: rebuilt from subnet.env.
    let b = node.pod("b");
    node.add(&b, &conf);
    fs::write(node.record_path(&cid(&b)), b"").unwrap();
    fs::write(node.data_dir.join(cid(&b)), b"").unwrap();
    node.del(&b, &conf);
    node.assert_clean(&[&cid(&b)]);
    // 0-byte scratch file only.
    let c = node.pod("c");
    let res = node.add(&c, &conf);
    fs::write(node.data_dir.join(cid(&c)), b"").unwrap();
    node.del(&c, &with_prev(&conf, &res));
    node.assert_clean(&[&cid(&c)]);
    // And a 0-byte record does not block the next ADD.
    let d = node.pod("d");
    fs::create_dir_all(node.data_dir.join(".netboot")).unwrap();
    fs::write(node.record_path(&cid(&d)), b"").unwrap();
    node.add(&d, &conf);
    node.del(&d, &conf);
    node.assert_clean(&[&cid(&d)]);
}

#[test]
fn gc_releases_everything_but_valid_attachments() {
    require_root();
    let node = PluginNode::new("gc");
    let conf = node.conf("1.1.0");
    let (pods, keep_res) = gc_candidates(&node, &conf);
    // An IP host-local leaked for a container nobody knows.
    let store = node.ipam_dir.join(NET);
    fs::write(store.join("10.2.1.200"), "leaked-ctr\r\neth0").unwrap();
    assert_eq!(node.allocations().len(), 4);

    let keep = cid(&pods[0]);
    node.gc(&conf, &[&keep]);
    let keep_ip = first_ip(&keep_res);
    assert_eq!(node.allocations(), vec![keep_ip.clone()]);
    assert_eq!(node.records(), vec![format!("{keep}@eth0.json")]);
    assert_eq!(node.scratch_files(), vec![keep.clone()]);
    let rules = node.iptables_save();
    for p in &pods[1..] {
        assert!(
            !rules.contains(&cid(p)),
            "rules of {} left:\n{rules}",
            cid(p)
        );
    }
    assert!(!rules.contains("CNI-DN-"), "{rules}");
    assert_ping(&pods[0], &node.gateway());
    node.check(&pods[0], &conf, &keep_res).expect_ok();

    // Without the list nothing is provably stale: nothing happens.
    node.run(&node.bare_call("GC", &conf)).expect_ok();
    assert_eq!(node.allocations(), vec![keep_ip]);
    node.del(&pods[0], &conf);
    // The stale pods' netns still exist; their veths go with them (the
    // kernel tears a netns down asynchronously).
    drop(pods);
    node.assert_clean(&[&keep]);
}

#[test]
fn port_mappings_portmap_would_refuse_are_refused_up_front() {
    require_root();
    let node = PluginNode::new("pm0");
    let pod = node.pod("p");
    // portmap refuses port 0 while parsing its config, on ADD and on DEL
    // alike: once recorded, no rollback or DEL could ever remove it.
    let conf = with_ports(&node.conf("1.0.0"), 0, POD_PORT);
    let before = node.snapshot();
    let out = node.run(&node.call("ADD", &pod, &conf));
    assert_eq!(err_code(&out), 7, "{}", out.output);
    assert!(err_text(&out).contains("hostPort"), "{}", out.output);
    assert_eq!(node.snapshot(), before, "a refused ADD changed the node");
    // The runtime then DELs with the same config; it must succeed.
    node.del(&pod, &conf);
    node.assert_clean(&[&cid(&pod)]);
}

#[test]
fn del_of_another_ifname_leaves_the_attachment_alone() {
    require_root();
    let node = PluginNode::new("ifn");
    let pod = node.pod("p");
    let conf = node.conf("1.0.0");
    let res = node.add(&pod, &conf);
    let before = (node.allocations(), node.records(), node.scratch_files());
    // A runtime (or Multus) DELs an interface this container never had.
    let other = PluginCall {
        ifname: "net1".into(),
        ..node.call("DEL", &pod, &conf)
    };
    node.run(&other).expect_ok();
    assert_eq!(
        (node.allocations(), node.records(), node.scratch_files()),
        before,
        "DEL of net1 touched eth0's attachment"
    );
    assert_eq!(pod.ipv4_addrs("eth0"), netboot_tests::result_ips(&res));

    // A real second interface: both share the container's scratch file,
    // which must outlive the first DEL.
    let net1 = PluginCall {
        command: "ADD".into(),
        ..other.clone()
    };
    let res1 = node.run(&net1).expect_ok();
    assert_eq!(pod.ipv4_addrs("net1"), netboot_tests::result_ips(&res1));
    assert_eq!(node.allocations().len(), 2);
    node.run(&other).expect_ok();
    assert_eq!(
        (node.allocations(), node.records(), node.scratch_files()),
        before,
        "DEL of net1 must leave exactly eth0's attachment"
    );
    assert_ping(&pod, &node.gateway());
    node.del(&pod, &conf);
    node.assert_clean(&[&cid(&pod)]);
}
