//! `netboot doctor`: break each thing it checks in a namespace node and
//! check that it names it (JSON check, plain words, a fix, exit 1), then
//! repair it and check that the node is healthy again.

use netboot_tests::doctor_support::DoctorNode;
use netboot_tests::require_root;

#[test]
fn doctor_names_broken_node_state() {
    require_root();
    let mut d = DoctorNode::new("doc-node");
    d.doctor().assert_healthy();
    // Freeze the node: a running agent would repair what we break.
    d.stop_agent();
    d.doctor().assert_healthy();
    let sf = d.node.subnet_file();
    let env = std::fs::read_to_string(&sf).expect("subnet.env");

    // subnet.env missing.
    std::fs::remove_file(&sf).expect("rm subnet.env");
    d.doctor().assert_problem("subnet.env", &["missing"]);
    std::fs::write(&sf, &env).expect("restore");
    d.doctor().assert_healthy();

    // subnet.env stale: a subnet etcd holds no lease for.
    let own = env
        .lines()
        .find_map(|l| l.strip_prefix("FLANNEL_SUBNET="))
        .expect("FLANNEL_SUBNET")
        .to_string();
    let other = if own.starts_with("10.2.19.") {
        "10.2.18.1/24"
    } else {
        "10.2.19.1/24"
    };
    std::fs::write(&sf, env.replace(&own, other)).expect("stale env");
    d.doctor()
        .assert_problem("subnet.env", &["stale", "no lease", "10.2.1"]);
    std::fs::write(&sf, &env).expect("restore");

    // cni0 with an address from another subnet.
    d.sh(&["ip", "link", "add", "cni0", "type", "bridge"]);
    d.sh(&["ip", "addr", "add", "10.2.99.1/24", "dev", "cni0"]);
    d.doctor().assert_problem("cni0", &["10.2.99.1/24", &own]);
    d.sh(&["ip", "link", "del", "cni0"]);

    // flannel.1 carrying the wrong address.
    let vtep = format!("{}/32", d.subnet_base());
    d.sh(&["ip", "addr", "del", &vtep, "dev", "flannel.1"]);
    d.sh(&["ip", "addr", "add", "10.2.99.0/32", "dev", "flannel.1"]);
    d.doctor()
        .assert_problem("vtep", &["flannel.1", "10.2.99.0/32", &vtep]);
    d.sh(&["ip", "addr", "del", "10.2.99.0/32", "dev", "flannel.1"]);
    d.sh(&["ip", "addr", "add", &vtep, "dev", "flannel.1"]);
    d.doctor().assert_healthy();

    // The underlay's MTU lowered under flannel.1 (the kernel refuses the
    // other way round): vxlan packets no longer fit.
    d.sh(&["ip", "link", "set", "eth0", "mtu", "1400"]);
    d.doctor()
        .assert_problem("mtu", &["flannel.1", "1450", "eth0", "1400", "1350"]);
    d.sh(&["ip", "link", "set", "eth0", "mtu", "1500"]);

    // ip_forward off.
    d.sh(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"]);
    d.doctor().assert_problem("ip_forward", &["ip_forward = 0"]);
    d.sh(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    d.doctor().assert_healthy();
}

#[test]
fn doctor_names_cni_config_plugins_and_ip_store_problems() {
    require_root();
    let mut d = DoctorNode::new("doc-cni");
    d.stop_agent();
    d.doctor().assert_healthy();
    let good = d.conflist_text(true);

    // The conflist does not parse.
    d.write_conflist("{\"cniVersion\": \"1.0.0\", \"name\": \"cbr0\", \"plugins\": [");
    d.doctor().assert_problem("conflist", &["does not parse"]);
    // It parses, but reads another subnet.env than this node's agent writes.
    d.write_conflist(&d.conflist_text(false));
    d.doctor()
        .assert_problem("conflist", &["/run/flannel/subnet.env", "subnetFile"]);
    d.write_conflist(&good);
    d.doctor().assert_healthy();

    // A plugin missing from the CNI path.
    let plugin = d.bin_dir().join("netboot-cni");
    let saved = d.dir().join("netboot-cni.saved");
    std::fs::rename(&plugin, &saved).expect("hide plugin");
    d.doctor().assert_problem("plugins", &["netboot-cni"]);
    // The upstream chain needs flannel, bridge, host-local, portmap.
    std::fs::rename(&saved, &plugin).expect("restore plugin");
    let upstream = netboot_tests::exec::run_argv(&[
        netboot_tests::bin_path("netboot").to_str().expect("utf-8"),
        "conflist",
        "--upstream",
        &format!("--subnet-file={}", d.node.subnet_file().display()),
        &format!("--cni-data-dir={}", d.data_dir().display()),
    ])
    .expect_ok()
    .stdout;
    d.write_conflist(&upstream);
    d.doctor()
        .assert_problem("plugins", &["flannel", "portmap", "bridge"]);
    d.write_conflist(&good);
    d.doctor().assert_healthy();

    // IP store: a pod whose netns vanished without CNI DEL, and an entry
    // no attachment record knows.
    let p = d.add_pod("doc-pod-1");
    d.add_pod("doc-pod-2");
    d.doctor().assert_healthy();
    d.lose_pod(p);
    let ghost = d.ipam_store().join(d.host_ip(200));
    std::fs::write(&ghost, "ghost-container\neth0").expect("ghost entry");
    let r = d.doctor();
    r.assert_problem(
        "ipam",
        &[
            "doc-pod-1",
            "netns is gone",
            "ghost-container",
            "no record",
            "2 IP(s)",
        ],
    );
    assert!(
        !r.finding("ipam")["message"]
            .as_str()
            .unwrap_or_default()
            .contains("doc-pod-2"),
        "a live pod was reported stale: {}",
        r.out
    );
    d.del_pod("doc-pod-1");
    std::fs::remove_file(&ghost).expect("rm ghost");
    d.doctor().assert_healthy();

    // Exhaustion near: fill the /24 to 95%.
    let mut filled = Vec::new();
    for host in 10..=250u8 {
        let f = d.ipam_store().join(d.host_ip(host));
        std::fs::write(&f, format!("filler-{host}\neth0")).expect("filler");
        filled.push(f);
    }
    d.doctor()
        .assert_problem("ipam", &["of 253 pod IPs", "near"]);
    for f in filled {
        std::fs::remove_file(f).expect("rm filler");
    }
    d.doctor().assert_healthy();
}

#[test]
fn doctor_names_unreachable_etcd_and_an_expiring_lease() {
    require_root();
    let mut d = DoctorNode::new("doc-etcd");
    d.stop_agent();
    d.doctor().assert_healthy();

    // Nothing listens there (an unused underlay address).
    let r = d.doctor_at("http://192.168.100.250:2379");
    r.assert_problem("etcd", &["unreachable", "192.168.100.250"]);
    // Local checks still run.
    assert_eq!(r.finding("ip_forward")["status"], "ok", "{}", r.out);

    // This node's lease with 10 minutes left (nobody renews it: the agent
    // is stopped).
    let key = d.node.lease_key();
    let value = d.etcd.get(&key).expect("own lease");
    d.etcd.put_with_lease(&key, &value, 600);
    d.doctor()
        .assert_problem("lease", &["expires in", "nobody is renewing"]);
    d.etcd.put_with_lease(&key, &value, 86_400);
    d.doctor().assert_healthy();
    // And the lease gone altogether: subnet.env is stale.
    d.etcd.delete(&key);
    d.doctor()
        .assert_problem("subnet.env", &["stale", "no lease"]);
}

/// Stale hostPort DNAT in both layouts: native map elements of a pod whose
/// netns vanished without CNI DEL, and portmap-layout rules (netboot before
/// the maps, or upstream portmap) of a container nothing knows.
#[test]
fn doctor_names_stale_host_ports_of_both_layouts() {
    require_root();
    let mut d = DoctorNode::new("doc-hp");
    d.stop_agent();
    let p = d.add_pod_mapped("doc-hp-1", 8080);
    d.add_pod_mapped("doc-hp-2", 8081);
    d.doctor().assert_healthy();
    d.lose_pod(p);
    let r = d.doctor();
    r.assert_problem(
        "hostports",
        &["doc-hp-1@eth0", "tcp 8080 ->", "netns is gone"],
    );
    let msg = r.finding("hostports")["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!msg.contains("doc-hp-2"), "a live pod was reported: {msg}");
    d.del_pod("doc-hp-1");
    d.doctor().assert_healthy();
    // portmap's layout, as an earlier netboot or upstream portmap left it.
    let ips = ["10.2.250.9".parse().unwrap()];
    let maps = [netkit::firewall::PortMapping {
        host_port: 9090,
        container_port: 90,
        protocol: netkit::firewall::Proto::Tcp,
        host_ip: None,
    }];
    let spec = netkit::firewall::PortmapSpec {
        network: "cbr0",
        container_id: "old-ctr",
        ifname: "eth0",
        container_ips: &ips,
        mappings: &maps,
        snat: true,
        masq_all: false,
    };
    let node = netkit::Netns::open(d.node.ns.path()).expect("node netns");
    node.run(|| netkit::firewall::add_port_mappings(&spec))
        .expect("enter node")
        .expect("portmap rules");
    d.doctor()
        .assert_problem("hostports", &["old-ctr", "cni_hostport", "no record"]);
    node.run(|| netkit::firewall::del_port_mappings("cbr0", "old-ctr"))
        .expect("enter node")
        .expect("remove rules");
    d.doctor().assert_healthy();
    d.del_pod("doc-hp-2");
}
