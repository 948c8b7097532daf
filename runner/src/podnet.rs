//! A pod's network identity at `run`: the network namespace it lives in
//! (a new named one attached through CNI, or the node's for
//! `hostNetwork`), its addresses, its hostname and the /etc files that
//! name them (see [`crate::dns`], [`crate::etc`], [`crate::hostnet`]).

use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, Result};
use cni::Dns;

use crate::cli::RunOpts;
use crate::ctx::Ctx;
use crate::etc::{EtcFiles, NodeResolv};
use crate::network::Network;
use crate::spec::{PodSpec, SpecError};
use crate::state::PodRecord;

/// The network a pod is attached to, checked against the node: `None`
/// for a hostNetwork pod, which needs none. A bandwidth limit needs a
/// plugin declaring the `bandwidth` capability: without one it would
/// reach no plugin, so the pod is refused rather than run unshaped.
pub fn preflight(ctx: &Ctx, spec: &PodSpec) -> Result<Option<Network>> {
    if spec.host_network {
        if spec.hostname.is_some() || spec.subdomain.is_some() {
            tracing::warn!(
                "podrun: warning: pod {:?}: hostname and subdomain have no effect on a \
                 hostNetwork pod, which has the node's hostname (as in Kubernetes)",
                spec.name
            );
        }
        return Ok(None);
    }
    let net = ctx
        .network(spec.network.as_deref())
        .map_err(|e| anyhow::Error::new(SpecError::new("network", format!("{e:#}"))))?;
    net.check_plugins()?;
    if spec.bandwidth.is_some() && !net.declares("bandwidth") {
        return Err(SpecError::new(
            spec.bandwidth_field(),
            format!(
                "network {:?} has no plugin declaring the `bandwidth` capability \
                 (\"capabilities\": {{\"bandwidth\": true}}): the limit would not be applied",
                net.list.name
            ),
        )
        .into());
    }
    Ok(Some(net))
}

/// The path of the network namespace the pod's pause container joins: a
/// new named one (a leftover of ours, from a crash before any record, is
/// stale and replaced), or podrun's own for a hostNetwork pod.
pub fn sandbox_netns(rec: &PodRecord) -> Result<String> {
    let path = if rec.spec.host_network {
        crate::hostnet::own_netns_path()?
    } else {
        let _ = netkit::delete_named(&rec.netns_name);
        netkit::create_named(&rec.netns_name).map_err(|e| anyhow::anyhow!("{e}"))?
    };
    Ok(path.display().to_string())
}

/// The pod's hostname: the node's for a hostNetwork pod (its UTS
/// namespace is the node's), else the spec's.
pub fn hostname(spec: &PodSpec) -> Result<String> {
    if spec.host_network {
        crate::hostnet::node_hostname()
    } else {
        Ok(spec.hostname().to_string())
    }
}

/// What attaching the pod gave it.
pub struct Attached {
    /// The pod's IPs: the CNI result's, or the node's.
    pub ips: Vec<IpAddr>,
    /// The CNI result's DNS (empty for a hostNetwork pod).
    pub dns: Dns,
}

/// CNI ADD through `net`, or for a hostNetwork pod (`net` is `None`) a
/// check that its pause container (PID `pause_pid`) really is in the
/// namespace `netns` named, and the node's addresses.
pub fn attach(
    ctx: &Ctx,
    rec: &PodRecord,
    net: Option<&Network>,
    pause_pid: u32,
    netns: &str,
) -> Result<Attached> {
    let Some(net) = net else {
        crate::hostnet::check_joined(pause_pid, Path::new(netns))?;
        let ips = crate::hostnet::node_ips().unwrap_or_else(|e| {
            tracing::warn!(
                "podrun: warning: pod {:?}: the node's addresses: {e:#}",
                rec.spec.name
            );
            Vec::new()
        });
        return Ok(Attached {
            ips,
            dns: Dns::default(),
        });
    };
    let result = net.add(&ctx.attachment(rec, true))?;
    Ok(Attached {
        ips: result.ips.iter().map(|i| i.address.addr()).collect(),
        dns: result.dns,
    })
}

/// The pod's resolv.conf, hosts and hostname files, each warning about
/// them logged.
pub fn etc_files(
    ctx: &Ctx,
    spec: &PodSpec,
    attached: &Attached,
    node_dns: &NodeResolv,
    opts: &RunOpts,
) -> Result<EtcFiles> {
    let (resolver, warnings) = crate::dns::resolver(&crate::dns::DnsInput {
        cni: &attached.dns,
        node: node_dns,
        policy: spec.dns_policy,
        config: spec.dns_config.as_ref(),
        host_network: spec.host_network,
    });
    for w in warnings {
        tracing::warn!("podrun: warning: pod {:?}: {w}", spec.name);
    }
    let kube = spec.kube.is_some();
    let hostname = hostname(spec)?;
    let hosts = if spec.host_network {
        let path = crate::etc::NODE_HOSTS;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("hostNetwork: read the node's {path}"))?;
        crate::etc::host_network_hosts(kube, &text)
    } else {
        let domain = spec.fqdn_domain(&ctx.g.namespace, &opts.cluster_domain);
        crate::etc::hosts(kube, &attached.ips, &hostname, domain.as_deref())
    };
    Ok(EtcFiles {
        resolv_conf: crate::dns::render(&resolver),
        hosts,
        hostname,
    })
}
