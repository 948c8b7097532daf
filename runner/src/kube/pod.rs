//! One Pod document: metadata and the pod-level fields of `spec`.

use serde_json::Value;

use super::container::{self, Ctx};
use super::quantity::Quantity;
use super::types::{
    DnsConfig, DnsPolicy, KubePod, Options, PodExtra, PodSecurityContext, RestartPolicy,
};
use super::volume;
use super::walk::{Obj, Report};
use crate::spec::{PodSpec, SpecError};

const INGRESS: &str = "kubernetes.io/ingress-bandwidth";
const EGRESS: &str = "kubernetes.io/egress-bandwidth";

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
    let mut extra = PodExtra::default();
    let mut meta = root
        .obj("metadata")?
        .ok_or_else(|| SpecError::new("metadata", "is required"))?;
    let name = meta.req_str("name")?;
    extra.namespace = meta.str("namespace")?.unwrap_or_else(|| "default".into());
    extra.labels = meta.string_map("labels")?;
    extra.annotations = meta.string_map("annotations")?;
    meta.finish(&mut report)?;
    for (key, v) in &extra.annotations {
        let slot = match key.as_str() {
            INGRESS => &mut extra.ingress_bandwidth,
            EGRESS => &mut extra.egress_bandwidth,
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
        namespace: &extra.namespace,
        volumes: &volumes,
    };
    let mut ports = Vec::new();
    let mut containers = Vec::new();
    for (p, c) in s.list("containers")? {
        let (c, x) = container::map(&p, c, &ctx, &mut ports, &mut report)?;
        containers.push(c);
        extra.containers.push(x);
    }
    for (p, c) in s.list("initContainers")? {
        let mut init_ports = Vec::new();
        let (c, x) = container::map(&p, c, &ctx, &mut init_ports, &mut report)?;
        if !init_ports.is_empty() {
            report.unsupported(&format!("{p}.ports"), "a port of an init container")?;
        }
        extra.init_containers.push(c);
        extra.init_container_extras.push(x);
    }
    let hostname = s.str("hostname")?;
    extra.subdomain = s.str("subdomain")?;
    extra.host_network = s.bool("hostNetwork")?.unwrap_or(false);
    extra.termination_grace_period_seconds = s.int("terminationGracePeriodSeconds")?;
    pod_enums(&mut s, &mut extra)?;
    if let Some(d) = s.obj("dnsConfig")? {
        extra.dns_config = Some(dns_config(d, &mut report)?);
    }
    if let Some(sc) = s.obj("securityContext")? {
        extra.security_context = pod_security_context(sc, &mut report)?;
    }
    s.finish(&mut report)?;
    root.finish(&mut report)?;
    for v in volumes.by_name.into_values() {
        match v {
            volume::Vol::HostPath(h) => extra.host_path_volumes.push(h),
            volume::Vol::EmptyDir(e) => extra.empty_dirs.push(e),
        }
    }
    let spec = PodSpec {
        name,
        hostname,
        network: None,
        ports,
        containers,
    };
    check(&spec, &extra)?;
    Ok(KubePod {
        spec,
        extra,
        warnings: report.warnings,
    })
}

/// podrun's own checks, with its paths put in manifest terms.
fn check(spec: &PodSpec, extra: &PodExtra) -> Result<(), SpecError> {
    let kube_path = |e: SpecError, list: &str| {
        let path = match e.path.as_str() {
            "name" => "metadata.name".to_string(),
            p if p.starts_with("containers") => format!("spec.{list}{}", &p["containers".len()..])
                .replace(".mounts", ".volumeMounts")
                .replace(".resources.memory", ".resources.limits.memory")
                .replace(".resources.cpus", ".resources.limits.cpu")
                .replace(".resources.cpuShares", ".resources.requests.cpu"),
            p => format!("spec.{p}"),
        };
        SpecError::new(path, e.msg)
    };
    spec.validate().map_err(|e| kube_path(e, "containers"))?;
    if !extra.init_containers.is_empty() {
        let init = PodSpec {
            ports: Vec::new(),
            containers: extra.init_containers.clone(),
            ..spec.clone()
        };
        init.validate()
            .map_err(|e| kube_path(e, "initContainers"))?;
        for (i, c) in extra.init_containers.iter().enumerate() {
            if spec.containers.iter().any(|o| o.name == c.name) {
                return Err(SpecError::new(
                    format!("spec.initContainers[{i}].name"),
                    format!("{:?} is also a container's name", c.name),
                ));
            }
        }
    }
    Ok(())
}

/// `dnsPolicy` and `restartPolicy`.
fn pod_enums(s: &mut Obj, extra: &mut PodExtra) -> Result<(), SpecError> {
    let at = s.at("dnsPolicy");
    extra.dns_policy = match s.str("dnsPolicy")?.as_deref() {
        None => None,
        Some("ClusterFirst") => Some(DnsPolicy::ClusterFirst),
        Some("ClusterFirstWithHostNet") => Some(DnsPolicy::ClusterFirstWithHostNet),
        Some("Default") => Some(DnsPolicy::Default),
        Some("None") => Some(DnsPolicy::None),
        Some(o) => return Err(SpecError::new(at, format!("{o:?} is not a DNS policy"))),
    };
    let at = s.at("restartPolicy");
    extra.restart_policy = match s.str("restartPolicy")?.as_deref() {
        None => None,
        Some("Always") => Some(RestartPolicy::Always),
        Some("OnFailure") => Some(RestartPolicy::OnFailure),
        Some("Never") => Some(RestartPolicy::Never),
        Some(o) => return Err(SpecError::new(at, format!("{o:?} is not a restart policy"))),
    };
    Ok(())
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
        out.options.push((name, value));
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
            .as_i64()
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
