//! `spec.containers[]` and `spec.initContainers[]`.

use serde_json::Value;

use super::volume::{self, Volumes};
use super::walk::{nonneg, quantity, Obj, Report};
use crate::spec::{
    Capabilities, ContainerSpec, Cpus, Env, MemorySize, Port, Resources, SecurityContext, SpecError,
};

/// What a container's fields refer to.
pub struct Ctx<'a> {
    pub pod_name: &'a str,
    pub namespace: &'a str,
    pub volumes: &'a Volumes,
}

/// Maps one container; its ports are added to the pod's `ports`.
pub fn map(
    path: &str,
    v: &Value,
    ctx: &Ctx,
    ports: &mut Vec<Port>,
    report: &mut Report,
) -> Result<ContainerSpec, SpecError> {
    let mut o = Obj::new(path, v)?;
    let name = o.req_str("name")?;
    let image = o.req_str("image")?;
    let command = o.strings("command")?;
    let args = o.strings("args")?;
    let working_dir = o.str("workingDir")?;
    pull_policy(&mut o, report)?;
    let mut pod_ip_env = Vec::new();
    let env = env(&mut o, ctx, &mut pod_ip_env, report)?;
    for (p, port) in o.list("ports")? {
        map_port(&p, port, ports, report)?;
    }
    let resources = match o.obj("resources")? {
        Some(r) => resources(r, report)?,
        None => Resources::default(),
    };
    let mut volume_mounts = Vec::new();
    for (p, m) in o.list("volumeMounts")? {
        volume::mount(&p, m, ctx.volumes, &mut volume_mounts, report)?;
    }
    let security_context = match o.obj("securityContext")? {
        Some(sc) => Some(security_context(sc, report)?),
        None => None,
    };
    o.finish(report)?;
    Ok(ContainerSpec {
        name,
        image,
        command,
        args,
        env,
        working_dir,
        mounts: Vec::new(),
        volume_mounts,
        resources,
        security_context,
        pod_ip_env,
    })
}

/// `imagePullPolicy`: podrun never pulls, so `Always` cannot be kept;
/// `IfNotPresent` and `Never` both mean "use the image containerd has".
fn pull_policy(o: &mut Obj, report: &mut Report) -> Result<(), SpecError> {
    let at = o.at("imagePullPolicy");
    match o.str("imagePullPolicy")?.as_deref() {
        None | Some("IfNotPresent") | Some("Never") => Ok(()),
        Some("Always") => report.unsupported(
            &at,
            "\"Always\" (podrun never pulls; import images with `podrun image import`)",
        ),
        Some(other) => Err(SpecError::new(
            at,
            format!("{other:?} is not Always, IfNotPresent or Never"),
        )),
    }
}

/// `env[]`: literal values and the field references podrun can answer.
fn env(
    o: &mut Obj,
    ctx: &Ctx,
    pod_ip_env: &mut Vec<String>,
    report: &mut Report,
) -> Result<Env, SpecError> {
    let mut out = Vec::new();
    for (p, item) in o.list("env")? {
        let mut e = Obj::new(p.clone(), item)?;
        let name = e.req_str("name")?;
        let value = e.take("value").map(|v| match v {
            // Kubernetes wants strings; a YAML `80` is taken as "80".
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let from = e.obj("valueFrom")?;
        let value = match (value, from) {
            (Some(_), Some(_)) => {
                return Err(SpecError::new(p, "has both value and valueFrom"));
            }
            (Some(v), None) => Some(v),
            (None, None) => Some(String::new()),
            (None, Some(from)) => value_from(from, &name, ctx, pod_ip_env, report)?,
        };
        e.finish(report)?;
        if let Some(v) = value {
            out.push((name, v));
        }
    }
    Ok(Env(out))
}

/// `valueFrom`: only `fieldRef` to the pod's name, namespace or IP. None
/// when refused under `ignore_unsupported`.
fn value_from(
    mut from: Obj,
    name: &str,
    ctx: &Ctx,
    pod_ip_env: &mut Vec<String>,
    report: &mut Report,
) -> Result<Option<String>, SpecError> {
    let Some(mut f) = from.obj("fieldRef")? else {
        from.finish(report)?;
        return Ok(None);
    };
    from.finish(report)?;
    let field_path = f.req_str("fieldPath")?;
    if let Some(api) = f.str("apiVersion")? {
        if api != "v1" {
            return Err(SpecError::new(
                f.at("apiVersion"),
                format!("{api:?} is not v1"),
            ));
        }
    }
    let at = f.at("fieldPath");
    f.finish(report)?;
    Ok(match field_path.as_str() {
        "metadata.name" => Some(ctx.pod_name.to_string()),
        "metadata.namespace" => Some(ctx.namespace.to_string()),
        "status.podIP" => {
            pod_ip_env.push(name.to_string());
            Some(String::new())
        }
        other => {
            report.unsupported(&at, &format!("field reference {other:?}"))?;
            None
        }
    })
}

fn map_port(
    path: &str,
    v: &Value,
    ports: &mut Vec<Port>,
    report: &mut Report,
) -> Result<(), SpecError> {
    let mut o = Obj::new(path, v)?;
    let at = o.at("containerPort");
    let container_port = o
        .int::<u16>("containerPort")?
        .filter(|&p| p != 0)
        .ok_or_else(|| SpecError::new(at, "is required (1-65535)"))?;
    let host_port = o.int::<u16>("hostPort")?.filter(|&p| p != 0);
    let protocol = o.str("protocol")?.unwrap_or_else(|| "TCP".into());
    let at = o.at("hostIP");
    let host_ip = o
        .str("hostIP")?
        .map(|s| {
            s.parse()
                .map_err(|_| SpecError::new(at, format!("{s:?} is not an IP address")))
        })
        .transpose()?;
    let name = o.str("name")?;
    o.finish(report)?;
    ports.push(Port {
        container_port,
        host_port,
        protocol: protocol.to_ascii_lowercase(),
        host_ip,
        name,
    });
    Ok(())
}

/// `resources.limits` and `.requests`: cpu and memory.
fn resources(mut r: Obj, report: &mut Report) -> Result<Resources, SpecError> {
    let mut out = Resources::default();
    if let Some(mut l) = r.obj("limits")? {
        if let Some((p, q)) = quantity(&mut l, "cpu")? {
            let m = nonneg(&p, &q, q.milli_value())?;
            // A zero limit means none, as in Kubernetes.
            if m > 0 {
                let cpus = m as f64 / 1000.0;
                if !(0.01..=4096.0).contains(&cpus) {
                    return Err(SpecError::new(
                        p,
                        format!("{q} is not between 10m and 4096"),
                    ));
                }
                out.cpus = Some(Cpus(cpus));
            }
        }
        if let Some((p, q)) = quantity(&mut l, "memory")? {
            let b = nonneg(&p, &q, q.value())?;
            out.memory = (b > 0).then_some(MemorySize(b as u64));
        }
        l.finish(report)?;
    }
    if let Some(mut req) = r.obj("requests")? {
        if let Some((p, q)) = quantity(&mut req, "cpu")? {
            let m = nonneg(&p, &q, q.milli_value())?;
            out.cpu_shares = Some(milli_cpu_to_shares(m));
        }
        if let Some((p, q)) = quantity(&mut req, "memory")? {
            out.memory_request = Some(MemorySize(nonneg(&p, &q, q.value())? as u64));
        }
        req.finish(report)?;
    }
    r.finish(report)?;
    Ok(out)
}

/// The kubelet's conversion of a CPU request to cgroup v1 shares
/// (`MilliCPUToShares`): 1024 per CPU, clamped to 2..=262144.
pub fn milli_cpu_to_shares(milli: i64) -> u64 {
    (milli.saturating_mul(1024) / 1000).clamp(2, 262_144) as u64
}

fn security_context(mut o: Obj, report: &mut Report) -> Result<SecurityContext, SpecError> {
    let mut sc = SecurityContext {
        run_as_user: o.int("runAsUser")?,
        run_as_group: o.int("runAsGroup")?,
        run_as_non_root: o.bool("runAsNonRoot")?,
        read_only_root_filesystem: o.bool("readOnlyRootFilesystem")?,
        privileged: o.bool("privileged")?,
        allow_privilege_escalation: o.bool("allowPrivilegeEscalation")?,
        capabilities: None,
    };
    if let Some(mut caps) = o.obj("capabilities")? {
        sc.capabilities = Some(Capabilities {
            add: caps.strings("add")?.unwrap_or_default(),
            drop: caps.strings("drop")?.unwrap_or_default(),
        });
        caps.finish(report)?;
    }
    o.finish(report)?;
    Ok(sc)
}
