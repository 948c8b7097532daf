//! The context every command runs in: the global options, the state
//! store, the containerd client and the host's cgroups.

use std::path::PathBuf;

use anyhow::Result;
use containerd_client::types::Mount;

use crate::cgroup::Cgroups;
use crate::cli::Global;
use crate::ctrd::{Ctrd, Lease};
use crate::network::{Attachment, Network};
use crate::state::{PodRecord, Store};

/// Everything a command needs.
pub struct Ctx {
    pub g: Global,
    pub store: Store,
    pub ctrd: Ctrd,
    pub cgroups: Cgroups,
}

impl Ctx {
    pub async fn new(g: Global) -> Result<Ctx> {
        let store = Store::new(&g.state_dir, &g.namespace)?;
        let ctrd = Ctrd::connect(&g.address, &g.namespace, "overlayfs").await?;
        Ok(Ctx {
            g,
            store,
            ctrd,
            cgroups: Cgroups::host(),
        })
    }

    /// The same context, its containerd requests made under `lease`.
    pub fn leased(&self, lease: &Lease) -> Ctx {
        Ctx {
            g: self.g.clone(),
            store: self.store.clone(),
            ctrd: self.ctrd.leased(lease),
            cgroups: self.cgroups.clone(),
        }
    }

    /// Creates container `id`'s task, its cgroup parent kept meanwhile
    /// (see [`crate::cgroup::ParentInUse`]).
    pub async fn create_task(&self, id: &str, rootfs: Vec<Mount>, io: &str) -> Result<u32> {
        let _parent = self.cgroups.parent_in_use(&self.g.namespace)?;
        self.ctrd.create_task(id, rootfs, io).await
    }

    pub fn network(&self, name: Option<&str>) -> Result<Network> {
        Network::load(
            &self.g.cni_conf_dir,
            name,
            &self.g.cni_bin_dir,
            &self.g.cni_cache_dir,
        )
    }

    /// The network a pod was attached with, for DEL and CHECK: the
    /// config ADD used (libcni's cache entry, else the copy in the
    /// record), and only without either the conflist as it is now. A
    /// conflist removed or edited after `run` still gets a correct DEL.
    pub fn network_of(&self, rec: &PodRecord) -> Result<Network> {
        let saved = Network::cached_config(&self.g.cni_cache_dir, &rec.network, &rec.sandbox_id)
            .or_else(|| rec.network_config.clone());
        match saved {
            Some(conf) => Network::from_value(&conf, &self.g.cni_bin_dir, &self.g.cni_cache_dir),
            None => self.network(Some(&rec.network)),
        }
    }

    pub fn netns_path(&self, pod: &str) -> PathBuf {
        netkit::named_path(&self.store.netns_name(pod))
    }

    pub fn cgroups_path(&self, id: &str) -> String {
        crate::cgroup::cgroups_path(&self.g.namespace, id)
    }

    pub fn attachment(&self, rec: &PodRecord, netns: bool) -> Attachment {
        let path = self.netns_path(&rec.spec.name);
        Attachment {
            container_id: rec.sandbox_id.clone(),
            netns: if netns && path.exists() {
                path.display().to_string()
            } else {
                String::new()
            },
            pod_name: rec.spec.name.clone(),
            pod_namespace: rec.spec.pod_namespace(&self.g.namespace).to_string(),
            port_mappings: rec.spec.port_mappings(),
            bandwidth: rec
                .spec
                .bandwidth
                .as_ref()
                .map(crate::network::bandwidth_arg),
        }
    }

    pub fn pause_bin(&self) -> Result<PathBuf> {
        if let Some(p) = &self.g.pause_bin {
            return Ok(p.clone());
        }
        let exe = std::env::current_exe()?;
        Ok(exe.with_file_name("pause"))
    }
}

/// The lease `run` creates a pod's objects under, named after its sandbox
/// so that `rm` can delete the one a killed `run` left (a containerd ID:
/// 76 characters at most, which sandbox IDs of pod names up to 40 keep).
pub fn run_lease(sandbox_id: &str) -> Lease {
    Lease {
        id: format!("podrun-run-{sandbox_id}"),
    }
}
