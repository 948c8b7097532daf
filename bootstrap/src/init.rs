//! `netboot init` and `netboot conflist`.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{bail, Result};
use ipnet::{Ipv4Net, Ipv6Net};

use crate::cli::{ConflistArgs, InitArgs};
use crate::conflist::{self, Install, CONFLIST_NAME};
use crate::etcd::Etcd;
use crate::netconfig::{self, Backend, NetConfig};

/// `netboot conflist`: print what init would write.
pub fn conflist_cmd(a: &ConflistArgs) -> Result<()> {
    crate::out::emit(&conflist::conflist_for(
        a.upstream,
        a.cni_version.as_deref(),
        &a.dirs(),
    )?)
}

fn parse_cidr<N: std::str::FromStr + Copy + std::fmt::Display + PartialEq>(
    flag: &str,
    s: &str,
    what: &str,
    trunc: impl Fn(N) -> N,
    errs: &mut Vec<String>,
) -> Option<N> {
    match s.parse::<N>() {
        Ok(n) if trunc(n) != n => {
            errs.push(format!(
                "{flag} {s} has host bits set: the network address is {}",
                trunc(n)
            ));
            None
        }
        Ok(n) => Some(n),
        Err(_) => {
            errs.push(format!(
                "{flag} {s:?} is not a valid {what} CIDR (like {})",
                example(what)
            ));
            None
        }
    }
}

fn example(what: &str) -> &'static str {
    if what == "IPv4" {
        "10.2.0.0/16"
    } else {
        "fd00:10:2::/48"
    }
}

fn parse_ip<A: std::str::FromStr>(
    flag: &str,
    s: &Option<String>,
    what: &str,
    errs: &mut Vec<String>,
) -> Option<A> {
    let s = s.as_ref()?;
    let r = s.parse::<A>().ok();
    if r.is_none() {
        errs.push(format!("{flag} {s:?} is not a valid {what} address"));
    }
    r
}

/// The config the flags describe, validated; every problem listed.
pub fn config_from_args(a: &InitArgs) -> Result<NetConfig> {
    let mut errs = Vec::new();
    let mut c = NetConfig {
        enable_ipv4: !a.no_ipv4,
        ..NetConfig::default()
    };
    if c.enable_ipv4 {
        c.network =
            parse_cidr::<Ipv4Net>("--network", &a.network, "IPv4", |n| n.trunc(), &mut errs);
        c.subnet_len = a.subnet_len;
        c.subnet_min = parse_ip::<Ipv4Addr>("--subnet-min", &a.subnet_min, "IPv4", &mut errs);
        c.subnet_max = parse_ip::<Ipv4Addr>("--subnet-max", &a.subnet_max, "IPv4", &mut errs);
    }
    if let Some(v6) = &a.ipv6_network {
        c.enable_ipv6 = true;
        c.ipv6_network =
            parse_cidr::<Ipv6Net>("--ipv6-network", v6, "IPv6", |n| n.trunc(), &mut errs);
        c.ipv6_subnet_len = a.ipv6_subnet_len;
        c.ipv6_subnet_min =
            parse_ip::<Ipv6Addr>("--ipv6-subnet-min", &a.ipv6_subnet_min, "IPv6", &mut errs);
        c.ipv6_subnet_max =
            parse_ip::<Ipv6Addr>("--ipv6-subnet-max", &a.ipv6_subnet_max, "IPv6", &mut errs);
    } else if a.no_ipv4 {
        errs.push("--no-ipv4 needs --ipv6-network: there would be nothing to configure".into());
    }
    if a.backend != "vxlan" && (a.vni.is_some() || a.port.is_some()) {
        errs.push(format!(
            "--vni and --port only apply to the vxlan backend, not {:?}",
            a.backend
        ));
    }
    c.backend = Some(Backend {
        vni: a.vni,
        port: a.port,
        ..Backend::new(a.backend.clone())
    });
    // Check the rest only once the flags themselves parse: a missing
    // Network would otherwise be reported twice.
    if errs.is_empty() {
        if let Err(problems) = c.check() {
            errs.extend(problems);
        }
    }
    if !errs.is_empty() {
        bail!("invalid network config:\n  - {}", errs.join("\n  - "));
    }
    Ok(c)
}

/// What happened to `<prefix>/config`.
enum Stored {
    Created,
    Same,
    Replaced,
    /// Dry run: what would happen.
    Would(String),
}

/// `netboot init`.
pub fn init_cmd(a: &InitArgs) -> Result<()> {
    let cfg = config_from_args(a)?;
    let conflist_text = conflist::conflist_for(
        a.conflist.upstream,
        a.conflist.cni_version.as_deref(),
        &a.conflist.dirs(),
    )?;
    let key = a.etcd.key("config");
    let json = cfg.to_json();
    let mut etcd = Etcd::connect(&a.etcd.opts()?, &key)?;
    let stored = store_config(&mut etcd, &key, &cfg, &json, a)?;
    let mut report = Vec::new();
    let ep = etcd.endpoint().to_string();
    match stored {
        Stored::Created => {
            report.push(format!("Wrote the network config to {key} on {ep}: {json}"))
        }
        Stored::Same => report.push(format!(
            "The network config at {key} on {ep} is already the same; left it unchanged."
        )),
        Stored::Replaced => report.push(format!(
            "Replaced the different network config at {key} on {ep} (--force): {json}"
        )),
        Stored::Would(s) => report.push(s),
    }
    let path = a.cni_conf_dir.join(CONFLIST_NAME);
    let mode = if a.conflist.upstream {
        "upstream flannel + portmap"
    } else {
        "netboot-cni (auto mode)"
    };
    if a.dry_run {
        report.push(format!(
            "Would write {} ({mode}):\n{conflist_text}",
            path.display()
        ));
    } else if conflist::write_atomic(&path, &conflist_text)? {
        report.push(format!("Wrote {} ({mode}).", path.display()));
    } else {
        report.push(format!(
            "{} is already up to date ({mode}).",
            path.display()
        ));
    }
    if !a.conflist.upstream {
        report.push(match conflist::install_plugin(&a.cni_bin_dir, a.dry_run)? {
            Install::AlreadyThere(p) => format!("{} is already installed.", p.display()),
            Install::Copied { from, to } => format!(
                "Installed {} (copied from {}).",
                to.display(),
                from.display()
            ),
            Install::WouldCopy { from, to } => format!(
                "Would install {} (copy from {}).",
                to.display(),
                from.display()
            ),
            Install::Missing(how) => format!("Note: {how}"),
        });
    }
    if a.dry_run {
        report.push("Dry run: nothing was written.".into());
    }
    crate::out::emitln(&report.join("\n"))?;
    Ok(())
}

fn store_config(
    etcd: &mut Etcd,
    key: &str,
    cfg: &NetConfig,
    json: &str,
    a: &InitArgs,
) -> Result<Stored> {
    let existing = if a.dry_run {
        etcd.get(key)?
    } else {
        match etcd.create(key, json)? {
            None => return Ok(Stored::Created),
            Some(kv) => Some(kv),
        }
    };
    let Some(kv) = existing else {
        return Ok(Stored::Would(format!(
            "Would write the network config to {key}: {json}"
        )));
    };
    let text = String::from_utf8_lossy(&kv.value).into_owned();
    let old = NetConfig::parse(kv.value.as_slice());
    if let Ok(old) = &old {
        if netconfig::same_config(old, cfg) {
            return Ok(if a.dry_run {
                Stored::Would(format!(
                    "The network config at {key} is already the same; would leave it unchanged."
                ))
            } else {
                Stored::Same
            });
        }
    }
    let diff = match &old {
        Ok(old) => netconfig::diff(old, cfg).join("\n"),
        Err(e) => format!("  (the stored value does not parse as a flannel config: {e})"),
    };
    let what = format!(
        "{key} already holds a different network config.\n  stored:    {text}\n  requested: {json}\ndifferences (stored -> requested, defaults filled in):\n{diff}"
    );
    if !a.force {
        bail!("{what}\nRefusing to overwrite it: nodes already use it. Use --force to replace it.");
    }
    if a.dry_run {
        return Ok(Stored::Would(format!(
            "{what}\nWould replace it (--force)."
        )));
    }
    match etcd.replace(key, json, kv.mod_revision)? {
        None => Ok(Stored::Replaced),
        Some(now) => bail!(
            "{key} changed while replacing it (someone else wrote it; now: {}); nothing overwritten, run init again",
            String::from_utf8_lossy(&now.value)
        ),
    }
}
