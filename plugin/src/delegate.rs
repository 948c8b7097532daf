//! Calling other CNI plugins (flannel, bridge, portmap) on behalf of the
//! runtime, the way libcni's `pkg/invoke` delegation does: same environment,
//! only `CNI_COMMAND` changes, stderr passes through.
//!
//! One addition: version negotiation. Debian's reference plugins (v1.1.1)
//! stop at CNI 1.0.0, so a 1.1.0 network would fail with "incompatible CNI
//! versions" the moment it delegates. When a delegate refuses the version,
//! we ask it for VERSION, retry with the highest version both sides speak,
//! and convert results back up, so the runtime still sees its own version.

use crate::record::Call;
use cni::args::{CmdArgs, Command};
use cni::error::{codes, CniError};
use cni::gojson::{schemas, Shape};
use cni::invoke::{find_in_path, Exec, ExecEnv};
use cni::result::CniResult;
use cni::version::{Version, SUPPORTED_VERSIONS};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs delegates found on `CNI_PATH`.
pub struct Delegator {
    paths: Vec<PathBuf>,
    env: ExecEnv,
    exec: Exec,
    /// Where to note the running delegate (see [`crate::inflight`]).
    inflight: Option<PathBuf>,
}

/// The attachment a delegate call is about; GC works on attachments other
/// than the one in the plugin's own environment.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
}

impl Delegator {
    pub fn new(args: &CmdArgs, timeout: Duration) -> Delegator {
        let mut vars = Vec::new();
        let mut set = |k: &str, v: &str| {
            if !v.is_empty() {
                vars.push((k.to_string(), v.to_string()));
            }
        };
        set("CNI_CONTAINERID", &args.container_id);
        set("CNI_NETNS", &args.netns);
        set("CNI_IFNAME", &args.ifname);
        let joined = args
            .path
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":");
        set("CNI_PATH", &joined);
        let cni_args = args
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        set("CNI_ARGS", &cni_args);
        Delegator {
            paths: args.path.clone(),
            env: ExecEnv {
                vars,
                inherit: true,
            },
            exec: Exec { timeout },
            inflight: None,
        }
    }

    /// Notes every delegate this runs at `path` while it runs, so a DEL
    /// after netboot-cni was killed can stop it ([`crate::inflight`]).
    pub fn noting_inflight(mut self, path: PathBuf) -> Delegator {
        self.inflight = Some(path);
        self
    }

    /// A copy that acts on another attachment (used by GC).
    pub fn for_target(&self, t: &Target) -> Delegator {
        let mut vars: Vec<(String, String)> = self
            .env
            .vars
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "CNI_CONTAINERID" | "CNI_NETNS" | "CNI_IFNAME"))
            .cloned()
            .collect();
        vars.push(("CNI_CONTAINERID".into(), t.container_id.clone()));
        vars.push(("CNI_IFNAME".into(), t.ifname.clone()));
        // An empty CNI_NETNS tells delegates the sandbox is gone, as the
        // second DEL of containerd's CRI plugin does.
        vars.push(("CNI_NETNS".into(), t.netns.clone()));
        Delegator {
            paths: self.paths.clone(),
            env: ExecEnv {
                vars,
                inherit: true,
            },
            exec: Exec {
                timeout: self.exec.timeout,
            },
            inflight: None,
        }
    }

    pub fn find(&self, plugin: &str) -> Result<PathBuf, CniError> {
        find_in_path(plugin, &self.paths)
    }

    pub fn available(&self, plugin: &str) -> bool {
        self.find(plugin).is_ok()
    }

    pub fn search_path(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Whether `plugin` speaks CNI 1.1.0, where STATUS and GC exist (the
    /// commands forwarded to delegates only when they know them).
    pub fn speaks_1_1(&self, plugin: &str) -> bool {
        self.versions(plugin)
            .map(|v| v.iter().any(|s| s == "1.1.0"))
            .unwrap_or(false)
    }

    /// The CNI versions a delegate supports (its VERSION output).
    pub fn versions(&self, plugin: &str) -> Result<Vec<String>, CniError> {
        let path = self.find(plugin)?;
        let out = self.exec.run(
            &path,
            Command::Version,
            br#"{"cniVersion":"0.1.0"}"#,
            &self.env,
        )?;
        let info = Shape::Struct(&schemas::PLUGIN_INFO);
        let v = cni::gojson::parse_canonical(&out, &info).map_err(|e| {
            CniError::new(
                codes::DECODE,
                format!("{plugin} VERSION output is not JSON: {e}"),
            )
        })?;
        Ok(v.get("supportedVersions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// ADD, retrying once at a lower version if the delegate refuses ours.
    /// `persist` runs before every attempt with the exact config about to be
    /// sent, so a crash mid-call always leaves a record DEL can replay.
    pub fn add(
        &self,
        call: &mut Call,
        persist: &mut dyn FnMut(&Call) -> Result<(), CniError>,
    ) -> Result<CniResult, CniError> {
        persist(call)?;
        match self.raw_add(call) {
            Err(e) if e.code == codes::INCOMPATIBLE_VERSION && self.downgrade(call)? => {
                persist(call)?;
                self.raw_add(call)
            }
            other => other,
        }
    }

    fn raw_add(&self, call: &Call) -> Result<CniResult, CniError> {
        let path = self.find(&call.type_)?;
        let bytes =
            serde_json::to_vec(&call.conf).map_err(|e| CniError::internal(e.to_string()))?;
        let out = self.exec_noted(&path, Command::Add, &bytes)?;
        CniResult::parse(&out, conf_version(&call.conf))
            .map_err(|e| e.context(format!("result of {} ADD", call.type_)))
    }

    /// DEL, CHECK, STATUS or GC of a call (stdout is ignored), negotiating
    /// the version like ADD: a record written before the delegate was
    /// upgraded or downgraded must still be replayable.
    pub fn run(&self, cmd: Command, call: &Call) -> Result<(), CniError> {
        match self.raw_run(cmd, call) {
            Err(e) if e.code == codes::INCOMPATIBLE_VERSION => {
                let mut lowered = call.clone();
                if self.downgrade(&mut lowered)? {
                    self.raw_run(cmd, &lowered)
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    /// [`Delegator::run`] without the version negotiation: one exec.
    pub fn run_once(&self, cmd: Command, call: &Call) -> Result<(), CniError> {
        self.raw_run(cmd, call)
    }

    fn raw_run(&self, cmd: Command, call: &Call) -> Result<(), CniError> {
        let path = self.find(&call.type_)?;
        let bytes =
            serde_json::to_vec(&call.conf).map_err(|e| CniError::internal(e.to_string()))?;
        self.exec_noted(&path, cmd, &bytes).map(|_| ())
    }

    /// Runs a delegate, with a note of it while it runs when asked to.
    fn exec_noted(&self, path: &Path, cmd: Command, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
        let Some(note) = &self.inflight else {
            return self.exec.run(path, cmd, stdin, &self.env);
        };
        let out = self
            .exec
            .run_observed(path, cmd, stdin, &self.env, &mut |pid| {
                // Best effort: without the note DEL still works, it just
                // cannot stop an orphan.
                let _ = crate::inflight::note(note, pid);
            });
        crate::inflight::clear(note);
        out
    }

    /// Lowers `call` to the highest version the delegate and we both speak
    /// that is below the current one. Returns false when there is none.
    fn downgrade(&self, call: &mut Call) -> Result<bool, CniError> {
        let current = Version::parse(conf_version(&call.conf))?;
        let theirs = self.versions(&call.type_)?;
        let best = theirs
            .iter()
            .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
            .filter_map(|v| Version::parse(v).ok().map(|p| (p, v)))
            .filter(|(p, _)| *p < current)
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, v)| v.clone());
        let Some(best) = best else { return Ok(false) };
        set_version(&mut call.conf, &best)?;
        Ok(true)
    }
}

/// The `cniVersion` of a config (empty if absent).
pub fn conf_version(conf: &Value) -> &str {
    conf.get("cniVersion").and_then(Value::as_str).unwrap_or("")
}

/// Sets a config's version, converting an embedded prevResult to match.
pub fn set_version(conf: &mut Value, version: &str) -> Result<(), CniError> {
    let prev = conf.get("prevResult").cloned();
    let old = conf_version(conf).to_string();
    let Value::Object(map) = conf else {
        return Err(CniError::internal("delegate config is not an object"));
    };
    map.insert("cniVersion".into(), Value::String(version.into()));
    if let Some(prev) = prev {
        let parsed = CniResult::from_value(&prev, &old)?;
        map.insert("prevResult".into(), parsed.to_value(version)?);
    }
    Ok(())
}

/// A chained plugin's DEL needs only its config; the prevResult is
/// dropped from the record (the final result is kept once, separately).
pub fn without_prev_result(c: &Call) -> Call {
    let mut c = c.clone();
    if let Value::Object(m) = &mut c.conf {
        m.remove("prevResult");
    }
    c
}

/// Re-attaches a recorded result as the prevResult of a call (for CHECK and
/// DEL of chained plugins), in the call's own version.
pub fn with_prev_result(call: &Call, result: &Value) -> Result<Call, CniError> {
    let mut c = call.clone();
    if let Value::Object(m) = &mut c.conf {
        m.insert("prevResult".into(), result.clone());
    }
    let v = conf_version(&c.conf).to_string();
    set_version(&mut c.conf, &v)?;
    Ok(c)
}
