//! Every flag flanneld defines (its `main.go`, plus the three klog flags
//! it copies: `v`, `vmodule`, `log_backtrace_at`), and what `netboot agent`
//! does with each. docs/agent.md ("flanneld's flags") is the same table in
//! prose; a test keeps the two in step.

/// How flanneld's flag parses its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `flag.BoolVar`: `-x` alone means true; a value only after `=`.
    Bool,
    /// `flag.IntVar`.
    Int,
    /// `flag.StringVar`.
    Str,
    /// `flag.StringVar` whose empty value means "not set" to flanneld
    /// (`if opts.publicIP != ""`): `-public-ip=` is dropped.
    OptStr,
    /// flanneld's repeatable `flagSlice`; an empty value is dropped too.
    List,
}

/// What netboot does with a flanneld flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Does {
    /// The same setting as the agent option of that name (its long name or
    /// an alias of it), with flanneld's meaning.
    Same,
    /// Accepted and logged; it changes nothing, for the reason given.
    Ignore(&'static str),
    /// Accepted silently when its value is `ok` (what netboot does anyway),
    /// refused otherwise, for the reason given.
    RefuseUnless(bool, &'static str),
    /// clap's own `--help` / `--version`.
    Clap,
}

#[derive(Debug)]
pub struct Flag {
    pub name: &'static str,
    pub kind: Kind,
    pub does: Does,
    /// Another agent option holding the same setting under netboot's own
    /// name and unit (`--renew-margin` for `-subnet-lease-renew-margin`):
    /// given on the command line or as `NETBOOT_*`, it beats the
    /// `FLANNELD_*` variable.
    pub also: Option<&'static str>,
}

const fn flag(name: &'static str, kind: Kind, does: Does) -> Flag {
    Flag {
        name,
        kind,
        does,
        also: None,
    }
}

const KUBE_ONLY: &str = "flanneld reads it only with -kube-subnet-mgr, which netboot does not run";

pub static FLAGS: &[Flag] = &[
    flag("etcd-endpoints", Kind::Str, Does::Same),
    flag("etcd-prefix", Kind::Str, Does::Same),
    flag("etcd-keyfile", Kind::OptStr, Does::Same),
    flag("etcd-certfile", Kind::OptStr, Does::Same),
    flag("etcd-cafile", Kind::OptStr, Does::Same),
    flag("etcd-username", Kind::OptStr, Does::Same),
    flag("etcd-password", Kind::OptStr, Does::Same),
    flag("iface", Kind::List, Does::Same),
    flag("iface-regex", Kind::List, Does::Same),
    flag("iface-can-reach", Kind::OptStr, Does::Same),
    flag("subnet-file", Kind::Str, Does::Same),
    flag("public-ip", Kind::OptStr, Does::Same),
    flag("public-ipv6", Kind::OptStr, Does::Same),
    Flag {
        also: Some("renew_margin"),
        ..flag("subnet-lease-renew-margin", Kind::Int, Does::Same)
    },
    flag("ip-masq", Kind::Bool, Does::Same),
    flag("healthz-ip", Kind::Str, Does::Same),
    flag("healthz-port", Kind::Int, Does::Same),
    flag("v", Kind::Int, Does::Same),
    flag(
        "ip-masq-fully-random-disable",
        Kind::Bool,
        Does::Ignore("netboot's masquerade rule never uses fully-random port mapping"),
    ),
    flag(
        "kube-subnet-mgr",
        Kind::Bool,
        Does::RefuseUnless(
            false,
            "netboot uses etcd for subnet leases and has no Kubernetes subnet manager; \
             drop the flag to use etcd (-etcd-endpoints), or keep flanneld on this node",
        ),
    ),
    flag("kube-api-url", Kind::Str, Does::Ignore(KUBE_ONLY)),
    flag("kube-annotation-prefix", Kind::Str, Does::Ignore(KUBE_ONLY)),
    flag("kubeconfig-file", Kind::Str, Does::Ignore(KUBE_ONLY)),
    flag("net-config-path", Kind::Str, Does::Ignore(KUBE_ONLY)),
    flag(
        "set-node-network-unavailable",
        Kind::Bool,
        Does::Ignore(KUBE_ONLY),
    ),
    flag(
        "iptables-resync",
        Kind::Int,
        Does::Ignore(
            "netboot writes its firewall rules when it sets the node up (start, lease \
             change, device repair), not on a timer",
        ),
    ),
    flag(
        "iptables-forward-rules",
        Kind::Bool,
        Does::RefuseUnless(
            true,
            "netboot always installs forward-accept rules for the cluster network \
             and cannot leave them out",
        ),
    ),
    flag(
        "ip-blackhole-route",
        Kind::Bool,
        Does::RefuseUnless(
            false,
            "netboot does not add a blackhole route for the node's subnet",
        ),
    ),
    flag(
        "vmodule",
        Kind::Str,
        Does::Ignore("per-file log levels: netboot's log has none"),
    ),
    flag(
        "log_backtrace_at",
        Kind::Str,
        Does::Ignore("klog's stack traces at a log line: netboot does not log through klog"),
    ),
    flag("version", Kind::Bool, Does::Clap),
    flag("help", Kind::Bool, Does::Clap),
];

/// flanneld's flag of that name.
pub fn find(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.name == name)
}

/// The variable flanneld reads a flag from when the command line does not
/// set it (coreos/pkg `flagutil.SetFlagsFromEnv` with prefix `FLANNELD`):
/// `FLANNELD_` + the name upper-cased, dashes turned to underscores.
pub fn env_name(name: &str) -> String {
    format!("FLANNELD_{}", name.to_ascii_uppercase().replace('-', "_"))
}
