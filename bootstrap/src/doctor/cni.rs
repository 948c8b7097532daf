//! CNI checks: the conflist runtimes use (parses, is flannel's network and
//! points at this node's subnet.env), the plugin binaries it needs, and the
//! host-local IP store (entries with no live pod, space left).

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde_json::Value;

use super::conflist::{main_plugin, records_dir, str_or, Loaded};
use super::ctx::Ctx;
use super::finding::Finding;

const DEFAULT_SUBNET_FILE: &str = "/run/flannel/subnet.env";
const DEFAULT_IPAM_DIR: &str = "/var/lib/cni/networks";

const REWRITE: &str = "rewrite it with `netboot init` (or print the right one with `netboot conflist`); runtimes read it at each pod";

pub fn conflist(ctx: &Ctx, loaded: &Loaded) -> Finding {
    const CHECK: &str = "conflist";
    let (path, list) = match loaded {
        Loaded::None(why) => {
            return Finding::problem(
                CHECK,
                format!("{why}: runtimes cannot network any pod"),
                REWRITE,
            )
        }
        Loaded::Broken(p, e) => {
            return Finding::problem(
                CHECK,
                format!(
                    "{} (the first config, the one runtimes use) does not parse: {e}",
                    p.display()
                ),
                REWRITE,
            )
        }
        Loaded::Ok(p, l) => (p, l),
    };
    let at = path.display();
    let Some(main) = main_plugin(list) else {
        let types: Vec<&str> = list
            .plugins
            .iter()
            .filter_map(|p| p["type"].as_str())
            .collect();
        return Finding::problem(
            CHECK,
            format!(
                "{at} (network {:?}) uses [{}], not flannel's network (netboot-cni or flannel): pods would not get this node's subnet",
                list.name,
                types.join(", ")
            ),
            format!("{REWRITE}; or remove {at} if another config should win"),
        );
    };
    let mut why = Vec::new();
    let want = ctx.args.subnet_file.display().to_string();
    let sf = str_or(main, "subnetFile", DEFAULT_SUBNET_FILE);
    if sf != want {
        why.push(format!(
            "it reads subnetFile {sf}, but this node's agent writes {want}"
        ));
    }
    if main["type"] == "netboot-cni" {
        let mode = str_or(main, "mode", "auto");
        if !["auto", "flannel", "bridge", "native"].contains(&mode) {
            why.push(format!(
                "mode {mode:?} is not auto, flannel, bridge or native"
            ));
        }
    }
    let env_mtu = ctx.node.env.as_ref().and_then(|e| e.mtu());
    if let (Some(m), Some(max)) = (main["delegate"]["mtu"].as_u64(), env_mtu) {
        if m > u64::from(max) {
            why.push(format!("delegate.mtu {m} is above FLANNEL_MTU {max}"));
        }
    }
    if let Some(s) = ctx.node.settings() {
        let sets = main["ipam"]["ranges"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for r in sets.iter().filter_map(Value::as_array).flatten() {
            let Some(sn) = r["subnet"].as_str().and_then(|s| s.parse::<IpNet>().ok()) else {
                continue;
            };
            let v6 = matches!(sn, IpNet::V6(_));
            match s.network(v6) {
                Some(net) if !net.contains(&sn) => why.push(format!(
                    "ipam range {sn} is outside the cluster network {net}"
                )),
                Some(_) => {}
                None => why.push(format!(
                    "ipam range {sn} is {}, which the network config turns off",
                    crate::subnet_env::family_name(v6)
                )),
            }
        }
    }
    if why.is_empty() {
        Finding::ok(
            CHECK,
            format!(
                "{at}: network {:?}, {} reading {sf}",
                list.name,
                main["type"].as_str().unwrap_or("?")
            ),
        )
    } else {
        Finding::problem(
            CHECK,
            format!(
                "{at} does not match this node's network config: {}",
                why.join("; ")
            ),
            REWRITE,
        )
    }
}

/// The binaries a conflist needs: every plugin type, plus what the
/// netboot-cni mode or the flannel plugin delegates to.
fn needed(list: &cni::NetConfList) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |t: &str| {
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    };
    for p in &list.plugins {
        let Some(t) = p["type"].as_str() else {
            continue;
        };
        add(t);
        let ports = p["capabilities"]["portMappings"] == true;
        let extra: &[&str] = match (t, p["mode"].as_str().unwrap_or("auto")) {
            ("netboot-cni", "flannel") => &["flannel", "bridge", "host-local"],
            ("netboot-cni", "bridge") => &["bridge", "host-local"],
            ("flannel", _) => &["bridge", "host-local"],
            _ => &[],
        };
        for e in extra {
            add(e);
        }
        // netboot-cni chains portmap and bandwidth itself in the modes
        // that delegate (auto falls back to native without them).
        if t == "netboot-cni" && matches!(p["mode"].as_str(), Some("bridge" | "flannel")) {
            if ports {
                add("portmap");
            }
            if p["capabilities"]["bandwidth"] == true {
                add("bandwidth");
            }
        }
    }
    out
}

pub fn plugins(ctx: &Ctx, loaded: &Loaded) -> Finding {
    const CHECK: &str = "plugins";
    let Loaded::Ok(_, list) = loaded else {
        return Finding::skipped(CHECK, "no usable conflist to read the plugin list from");
    };
    let dirs = super::conflist::plugin_dirs(&ctx.args.cni_bin_dir);
    let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let shown = shown.join(":");
    let missing: Vec<String> = needed(list)
        .into_iter()
        .filter(|p| !dirs.iter().any(|d| d.join(p).is_file()))
        .collect();
    if missing.is_empty() {
        return Finding::ok(
            CHECK,
            format!("[{}] found in {shown}", needed(list).join(", ")),
        );
    }
    Finding::problem(
        CHECK,
        format!(
            "missing from the CNI path {shown}: {} (\"failed to find plugin {:?} in path\")",
            missing.join(", "),
            missing[0]
        ),
        if missing.iter().any(|m| m == "netboot-cni") {
            "install it: `install -m 0755 netboot-cni /opt/cni/bin/` (`netboot init` does it when netboot-cni sits next to netboot)".to_string()
        } else {
            "install them (Debian: `apt-get install containernetworking-plugins` puts bridge/host-local/portmap in /usr/lib/cni; copy or link them into the CNI bin dir), or use netboot-cni in auto/native mode, which needs no other binary".to_string()
        },
    )
}

/// host-local's store for the network: `<ipam dataDir>/<network>/<ip>`,
/// each file `containerID\nifname`.
pub fn ipam(ctx: &Ctx, loaded: &Loaded) -> Finding {
    const CHECK: &str = "ipam";
    let Loaded::Ok(_, list) = loaded else {
        return Finding::skipped(
            CHECK,
            "no usable conflist: the IP store location is unknown",
        );
    };
    let Some(main) = main_plugin(list) else {
        return Finding::skipped(CHECK, "the conflist is not flannel's network");
    };
    let store =
        Path::new(main["ipam"]["dataDir"].as_str().unwrap_or(DEFAULT_IPAM_DIR)).join(&list.name);
    let records = records_dir(main);
    let boot = super::ghosts::boot_id().ok().flatten();
    let ours = main["type"] == "netboot-cni";
    let entries = match std::fs::read_dir(&store) {
        Ok(rd) => rd.filter_map(Result::ok).collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    };
    let mut stale = Vec::new();
    // (subnet, IPs used in it) of every family subnet.env names.
    let mut used: Vec<(IpNet, u64)> = ctx
        .node
        .families()
        .into_iter()
        .filter_map(|v6| Some((ctx.node.env.as_ref()?.subnet_net(v6)?, 0)))
        .collect();
    for e in &entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(ip) = name.parse::<IpAddr>() else {
            continue;
        };
        for (sn, n) in &mut used {
            if sn.contains(&ip) {
                *n += 1;
            }
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
        let cid = lines.next().unwrap_or("").to_string();
        let ifname = lines.next().unwrap_or("eth0").to_string();
        match read_record(&records.join(format!("{cid}@{ifname}.json"))) {
            Some(rec) => {
                if let Some(why) = super::ghosts::reason(&rec, boot.as_deref()) {
                    stale.push((ip, format!("{cid}: {why}")));
                }
            }
            None if ours => stale.push((ip, format!("{cid}: no record of this attachment"))),
            None => {}
        }
    }
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    if !stale.is_empty() {
        stale.sort_by_key(|(ip, _)| *ip);
        let shown: Vec<String> = stale
            .iter()
            .take(8)
            .map(|(ip, why)| format!("{ip} ({why})"))
            .collect();
        let more = match stale.len() {
            n if n > 8 => format!(" and {} more", n - 8),
            _ => String::new(),
        };
        problems.push(format!(
            "{} IP(s) in {} belong to no live pod: {}{more}",
            stale.len(),
            store.display(),
            shown.join(", ")
        ));
        fixes.push("run CNI GC with the live attachments (`podrun gc`, or the runtime's own GC); for a single entry, CNI DEL of that container ID");
    }
    let mut in_use = Vec::new();
    for (sn, n) in &used {
        // host-local hands out all but the network address, the gateway and
        // (IPv4) broadcast.
        let host_bits = u32::from(sn.max_prefix_len() - sn.prefix_len());
        if host_bits >= 32 {
            // An IPv6 /64 does not run out.
            in_use.push(format!("{n} IPs of {sn} in use"));
            continue;
        }
        let capacity = (1u64 << host_bits).saturating_sub(3).max(1);
        let pct = n * 100 / capacity;
        if pct >= u64::from(ctx.args.ipam_warning) {
            problems.push(format!(
                "{n} of {capacity} pod IPs of {sn} are taken ({pct}%): \"no IP addresses available in range set\" is near"
            ));
            fixes.push("reclaim leaked IPs (above), move pods elsewhere, or use a larger SubnetLen for new clusters");
        }
        in_use.push(format!("{n} of {capacity} IPs of {sn} in use"));
    }
    if problems.is_empty() {
        return Finding::ok(
            CHECK,
            if in_use.is_empty() {
                format!(
                    "{} entries in {}, none stale",
                    entries.len(),
                    store.display()
                )
            } else {
                format!("{}, every one by a live pod", in_use.join(", "))
            },
        );
    }
    Finding::problem(CHECK, problems.join("; "), fixes.join("; "))
}

/// The attachment record at `path`, if there is a readable one.
fn read_record(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::needed;

    fn list(plugin: &str) -> cni::NetConfList {
        let text = format!(r#"{{"cniVersion":"1.0.0","name":"cbr0","plugins":[{plugin}]}}"#);
        cni::NetConfList::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn delegating_modes_need_the_chained_plugins_they_declare() {
        let caps = r#""capabilities":{"portMappings":true,"bandwidth":true}"#;
        for (mode, want) in [
            (
                "bridge",
                &[
                    "netboot-cni",
                    "bridge",
                    "host-local",
                    "portmap",
                    "bandwidth",
                ][..],
            ),
            (
                "flannel",
                &[
                    "netboot-cni",
                    "flannel",
                    "bridge",
                    "host-local",
                    "portmap",
                    "bandwidth",
                ][..],
            ),
            // auto and native fall back to in-process port mapping and shaping.
            ("native", &["netboot-cni"][..]),
            ("auto", &["netboot-cni"][..]),
        ] {
            let l = list(&format!(
                r#"{{"type":"netboot-cni","mode":"{mode}",{caps}}}"#
            ));
            assert_eq!(needed(&l), want, "{mode}");
        }
        let l = list(r#"{"type":"netboot-cni","mode":"bridge"}"#);
        assert_eq!(needed(&l), ["netboot-cni", "bridge", "host-local"]);
    }
}
