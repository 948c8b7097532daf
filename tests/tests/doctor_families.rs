//! `netboot doctor` and `netboot status` on the other backends and
//! families the agent runs: host-gw, dual stack, IPv6-only, DirectRouting.
//! Each node is set up by the real agent (with leases of simulated peers
//! in etcd), then the agent is stopped and each thing doctor checks is
//! broken by hand: doctor must name it (JSON check, plain words, a fix,
//! exit 1), and be content again once it is put back.

use netboot_tests::doctor_support::{DoctorNode, Setup, NODE_IPV6};
use netboot_tests::require_root;

const HOSTGW_DUAL: &str = r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.20.0","EnableIPv6":true,"IPv6Network":"fd42:10::/56","IPv6SubnetMin":"fd42:10:0:1::","IPv6SubnetMax":"fd42:10:0:20::","Backend":{"Type":"host-gw"}}"#;
const VXLAN_DUAL: &str = r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.20.0","EnableIPv6":true,"IPv6Network":"fd42:10::/56","IPv6SubnetMin":"fd42:10:0:1::","IPv6SubnetMax":"fd42:10:0:20::","Backend":{"Type":"vxlan"}}"#;
const VXLAN_V6ONLY: &str = r#"{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd42:10::/56","IPv6SubnetMin":"fd42:10:0:1::","IPv6SubnetMax":"fd42:10:0:20::","Backend":{"Type":"vxlan","DirectRouting":true}}"#;

/// The simulated peer: node .12 with subnets 10.2.30.0/24 and
/// fd42:10:0:30::/64 (outside SubnetMin/Max, so the agent never picks them).
const PEER_KEY: &str = "10.2.30.0-24&fd42:10:0:30::-64";
const PEER4: &str = "10.2.30.0/24";
const PEER6: &str = "fd42:10:0:30::/64";

#[test]
fn doctor_host_gw_dual_stack() {
    require_root();
    let peer =
        r#"{"PublicIP":"192.168.100.12","PublicIPv6":"fd00:100::12","BackendType":"host-gw"}"#;
    let mut d = DoctorNode::with(
        "doc-hgw",
        &Setup {
            config: HOSTGW_DUAL,
            ipv6: true,
            agent_args: &["--ip-masq"],
            peers: &[(PEER_KEY, peer)],
        },
    );
    let r = d.doctor();
    r.assert_healthy();
    for c in [
        "peers",
        "peers-v6",
        "ip6_forward",
        "masquerade",
        "leftovers",
    ] {
        assert_eq!(r.finding(c)["status"], "ok", "{c}: {}", r.out);
    }
    assert!(
        r.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["check"] != "vtep"),
        "host-gw has no vtep: {}",
        r.out
    );
    d.stop_agent();
    let st = d.status().stdout;
    assert!(
        st.contains("backend host-gw") && st.contains("IPv6: FLANNEL_IPV6_SUBNET fd42:10:0:"),
        "{st}"
    );
    assert!(st.contains("via eth0 (host-gw)"), "{st}");

    // A peer's route gone, per family.
    d.sh_line(&format!("ip route del {PEER4}"));
    d.doctor()
        .assert_problem("peers", &[PEER4, "192.168.100.12", "no route"]);
    d.sh_line(&format!("ip route add {PEER4} via 192.168.100.12 dev eth0"));
    d.sh_line(&format!("ip -6 route del {PEER6}"));
    d.doctor()
        .assert_problem("peers-v6", &[PEER6, "fd00:100::12", "no route"]);
    // A route via the wrong gateway.
    d.sh_line(&format!(
        "ip -6 route add {PEER6} via fd00:100::99 dev eth0"
    ));
    d.doctor().assert_problem(
        "peers-v6",
        &[PEER6, "via fd00:100::99 dev eth0", "fd00:100::12"],
    );
    d.sh_line(&format!(
        "ip -6 route replace {PEER6} via fd00:100::12 dev eth0"
    ));
    d.doctor().assert_healthy();

    // A route no lease explains (a node that left).
    d.sh_line("ip route add 10.2.31.0/24 via 192.168.100.13 dev eth0");
    d.doctor()
        .assert_problem("peers", &["stale route 10.2.31.0/24", "no lease"]);
    d.sh_line("ip route del 10.2.31.0/24");

    // A peer that is not on the L2 segment: host-gw cannot reach it.
    let far = "10.2.32.0-24&fd42:10:0:32::-64";
    d.etcd.put_with_lease(
        &format!("/coreos.com/network/subnets/{far}"),
        r#"{"PublicIP":"192.168.200.5","PublicIPv6":"fd00:200::5","BackendType":"host-gw"}"#,
        3600,
    );
    let r = d.doctor();
    r.assert_problem("peers", &["10.2.32.0/24", "same L2 segment", "vxlan"]);
    r.assert_problem("peers-v6", &["fd42:10:0:32::/64", "same L2 segment"]);
    d.etcd.delete(&format!("/coreos.com/network/subnets/{far}"));
    d.doctor().assert_healthy();

    // A vxlan device left from the time the network used vxlan.
    d.sh_line("ip link add flannel.1 type vxlan id 1 dstport 8472 dev eth0");
    d.doctor()
        .assert_problem("leftovers", &["flannel.1", "host-gw"]);
    d.sh_line("ip link del flannel.1");

    // IPv6 forwarding off.
    d.sh_line("sysctl -q -w net.ipv6.conf.all.forwarding=0");
    d.doctor()
        .assert_problem("ip6_forward", &["net.ipv6.conf.all.forwarding = 0", "IPv6"]);
    d.sh_line("sysctl -q -w net.ipv6.conf.all.forwarding=1");

    // FLANNEL_IPMASQ=true with the masquerade rules gone (both families).
    d.sh_line("nft flush chain inet netboot postrouting");
    let own6 = d.wait_env("FLANNEL_IPV6_SUBNET").replace("::1/", "::/");
    d.doctor().assert_problem(
        "masquerade",
        &["FLANNEL_IPMASQ=true", "(IPv4)", &own6, "(IPv6)"],
    );
    // The agent puts them back.
    d.node.start_agent(&d.etcd.endpoints(), &["--ip-masq"]);
    let back = netboot_tests::cluster::wait_until(std::time::Duration::from_secs(30), || {
        d.doctor().finding("masquerade")["status"] == "ok"
    });
    assert!(back, "the agent did not restore the masquerade rules");
    d.stop_agent();

    // subnet.env without the IPv6 subnet; FLANNEL_MTU above the interface's.
    let v6line = format!(
        "FLANNEL_IPV6_SUBNET={}\n",
        d.wait_env("FLANNEL_IPV6_SUBNET")
    );
    let env = d.edit_env(&v6line, "");
    d.doctor()
        .assert_problem("subnet.env", &["no valid FLANNEL_IPV6_SUBNET"]);
    d.restore_env(&env);
    d.edit_env("FLANNEL_MTU=1500", "FLANNEL_MTU=9000");
    d.doctor()
        .assert_problem("mtu", &["FLANNEL_MTU=9000", "eth0", "1500"]);
    d.restore_env(&env);
    d.doctor().assert_healthy();
}

#[test]
fn doctor_vxlan_dual_stack() {
    require_root();
    let peer = r#"{"PublicIP":"192.168.100.12","PublicIPv6":"fd00:100::12","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:00:12"},"BackendV6Data":{"VNI":1,"VtepMAC":"0a:00:00:00:06:12"}}"#;
    let mut d = DoctorNode::with(
        "doc-vx6",
        &Setup {
            config: VXLAN_DUAL,
            ipv6: true,
            agent_args: &[],
            peers: &[(PEER_KEY, peer)],
        },
    );
    let r = d.doctor();
    r.assert_healthy();
    for c in ["vtep", "vtep-v6", "peers", "peers-v6", "ip6_forward"] {
        assert_eq!(r.finding(c)["status"], "ok", "{c}: {}", r.out);
    }
    d.stop_agent();
    let st = d.status().stdout;
    assert!(st.contains("flannel-v6.1 matches the lease"), "{st}");
    assert!(st.contains("0a:00:00:00:06:12"), "{st}");

    // flannel-v6.1 with another subnet's address.
    let own6 = d
        .wait_env("FLANNEL_IPV6_SUBNET")
        .replace("::1/64", "::/128");
    d.sh_line(&format!("ip -6 addr del {own6} dev flannel-v6.1"));
    d.sh_line("ip -6 addr add fd42:10:0:99::/128 dev flannel-v6.1 nodad");
    d.doctor()
        .assert_problem("vtep-v6", &["flannel-v6.1", "fd42:10:0:99::/128", &own6]);
    d.sh_line("ip -6 addr del fd42:10:0:99::/128 dev flannel-v6.1");
    d.sh_line(&format!("ip -6 addr add {own6} dev flannel-v6.1 nodad"));
    d.doctor().assert_healthy();

    // The IPv6 route to the peer gone.
    d.sh_line(&format!("ip -6 route del {PEER6}"));
    d.doctor().assert_problem(
        "peers-v6",
        &[
            PEER6,
            "no route",
            "via fd42:10:0:30:: dev flannel-v6.1 onlink",
        ],
    );
    d.sh_line(&format!(
        "ip -6 route add {PEER6} via fd42:10:0:30:: dev flannel-v6.1 onlink"
    ));
    d.doctor().assert_healthy();

    // The IPv4 FDB entry gone.
    d.sh_line("bridge fdb del 0a:00:00:00:00:12 dev flannel.1 dst 192.168.100.12");
    d.doctor().assert_problem(
        "peers",
        &[PEER4, "no FDB entry 0a:00:00:00:00:12 dst 192.168.100.12"],
    );
    d.sh_line(
        "bridge fdb append 0a:00:00:00:00:12 dev flannel.1 dst 192.168.100.12 self permanent",
    );
    d.doctor().assert_healthy();

    // The underlay's MTU lowered under both devices (IPv6 outer headers
    // take 20 bytes more).
    d.sh_line("ip link set eth0 mtu 1460");
    d.doctor().assert_problem(
        "mtu",
        &[
            "flannel.1 has MTU 1450",
            "over 1410",
            "flannel-v6.1 has MTU 1430",
            "70 bytes",
            "over 1390",
        ],
    );
    d.sh_line("ip link set eth0 mtu 1500");

    // A device of an old VNI.
    d.sh_line("ip link add flannel-v6.2 type vxlan id 2 dstport 8472 dev eth0");
    d.doctor()
        .assert_problem("leftovers", &["flannel-v6.2", "VNI 1"]);
    d.sh_line("ip link del flannel-v6.2");

    // subnet.env naming another IPv6 network.
    let env = d.edit_env(
        "FLANNEL_IPV6_NETWORK=fd42:10::/56",
        "FLANNEL_IPV6_NETWORK=fd42:99::/56",
    );
    d.doctor().assert_problem(
        "subnet.env",
        &["stale", "FLANNEL_IPV6_NETWORK=fd42:99::/56", "fd42:10::/56"],
    );
    d.restore_env(&env);

    // Our own lease without its IPv6 VtepMAC: other nodes cannot tunnel here.
    let key = d.own_lease_key();
    let value = d.etcd.get(&key).expect("own lease");
    let cut = value.find(",\"BackendV6Data\"").expect("v6 data");
    d.etcd
        .put_with_lease(&key, &format!("{}}}", &value[..cut]), 86_400);
    d.doctor()
        .assert_problem("lease", &["no IPv6 VtepMAC", "BackendV6Data"]);
    d.etcd.put_with_lease(&key, &value, 86_400);

    // Our lease with another IPv6 VtepMAC than the device's.
    let pat = r#""BackendV6Data":{"VNI":1,"VtepMAC":""#;
    let mac_at = value.find(pat).expect("v6 MAC") + pat.len();
    let mac6 = value[mac_at..mac_at + 17].to_string();
    d.etcd
        .put_with_lease(&key, &value.replace(&mac6, "0a:00:00:00:0f:0f"), 86_400);
    d.doctor().assert_problem(
        "vtep-v6",
        &[
            "flannel-v6.1",
            &format!("MAC {mac6}"),
            "VtepMAC 0a:00:00:00:0f:0f",
        ],
    );
    d.etcd.put_with_lease(&key, &value, 86_400);

    // Our lease with another IPv6 public address than the device's local
    // one, then with none.
    d.etcd
        .put_with_lease(&key, &value.replace(NODE_IPV6, "fd00:100::99"), 86_400);
    d.doctor().assert_problem(
        "vtep-v6",
        &[
            "local address fd00:100::11",
            "public address is fd00:100::99",
        ],
    );
    d.etcd.put_with_lease(
        &key,
        &value.replace(&format!("\"{NODE_IPV6}\""), "null"),
        86_400,
    );
    d.doctor()
        .assert_problem("lease", &["no IPv6 public address"]);
    d.etcd.put_with_lease(&key, &value, 86_400);

    // subnet.env's IPv6 subnet not the lease's.
    let own6_env = d.wait_env("FLANNEL_IPV6_SUBNET");
    let env = d.edit_env(&own6_env, "fd42:10:0:30::1/64");
    d.doctor().assert_problem(
        "subnet.env",
        &[
            "FLANNEL_IPV6_SUBNET=fd42:10:0:30::1/64",
            "this node's lease",
            &own6_env.replace("::1/", "::/"),
        ],
    );
    d.restore_env(&env);

    // cni0 without the IPv6 gateway (made before IPv6 was turned on).
    let gw4 = d.wait_env("FLANNEL_SUBNET");
    d.sh_line("ip link add cni0 type bridge");
    d.sh_line(&format!("ip addr add {gw4} dev cni0"));
    d.doctor()
        .assert_problem("cni0", &["no IPv6 address", &own6_env]);
    d.sh_line(&format!("ip -6 addr add {own6_env} dev cni0 nodad"));
    d.doctor().assert_healthy();
    d.sh_line("ip link del cni0");

    // Peers the agent cannot tunnel to over IPv6: no IPv6 VtepMAC, no IPv6
    // subnet at all.
    let no_mac = "/coreos.com/network/subnets/10.2.33.0-24&fd42:10:0:33::-64";
    let no_v6 = "/coreos.com/network/subnets/10.2.34.0-24";
    d.etcd.put_with_lease(
        no_mac,
        r#"{"PublicIP":"192.168.100.13","PublicIPv6":"fd00:100::13","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:00:13"}}"#,
        3600,
    );
    d.etcd.put_with_lease(
        no_v6,
        r#"{"PublicIP":"192.168.100.14","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:00:14"}}"#,
        3600,
    );
    d.doctor().assert_problem(
        "peers-v6",
        &[
            "fd42:10:0:33::/64",
            "no IPv6 VtepMAC",
            "10.2.34.0/24",
            "no IPv6 subnet",
        ],
    );
    d.etcd.delete(no_mac);
    d.etcd.delete(no_v6);
    d.doctor().assert_healthy();

    // The config changed under the stopped agent: another port, GBP, an
    // MTU; then another backend.
    d.etcd.put(
        "/coreos.com/network/config",
        &VXLAN_DUAL.replace(
            r#""Type":"vxlan""#,
            r#""Type":"vxlan","Port":4789,"GBP":true,"MTU":1400"#,
        ),
    );
    let r = d.doctor();
    r.assert_problem("vtep", &["flannel.1", "UDP port 8472", "4789", "GBP off"]);
    r.assert_problem("vtep-v6", &["flannel-v6.1", "UDP port 8472", "4789"]);
    r.assert_problem(
        "mtu",
        &[
            "flannel.1 has MTU 1450",
            "Backend MTU 1400 makes it 1350",
            "flannel-v6.1",
            "1330",
        ],
    );
    d.etcd.put(
        "/coreos.com/network/config",
        &VXLAN_DUAL.replace("vxlan", "host-gw"),
    );
    let r = d.doctor();
    r.assert_problem("lease", &["announces backend \"vxlan\"", "says host-gw"]);
    r.assert_problem("leftovers", &["flannel.1", "flannel-v6.1", "host-gw"]);
    r.assert_problem("peers", &[PEER4, "announces backend \"vxlan\""]);
    d.etcd.put("/coreos.com/network/config", VXLAN_DUAL);
    d.doctor().assert_healthy();

    // flannel-v6.1 down, then gone.
    d.sh_line("ip link set flannel-v6.1 down");
    d.doctor()
        .assert_problem("vtep-v6", &["flannel-v6.1", "it is down"]);
    d.sh_line("ip link del flannel-v6.1");
    let r = d.doctor();
    r.assert_problem("vtep-v6", &["flannel-v6.1 is missing", "IPv6"]);
    assert_eq!(r.finding("peers-v6")["status"], "skipped", "{}", r.out);
    assert_eq!(r.finding("vtep")["status"], "ok", "{}", r.out);
}

#[test]
fn doctor_vxlan_ipv6_only_with_direct_routing() {
    require_root();
    // One peer on the segment (routed directly), one behind a router
    // (tunnelled).
    let near = r#"{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:100::12","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"0a:00:00:00:06:12"}}"#;
    let far = r#"{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:200::13","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"0a:00:00:00:06:13"}}"#;
    let near_key = "0.0.0.0-0&fd42:10:0:30::-64";
    let far_key = "0.0.0.0-0&fd42:10:0:31::-64";
    let mut d = DoctorNode::with(
        "doc-v6o",
        &Setup {
            config: VXLAN_V6ONLY,
            ipv6: true,
            agent_args: &["--ip-masq"],
            peers: &[(near_key, near), (far_key, far)],
        },
    );
    let r = d.doctor();
    r.assert_healthy();
    let peers = r.finding("peers-v6")["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        peers.contains("1 through flannel-v6.1, 1 direct via eth0"),
        "{peers}"
    );
    // IPv4 is off: no IPv4 checks.
    for c in ["vtep", "peers", "ip_forward"] {
        assert!(
            r.json["checks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["check"] != c),
            "{c} checked on an IPv6-only node: {}",
            r.out
        );
    }
    assert_eq!(r.finding("ip6_forward")["status"], "ok", "{}", r.out);
    assert_eq!(r.finding("masquerade")["status"], "ok", "{}", r.out);
    d.stop_agent();
    let st = d.status().stdout;
    assert!(
        st.contains("0.0.0.0-0&fd42:10:0:")
            && st.contains(NODE_IPV6)
            && st.contains("DirectRouting"),
        "{st}"
    );

    // The direct route gone.
    d.sh_line("ip -6 route del fd42:10:0:30::/64");
    d.doctor().assert_problem(
        "peers-v6",
        &["fd42:10:0:30::/64", "no route", "via fd00:100::12 dev eth0"],
    );
    d.sh_line("ip -6 route add fd42:10:0:30::/64 via fd00:100::12 dev eth0");
    // The tunnelled peer's neighbour entry gone.
    d.sh_line("ip -6 neigh del fd42:10:0:31:: dev flannel-v6.1");
    d.doctor().assert_problem(
        "peers-v6",
        &[
            "fd42:10:0:31::/64",
            "neighbour entry fd42:10:0:31:: lladdr 0a:00:00:00:06:13",
        ],
    );
    d.sh_line(
        "ip -6 neigh replace fd42:10:0:31:: lladdr 0a:00:00:00:06:13 \
         dev flannel-v6.1 nud permanent",
    );
    d.doctor().assert_healthy();

    // An IPv4 device left from when the network had IPv4.
    d.sh_line("ip link add flannel.1 type vxlan id 1 dstport 8472 dev eth0");
    d.doctor()
        .assert_problem("leftovers", &["flannel.1", "IPv4 is off"]);
    d.sh_line("ip link del flannel.1");

    // subnet.env still describing IPv4.
    let env = std::fs::read_to_string(d.node.subnet_file()).expect("subnet.env");
    std::fs::write(
        d.node.subnet_file(),
        format!("FLANNEL_NETWORK=10.2.0.0/16\nFLANNEL_SUBNET=10.2.3.1/24\n{env}"),
    )
    .expect("write");
    d.doctor()
        .assert_problem("subnet.env", &["stale", "IPv4 is off", "FLANNEL_SUBNET"]);
    d.restore_env(&env);

    // Our lease turned into a reservation (no TTL): fine, and shown so.
    let key = d.own_lease_key();
    let value = d.etcd.get(&key).expect("own lease");
    d.etcd.put(&key, &value);
    let r = d.doctor();
    r.assert_healthy();
    let lease = r.finding("lease")["message"].as_str().unwrap_or_default();
    assert!(lease.contains("reserved (no TTL)"), "{lease}");
    assert!(d.status().stdout.contains("reserved (no TTL)"));

    // A conflist handing out IPv4 addresses on an IPv6-only network.
    let good = std::fs::read_to_string(d.conflist_path()).expect("conflist");
    let mut list: serde_json::Value = serde_json::from_str(&good).expect("JSON");
    list["plugins"][0]["ipam"] = serde_json::json!({"ranges": [[{"subnet": "10.2.3.0/24"}]]});
    d.write_conflist(&list.to_string());
    d.doctor()
        .assert_problem("conflist", &["10.2.3.0/24", "IPv4", "turns off"]);
    d.write_conflist(&good);

    // The IPv6 masquerade rule gone.
    d.sh_line("nft flush chain inet netboot postrouting");
    d.doctor()
        .assert_problem("masquerade", &["(IPv6)", "fd42:10:0:"]);
    // flanneld's own rule (a node it runs) does as well.
    let own6 = d.wait_env("FLANNEL_IPV6_SUBNET").replace("::1/", "::/");
    d.sh_line("ip6tables -t nat -N FLANNEL-POSTRTG");
    d.sh(&[
        "ip6tables",
        "-t",
        "nat",
        "-A",
        "FLANNEL-POSTRTG",
        "-s",
        &own6,
        "!",
        "-d",
        "ff00::/8",
        "-m",
        "comment",
        "--comment",
        "flanneld masq",
        "-j",
        "MASQUERADE",
        "--random-fully",
    ]);
    d.doctor().assert_healthy();
}
