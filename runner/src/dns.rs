//! A pod's `/etc/resolv.conf` from its `dnsPolicy` and `dnsConfig`, built
//! the way kubelet's DNS configurer builds a pod's (kubernetes
//! `pkg/kubelet/network/dns/dns.go`, `GetPodDNS`):
//!
//! 1. a base from the policy: `None` starts empty; `Default` (and
//!    `ClusterFirst` in a hostNetwork pod, which kubelet turns into
//!    `Default`) is the node's resolver config; `ClusterFirst` and
//!    `ClusterFirstWithHostNet` would be the cluster DNS service, which
//!    podrun does not have: they take the CNI result's DNS when it names
//!    nameservers, else the node's resolver config;
//! 2. `dnsConfig` merged on top: nameservers and searches appended without
//!    duplicates, options merged by name with `dnsConfig` winning;
//! 3. kubelet's limits: 3 nameservers, 32 search domains of at most 253
//!    characters and 2048 characters in all (what is cut is warned about).
//!
//! The node's file is read as kubelet reads it: `nameserver` lines add up,
//! the last `search` and the last `options` line win, `#` lines are
//! comments. A loopback nameserver (a local stub resolver) is unreachable
//! from a pod's own network namespace and is dropped there; a hostNetwork
//! pod shares the node's namespace and keeps it.

use std::net::IpAddr;

use cni::Dns;

use crate::etc::{NodeResolv, SYSTEMD_RESOLVED_UPSTREAM};
use crate::spec::{DnsConfig, DnsPolicy};

const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;
const MAX_NAME: usize = 253;

/// What a resolv.conf holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolver {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`.
    pub options: Vec<String>,
}

/// Where the base of a pod's resolver config comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The cluster's DNS: for podrun the CNI result's, else the node's.
    Cluster,
    /// The node's resolver config.
    Node,
    /// Nothing (`dnsPolicy: None`).
    Empty,
}

impl Base {
    /// The base for `policy` (absent: `ClusterFirst`, Kubernetes' default).
    pub fn of(policy: Option<DnsPolicy>, host_network: bool) -> Base {
        match policy.unwrap_or(DnsPolicy::ClusterFirst) {
            DnsPolicy::None => Base::Empty,
            DnsPolicy::Default => Base::Node,
            DnsPolicy::ClusterFirst if host_network => Base::Node,
            DnsPolicy::ClusterFirst | DnsPolicy::ClusterFirstWithHostNet => Base::Cluster,
        }
    }
}

/// Everything a pod's resolv.conf is made from.
pub struct DnsInput<'a> {
    /// DNS of the CNI result (empty for a hostNetwork pod).
    pub cni: &'a Dns,
    pub node: &'a NodeResolv,
    pub policy: Option<DnsPolicy>,
    pub config: Option<&'a DnsConfig>,
    pub host_network: bool,
}

fn is_loopback(addr: &str) -> bool {
    addr.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// The node's file, parsed as kubelet's `parseResolvConf` does.
pub fn parse(text: &str) -> Resolver {
    let mut r = Resolver::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => r.nameservers.extend(words.next().map(String::from)),
            // Trailing dots dropped so that `a.` and `a` count once.
            Some("search") => {
                r.searches = words
                    .map(|s| s.strip_suffix('.').unwrap_or(s).to_string())
                    .collect()
            }
            Some("options") => r.options = words.map(String::from).collect(),
            _ => {}
        }
    }
    r
}

fn from_cni(dns: &Dns) -> Resolver {
    let mut searches = Vec::new();
    if !dns.domain.is_empty() {
        searches.push(dns.domain.clone());
    }
    searches.extend(dns.search.iter().cloned());
    Resolver {
        nameservers: dns.nameservers.clone(),
        searches,
        options: dns.options.clone(),
    }
}

/// The node's resolver config for a pod; a warning when dropping its
/// loopback resolvers left none (`cni_hint`: the CNI result's DNS would
/// have been used, so the network config is one way out).
fn node_base(
    node: &NodeResolv,
    host_network: bool,
    cni_hint: bool,
    warnings: &mut Vec<String>,
) -> Resolver {
    let mut r = parse(&node.text);
    if host_network {
        return r;
    }
    let loopback: Vec<String> = r
        .nameservers
        .iter()
        .filter(|a| is_loopback(a))
        .cloned()
        .collect();
    r.nameservers.retain(|a| !is_loopback(a));
    if r.nameservers.is_empty() && !loopback.is_empty() {
        let source = node
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let or_cni = if cni_hint {
            " or put `dns` in the network config"
        } else {
            ""
        };
        warnings.push(format!(
            "{source} names only loopback nameservers ({}), which the pod's network \
             namespace cannot reach: the pod gets no nameserver. Point --resolv-conf at \
             the upstream servers' file (systemd-resolved: {SYSTEMD_RESOLVED_UPSTREAM}){or_cni}",
            loopback.join(", ")
        ));
    }
    r
}

fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for i in items {
        if !list.contains(&i) {
            list.push(i);
        }
    }
}

/// Options merged by name, later values winning; the first position of a
/// name is kept (kubelet merges through a Go map, whose order is random).
fn merge_options(base: &[String], extra: &DnsConfig) -> Vec<String> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut set = |name: &str, value: Option<&str>| {
        let value = value.filter(|v| !v.is_empty()).map(String::from);
        match out.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => out.push((name.to_string(), value)),
        }
    };
    for o in base {
        match o.split_once(':') {
            Some((n, v)) => set(n, Some(v)),
            None => set(o, None),
        }
    }
    for o in &extra.options {
        set(&o.name, o.value.as_deref());
    }
    out.into_iter()
        .map(|(n, v)| match v {
            Some(v) => format!("{n}:{v}"),
            None => n,
        })
        .collect()
}

/// kubelet's `formDNSConfigFitsLimits`: cuts what glibc cannot take.
fn fit_limits(r: &mut Resolver, warnings: &mut Vec<String>) {
    if r.nameservers.len() > MAX_NAMESERVERS {
        r.nameservers.truncate(MAX_NAMESERVERS);
        warnings.push(format!(
            "more than {MAX_NAMESERVERS} nameservers: using {}",
            r.nameservers.join(" ")
        ));
    }
    let before = r.searches.clone();
    r.searches.truncate(MAX_SEARCHES);
    r.searches.retain(|s| s.len() <= MAX_NAME);
    while r.searches.join(" ").len() > MAX_SEARCH_CHARS {
        r.searches.pop();
    }
    if r.searches != before {
        warnings.push(format!(
            "search list over the limits ({MAX_SEARCHES} domains of at most {MAX_NAME} \
             characters, {MAX_SEARCH_CHARS} in all): using {:?}",
            r.searches.join(" ")
        ));
    }
}

/// The pod's resolver config and the warnings about it.
pub fn resolver(input: &DnsInput) -> (Resolver, Vec<String>) {
    let mut warnings = Vec::new();
    let base = Base::of(input.policy, input.host_network);
    let mut r = match base {
        Base::Empty => Resolver::default(),
        Base::Cluster if !input.cni.nameservers.is_empty() => from_cni(input.cni),
        Base::Cluster | Base::Node => {
            let cni_hint = base == Base::Cluster;
            node_base(input.node, input.host_network, cni_hint, &mut warnings)
        }
    };
    if let Some(c) = input.config {
        push_unique(
            &mut r.nameservers,
            c.nameservers.iter().map(|a| a.to_string()),
        );
        push_unique(&mut r.searches, c.searches.iter().cloned());
        r.options = merge_options(&r.options, c);
    }
    fit_limits(&mut r, &mut warnings);
    (r, warnings)
}

/// The file's text: nameservers, then the search and options lines.
pub fn render(r: &Resolver) -> String {
    let mut out = String::new();
    for ns in &r.nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !r.searches.is_empty() {
        out.push_str(&format!("search {}\n", r.searches.join(" ")));
    }
    if !r.options.is_empty() {
        out.push_str(&format!("options {}\n", r.options.join(" ")));
    }
    out
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
