//! One Pod document: metadata and the pod-level fields of `spec`.

use serde_json::Value;

use super::container::{self, Ctx};
use super::quantity::Quantity;
use super::types::{KubePod, Options};
use super::volume;
use super::walk::{Obj, Report};
use crate::spec::{
    Bandwidth, DnsConfig, DnsOption, DnsPolicy, KubeMeta, PodSecurityContext, PodSpec,
    RestartPolicy, SpecError, EGRESS_ANNOTATION as EGRESS, INGRESS_ANNOTATION as INGRESS,
};

pub fn map(doc: &Value, opts: Options) -> Result<KubePod, SpecError> {
    let mut report = Report {
        ignore_unsupported: opts.ignore_unsupported,
        warnings: Vec::new(),
    };
    let mut root = Obj::new("", doc)?;
    let api = root.req_str("apiVersion")?;
    if api != "v1" {
        return Err(SpecError::new("apiVersion", format!("{api:?} is not v1")));
    }
    let kind = root.req_str("kind")?;
    if kind != "Pod" {
        return Err(SpecError::new("kind", format!("{kind:?} is not Pod")));
    }
    let mut meta = root
        .obj("metadata")?
        .ok_or_else(|| SpecError::new("metadata", "is required"))?;
    let name = meta.req_str("name")?;
    let kube = KubeMeta {
        namespace: meta.str("namespace")?.unwrap_or_else(|| "default".into()),
        labels: meta.string_map("labels")?.into_iter().collect(),
        annotations: meta.string_map("annotations")?.into_iter().collect(),
    };
    meta.finish(&mut report)?;
    let mut bw = Bandwidth::default();
    for (key, v) in &kube.annotations {
        let slot = match key.as_str() {
            INGRESS => &mut bw.ingress_rate,
            EGRESS => &mut bw.egress_rate,
            _ => continue,
        };
        *slot = Some(bandwidth(&format!("metadata.annotations.{key}"), v)?);
    }
    let mut s = root
        .obj("spec")?
        .ok_or_else(|| SpecError::new("spec", "is required"))?;
    let volumes = volume::volumes(&mut s, &mut report)?;
    let ctx = Ctx {
        pod_name: &name,
        namespace: &kube.namespace,
        volumes: &volumes,
    };
    let mut ports = Vec::new();
    // The manifest path of each entry of `ports`, for errors.
    let mut port_paths = Vec::new();
    let mut containers = Vec::new();
    for (p, c) in s.list("containers")? {
        let before = ports.len();
        containers.push(container::map(&p, c, &ctx, &mut ports, &mut report)?);
        port_paths.extend((0..ports.len() - before).map(|j| format!("{p}.ports[{j}]")));
    }
    let mut init_containers = Vec::new();
    for (p, c) in s.list("initContainers")? {
        let mut init_ports = Vec::new();
        let c = container::map(&p, c, &ctx, &mut init_ports, &mut report)?;
        if !init_ports.is_empty() {
            report.unsupported(&format!("{p}.ports"), "a port of an init container")?;
        }
        init_containers.push(c);
    }
    let hostname = s.str("hostname")?;
    let subdomain = s.str("subdomain")?;
    let host_network = s.bool("hostNetwork")?.unwrap_or(false);
    let grace = s.int::<u64>("terminationGracePeriodSeconds")?;
    let (dns_policy, restart_policy) = pod_enums(&mut s)?;
    let dns_config = match s.obj("dnsConfig")? {
        Some(d) => Some(dns_config(d, &mut report)?),
        None => None,
    };
    let security_context = match s.obj("securityContext")? {
        Some(sc) => Some(pod_security_context(sc, &mut report)?),
        None => None,
    };
    s.finish(&mut report)?;
    // `status` is the node's report, which Kubernetes ignores on create;
    // an empty one (as `kubectl ... -o yaml` writes it) is accepted.
    if root.obj("status")?.is_some_and(|st| !st.is_empty()) {
        report.unsupported("status", "a non-empty status")?;
    }
    root.finish(&mut report)?;
    let spec = PodSpec {
        name,
        hostname,
        network: None,
        ports,
        containers,
        init_containers,
        volumes: volumes.by_name.into_values().collect(),
        subdomain,
        dns_policy,
        dns_config,
        host_network,
        termination_grace_period_seconds: grace,
        restart_policy,
        bandwidth: (bw != Bandwidth::default()).then_some(bw),
        security_context,
        kube: Some(kube),
    };
    check(&spec, &port_paths)?;
    Ok(KubePod {
        spec,
        warnings: report.warnings,
    })
}

/// podrun's own checks, with its paths put in manifest terms;
/// `port_paths[i]` is where podrun's `ports[i]` came from.
fn check(spec: &PodSpec, port_paths: &[String]) -> Result<(), SpecError> {
    let kube_path = |e: SpecError| {
        let port = e.path.strip_prefix("ports[").and_then(|r| {
            let (i, rest) = r.split_once(']')?;
            Some(format!(
                "{}{rest}",
                port_paths.get(i.parse::<usize>().ok()?)?
            ))
        });
        if let Some(path) = port {
            return SpecError::new(path, e.msg);
        }
        let path = match e.path.as_str() {
            "name" => "metadata.name".to_string(),
            "bandwidth" => spec.bandwidth_field(),
            "bandwidth.ingressRate" => format!("metadata.annotations.{INGRESS}"),
            "bandwidth.egressRate" => format!("metadata.annotations.{EGRESS}"),
            p if p.starts_with("containers") || p.starts_with("initContainers") => {
                format!("spec.{p}")
                    .replace(".resources.memory", ".resources.limits.memory")
                    .replace(".resources.cpus", ".resources.limits.cpu")
                    .replace(".resources.cpuShares", ".resources.requests.cpu")
            }
            p => format!("spec.{p}"),
        };
        SpecError::new(path, e.msg)
    };
    spec.validate().map_err(kube_path)
}

/// `dnsPolicy` and `restartPolicy`.
fn pod_enums(s: &mut Obj) -> Result<(Option<DnsPolicy>, Option<RestartPolicy>), SpecError> {
    let at = s.at("dnsPolicy");
    let dns = match s.str("dnsPolicy")?.as_deref() {
        None => None,
        Some("ClusterFirst") => Some(DnsPolicy::ClusterFirst),
        Some("ClusterFirstWithHostNet") => Some(DnsPolicy::ClusterFirstWithHostNet),
        Some("Default") => Some(DnsPolicy::Default),
        Some("None") => Some(DnsPolicy::None),
        Some(o) => return Err(SpecError::new(at, format!("{o:?} is not a DNS policy"))),
    };
    let at = s.at("restartPolicy");
    let restart = match s.str("restartPolicy")?.as_deref() {
        None => None,
        Some("Always") => Some(RestartPolicy::Always),
        Some("OnFailure") => Some(RestartPolicy::OnFailure),
        Some("Never") => Some(RestartPolicy::Never),
        Some(o) => return Err(SpecError::new(at, format!("{o:?} is not a restart policy"))),
    };
    Ok((dns, restart))
}

fn dns_config(mut d: Obj, report: &mut Report) -> Result<DnsConfig, SpecError> {
    let mut out = DnsConfig::default();
    for (p, v) in d.list("nameservers")? {
        let s = super::walk::string(&p, v)?;
        out.nameservers.push(
            s.parse()
                .map_err(|_| SpecError::new(p, format!("{s:?} is not an IP address")))?,
        );
    }
    out.searches = d.strings("searches")?.unwrap_or_default();
    for (p, v) in d.list("options")? {
        let mut o = Obj::new(p, v)?;
        let name = o.req_str("name")?;
        let value = o.str("value")?;
        o.finish(report)?;
        out.options.push(DnsOption { name, value });
    }
    d.finish(report)?;
    Ok(out)
}

fn pod_security_context(mut o: Obj, report: &mut Report) -> Result<PodSecurityContext, SpecError> {
    let mut sc = PodSecurityContext {
        run_as_user: o.int("runAsUser")?,
        run_as_group: o.int("runAsGroup")?,
        run_as_non_root: o.bool("runAsNonRoot")?,
        fs_group: o.int("fsGroup")?,
        supplemental_groups: Vec::new(),
    };
    for (p, v) in o.list("supplementalGroups")? {
        let g = v
            .as_u64()
            .and_then(|g| u32::try_from(g).ok())
            .ok_or_else(|| SpecError::new(p, format!("{v} is not a group id")))?;
        sc.supplemental_groups.push(g);
    }
    o.finish(report)?;
    Ok(sc)
}

/// A bandwidth annotation in bits per second. The kubelet's bandwidth
/// plugin takes 1k to 1P (`validateBandwidthIsReasonable`).
fn bandwidth(path: &str, text: &str) -> Result<u64, SpecError> {
    let q = Quantity::parse(text).map_err(|e| SpecError::new(path, e))?;
    let v = q.value().map_err(|e| SpecError::new(path, e))?;
    if !(1_000..=1_000_000_000_000_000).contains(&v) {
        return Err(SpecError::new(
            path,
            format!("{text:?} is not between 1k and 1P bits/s"),
        ));
    }
    Ok(v as u64)
}
