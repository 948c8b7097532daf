//! Building the configs netboot-cni hands to other plugins.
//!
//! `bridge_delegate` reproduces, key for key, the delegate config that the
//! upstream flannel CNI plugin renders (flannel-io/cni-plugin
//! `flannel_linux.go` doCmdAdd / getDelegateIPAM), so a node can move between
//! the upstream flannel binary and netboot-cni without its pods noticing.

use crate::bandwidth::Bandwidth;
use crate::conf::{sorted, PluginConf};
use crate::ip_ranges::IpRange;
use crate::subnet_env::SubnetEnv;
use serde_json::{json, Map, Value};

/// The bridge (+ host-local) config flannel would delegate to.
pub fn bridge_delegate(conf: &PluginConf, env: &SubnetEnv) -> Value {
    let net = &conf.net;
    let mut d = conf.delegate.clone();
    // Validated on ADD; DEL, CHECK and GC use the recorded rendering.
    let ip_ranges = conf.ip_ranges().unwrap_or_default();
    if let Some(rc) = &net.runtime_config {
        let mut rc = rc.clone();
        if let (Value::Object(m), false) = (&mut rc, ip_ranges.is_empty()) {
            // Folded into ipam.ranges below: host-local would prepend them
            // a second time. (Keys are canonical: see conf::SCHEMA.)
            m.shift_remove("ipRanges");
        }
        d.insert("runtimeConfig".into(), rc);
    }
    d.insert("name".into(), Value::String(net.name.clone()));
    d.entry("type").or_insert_with(|| json!("bridge"));
    // flannel masquerades at the node when FLANNEL_IPMASQ is set, so the
    // bridge only needs to when flannel does not.
    d.entry("ipMasq").or_insert_with(|| json!(!env.ipmasq));
    d.entry("mtu").or_insert_with(|| json!(env.mtu));
    if d.get("type").and_then(Value::as_str) == Some("bridge") {
        d.entry("isGateway").or_insert_with(|| json!(true));
    }
    if !net.cni_version.is_empty() {
        d.insert("cniVersion".into(), json!(net.cni_version));
    }
    d.insert(
        "ipam".into(),
        Value::Object(delegate_ipam(conf, env, &ip_ranges)),
    );
    sorted(Value::Object(d))
}

/// flannel's IPAM section: one range set per node subnet. The runtime's
/// `ipRanges` sets come first and replace the node subnets they overlap
/// (see [`crate::ip_ranges`]).
fn delegate_ipam(
    conf: &PluginConf,
    env: &SubnetEnv,
    runtime: &[Vec<IpRange>],
) -> Map<String, Value> {
    let mut ipam = conf.ipam.clone();
    ipam.entry("type").or_insert_with(|| json!("host-local"));
    let replaced = |sn: &ipnet::IpNet| {
        runtime
            .iter()
            .flatten()
            .any(|r| crate::ip_ranges::overlaps(&r.subnet, sn))
    };
    let ranges: Vec<Value> = runtime
        .iter()
        .map(|set| Value::Array(set.iter().map(IpRange::to_json).collect()))
        .chain(
            env.subnet
                .iter()
                .chain(env.ipv6_subnet.iter())
                .filter(|sn| !replaced(sn))
                .map(|sn| json!([{ "subnet": sn.to_string() }])),
        )
        .collect();
    ipam.insert("ranges".into(), Value::Array(ranges));
    let mut routes = match ipam.get("routes") {
        Some(Value::Array(r)) => r.clone(),
        _ => Vec::new(),
    };
    for nw in env.networks.iter().chain(env.ipv6_networks.iter()) {
        routes.push(json!({ "dst": nw.to_string() }));
    }
    ipam.insert("routes".into(), Value::Array(routes));
    ipam
}

/// The config for the chained reference `bandwidth` plugin, without its
/// prevResult; the entry in the reference plugin's own spelling.
pub fn bandwidth_conf(conf: &PluginConf, version: &str, bw: &Bandwidth) -> Value {
    json!({
        "cniVersion": version,
        "name": conf.net.name,
        "type": "bandwidth",
        "capabilities": {"bandwidth": true},
        "runtimeConfig": {"bandwidth": bw.to_value()},
    })
}

/// Keys only netboot-cni understands; they are not passed on to flannel.
const NETBOOT_KEYS: &[&str] = &["mode", "logFile", "logLevel", "delegateTimeout", "portmap"];

/// The config for the upstream `flannel` binary (mode `flannel`): our own
/// config with every field the user wrote passed through (flannel and its
/// delegate may know keys we do not), netboot-only keys removed, and
/// `subnetFile` / `dataDir` made explicit so both plugins agree on them.
pub fn flannel_conf(conf: &PluginConf) -> Value {
    let mut v = conf.net.to_value();
    if let Value::Object(c) = &mut v {
        for key in NETBOOT_KEYS.iter().chain(["prevResult"].iter()) {
            c.remove(*key);
        }
        c.insert("type".into(), json!("flannel"));
        c.insert("subnetFile".into(), json!(conf.subnet_file));
        c.insert("dataDir".into(), json!(conf.data_dir));
        c.insert("delegate".into(), Value::Object(conf.delegate.clone()));
    }
    v
}

/// What native mode writes to flannel's scratch file `<dataDir>/<containerID>`:
/// our own config, type included, so the upstream flannel plugin's DEL
/// (which execs the scratch file's `type` with its bytes, flannel.go
/// doCmdDel) hands the attachment back to netboot-cni on CNI_PATH, whose
/// DEL undoes it from the record: veth, IP, nftables port mappings, record.
/// A bridge + host-local rendering instead would leave native mode's
/// nftables DNAT rules, which no reference plugin knows, pointing at an IP
/// the next pod may get. `mode`, `subnetFile` and `dataDir` are made
/// explicit so the replay finds the same record whatever the defaults.
pub fn native_scratch(conf: &PluginConf) -> Value {
    let mut v = conf.net.to_value();
    if let Value::Object(c) = &mut v {
        c.remove("prevResult");
        c.insert("mode".into(), json!("native"));
        c.insert("subnetFile".into(), json!(conf.subnet_file));
        c.insert("dataDir".into(), json!(conf.data_dir));
    }
    v
}

/// Whether a scratch file's `type` names netboot-cni itself (a native-mode
/// scratch file, [`native_scratch`]): never exec'd as a delegate by us.
pub fn is_own_type(conf: &PluginConf, type_: &str) -> bool {
    type_ == conf.net.type_ || type_ == "netboot-cni"
}

/// The config for the chained `portmap` plugin, without its prevResult.
pub fn portmap_conf(conf: &PluginConf, version: &str, mappings: &[Value]) -> Value {
    let mut c = Map::new();
    c.insert("cniVersion".into(), json!(version));
    c.insert("name".into(), json!(conf.net.name));
    c.insert("type".into(), json!("portmap"));
    c.insert("capabilities".into(), json!({ "portMappings": true }));
    c.insert("snat".into(), json!(true));
    for (k, v) in &conf.portmap {
        c.insert(k.clone(), v.clone());
    }
    c.insert("runtimeConfig".into(), json!({ "portMappings": mappings }));
    Value::Object(c)
}

/// A bridge delegate config as the bridge plugin (and host-local, for its
/// `ipam`) reads it: keys folded by Go's rule ([`cni::gojson`]) after
/// ordering them as Go marshals a map, which is how flannel and netboot
/// hand it over. For reading only; what is handed on stays as rendered.
pub fn bridge_view(conf: &Value) -> Value {
    cni::gojson::canonical(sorted(conf.clone()).into(), &BRIDGE)
}

const BRIDGE: cni::gojson::Shape = cni::gojson::Shape::Struct(&cni::gojson::schemas::BRIDGE);

/// The delegate and IPAM plugin types bridge mode will exec.
pub fn bridge_types(conf: &PluginConf) -> (String, String) {
    let delegate = conf
        .delegate
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("bridge");
    let ipam = conf
        .ipam
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("host-local");
    (delegate.to_string(), ipam.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn setup(extra: &str) -> (PluginConf, SubnetEnv) {
        let json = format!(r#"{{"cniVersion":"0.3.1","name":"cbr0","type":"netboot-cni"{extra}}}"#);
        let conf = PluginConf::from_netconf(
            cni::conf::NetConf::parse_as(json.as_bytes(), &crate::conf::SCHEMA).unwrap(),
        )
        .unwrap();
        let env = SubnetEnv::parse(
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
            Path::new("subnet.env"),
        )
        .unwrap();
        (conf, env)
    }

    #[test]
    fn matches_the_flannel_plugin_rendering() {
        let (conf, env) = setup(r#","delegate":{"hairpinMode":true,"isDefaultGateway":true}"#);
        let d = bridge_delegate(&conf, &env);
        // The exact bytes flannel v1.9.1 writes to <dataDir>/<containerID>.
        assert_eq!(
            d.to_string(),
            r#"{"cniVersion":"0.3.1","hairpinMode":true,"ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.244.3.0/24"}]],"routes":[{"dst":"10.244.0.0/16"}],"type":"host-local"},"isDefaultGateway":true,"isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge"}"#
        );
    }

    #[test]
    fn user_values_win_and_ipam_is_merged() {
        let (conf, env) = setup(
            r#","delegate":{"mtu":9000,"ipMasq":true,"type":"ipvlan"},"ipam":{"dataDir":"/tmp/x","routes":[{"dst":"1.2.3.0/24"}]},"runtimeConfig":{"portMappings":[]}"#,
        );
        let d = bridge_delegate(&conf, &env);
        assert_eq!(d["mtu"], 9000);
        assert_eq!(d["ipMasq"], true);
        assert!(d.get("isGateway").is_none(), "only bridge gets isGateway");
        assert_eq!(d["ipam"]["dataDir"], "/tmp/x");
        assert_eq!(
            d["ipam"]["routes"],
            json!([{"dst":"1.2.3.0/24"},{"dst":"10.244.0.0/16"}])
        );
        assert_eq!(d["runtimeConfig"], json!({"portMappings":[]}));
    }

    #[test]
    fn delegates_get_runtime_config_in_canonical_spelling() {
        // containerd's go-cni spelling in, what portmap/bridge/host-local
        // document out, in every mode.
        let (conf, env) = setup(
            r#","runtimeConfig":{"portMappings":[{"HostPort":80,"ContainerPort":8080,"Protocol":"tcp","HostIP":""}],
                "Bandwidth":{"IngressRate":1,"EgressBurst":2},"ipRanges":[[{"Subnet":"10.1.0.0/24"}]],
                "dns":{"Servers":["10.96.0.10"]}}"#,
        );
        let want = json!({
            "portMappings":[{"hostPort":80,"containerPort":8080,"protocol":"tcp","hostIP":""}],
            "bandwidth":{"ingressRate":1,"egressBurst":2},"ipRanges":[[{"subnet":"10.1.0.0/24"}]],
            "dns":{"servers":["10.96.0.10"]}});
        // ipRanges go into the delegate's ipam.ranges (see ip_ranges).
        let mut without_ranges = want.clone();
        without_ranges
            .as_object_mut()
            .unwrap()
            .shift_remove("ipRanges");
        assert_eq!(
            bridge_delegate(&conf, &env)["runtimeConfig"],
            without_ranges
        );
        assert_eq!(flannel_conf(&conf)["runtimeConfig"], want);
        let p = portmap_conf(&conf, "1.0.0", &conf.port_mappings());
        assert_eq!(p["runtimeConfig"]["portMappings"], want["portMappings"]);
    }

    #[test]
    fn bridge_view_reads_as_bridge_after_a_go_map_marshal() {
        let v = bridge_view(&json!({"ipMasq":false,"IPMasq":true,"Bridge":"br9",
            "IPAM":{"DataDir":"/x","Type":"host-local"}}));
        // Go marshals the map sorted ("IPMasq" < "ipMasq"), bridge folds:
        // the lower-case key, which flannel itself sets, wins.
        assert_eq!(v["ipMasq"], false);
        assert_eq!(v["bridge"], "br9");
        assert_eq!(v["ipam"], json!({"dataDir":"/x","type":"host-local"}));
    }

    #[test]
    fn runtime_ip_ranges_replace_the_node_subnet_they_overlap() {
        let (conf, mut env) = setup(
            r#","runtimeConfig":{"portMappings":[],"ipRanges":[[{"Subnet":"10.244.3.0/24","RangeStart":"10.244.3.100","RangeEnd":"10.244.3.110"}]]}"#,
        );
        env.ipv6_subnet = Some("fd00:3::/64".parse().unwrap());
        let d = bridge_delegate(&conf, &env);
        assert_eq!(
            d["ipam"]["ranges"],
            json!([
                [{"rangeEnd":"10.244.3.110","rangeStart":"10.244.3.100","subnet":"10.244.3.0/24"}],
                [{"subnet":"fd00:3::/64"}]
            ])
        );
        // host-local would prepend them again and refuse the overlap.
        assert_eq!(d["runtimeConfig"], json!({"portMappings":[]}));
        // A range elsewhere keeps the node subnet (host-local's prepend).
        let (conf, env) = setup(r#","runtimeConfig":{"ipRanges":[[{"subnet":"10.9.0.0/24"}]]}"#);
        assert_eq!(
            bridge_delegate(&conf, &env)["ipam"]["ranges"],
            json!([[{"subnet":"10.9.0.0/24"}], [{"subnet":"10.244.3.0/24"}]])
        );
    }

    #[test]
    fn ipmasq_follows_flannel_ipmasq_inverted() {
        let (conf, mut env) = setup("");
        env.ipmasq = false;
        assert_eq!(bridge_delegate(&conf, &env)["ipMasq"], true);
    }

    #[test]
    fn flannel_mode_passes_unknown_fields_and_drops_ours() {
        let (conf, _) =
            setup(r#","mode":"flannel","logLevel":"debug","hairpin":"x","args":{"k":"v"}"#);
        let c = flannel_conf(&conf);
        assert_eq!(c["type"], "flannel");
        assert_eq!(c["hairpin"], "x");
        assert_eq!(c["args"], json!({"k":"v"}));
        assert_eq!(c["subnetFile"], "/run/flannel/subnet.env");
        assert!(c.get("mode").is_none() && c.get("logLevel").is_none());
    }

    #[test]
    fn native_scratch_names_netboot_and_pins_its_files() {
        let (conf, _) = setup(
            r#","mode":"auto","dataDir":"/d","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":8080}]}"#,
        );
        let s = native_scratch(&conf);
        assert_eq!(s["type"], "netboot-cni");
        assert_eq!(s["mode"], "native", "the replay must undo natively");
        assert_eq!(s["dataDir"], "/d");
        assert_eq!(s["subnetFile"], "/run/flannel/subnet.env");
        assert_eq!(s["runtimeConfig"]["portMappings"][0]["hostPort"], 80);
        assert!(s.get("prevResult").is_none());
        assert!(is_own_type(&conf, s["type"].as_str().unwrap()));
        assert!(!is_own_type(&conf, "bridge") && !is_own_type(&conf, "flannel"));
    }

    #[test]
    fn portmap_options_pass_through() {
        let (conf, _) = setup(r#","portmap":{"snat":false,"markMasqBit":12}"#);
        let p = portmap_conf(
            &conf,
            "1.0.0",
            &[json!({"hostPort":80,"containerPort":8080})],
        );
        assert_eq!(p["snat"], false);
        assert_eq!(p["markMasqBit"], 12);
        assert_eq!(p["runtimeConfig"]["portMappings"][0]["hostPort"], 80);
    }
}
