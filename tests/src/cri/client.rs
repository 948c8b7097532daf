//! A blocking CRI v1 client (`runtime.v1.RuntimeService`,
//! `runtime.v1.ImageService`) over containerd's Unix socket: what kubelet
//! speaks, through `k8s-cri`'s generated tonic client, driven by a
//! current-thread tokio runtime of its own.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, CreateContainerRequest, ImageSpec, ListImagesRequest, ListPodSandboxRequest,
    PodSandboxConfig, PodSandboxStatus, PodSandboxStatusRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest, VersionRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::Status;

/// Every call gets this long (a RunPodSandbox with a slow CNI ADD on a
/// busy machine included).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What the clients of one containerd learnt about its sandboxes: their
/// IDs and pod netns paths, for the daemon's cleanup should CRI fail to
/// remove them.
#[derive(Debug, Default)]
pub struct Seen {
    pub sandboxes: BTreeSet<String>,
    pub netns: BTreeSet<PathBuf>,
}

/// [`Seen`], shared by a daemon and its clients.
pub type SharedSeen = Arc<Mutex<Seen>>;

/// A connected CRI client.
pub struct Cri {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    seen: SharedSeen,
}

impl Cri {
    /// Connects to the CRI socket at `socket`.
    pub fn connect(socket: &Path, seen: SharedSeen) -> Result<Cri, tonic::transport::Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let socket = socket.to_owned();
        // The URI is required by tonic and ignored by the connector.
        let channel = rt.block_on(
            Endpoint::from_static("http://[::]")
                .timeout(CALL_TIMEOUT)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let socket = socket.clone();
                    async move {
                        let s = tokio::net::UnixStream::connect(socket).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(s))
                    }
                })),
        )?;
        Ok(Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            seen,
        })
    }

    /// `Version`: the runtime's name and version.
    pub fn version(&self) -> Result<(String, String), Status> {
        let mut c = self.runtime.clone();
        let v = self
            .rt
            .block_on(c.version(VersionRequest::default()))?
            .into_inner();
        Ok((v.runtime_name, v.runtime_version))
    }

    /// `RunPodSandbox`: the new sandbox's ID (the CNI container ID). Its
    /// netns path is noted for cleanup right away.
    pub fn run_sandbox(&self, config: &PodSandboxConfig) -> Result<String, Status> {
        let mut c = self.runtime.clone();
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        };
        let id = self.rt.block_on(c.run_pod_sandbox(req))?.into_inner();
        let id = id.pod_sandbox_id;
        let _ = self.netns_of(&id);
        Ok(id)
    }

    /// `PodSandboxStatus` with `verbose`: the status and the info map
    /// (containerd puts a JSON document under `info`).
    pub fn sandbox_status(
        &self,
        id: &str,
    ) -> Result<(PodSandboxStatus, HashMap<String, String>), Status> {
        let mut c = self.runtime.clone();
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        };
        let r = self.rt.block_on(c.pod_sandbox_status(req))?.into_inner();
        let status = r
            .status
            .ok_or_else(|| Status::internal("PodSandboxStatus without status"))?;
        Ok((status, r.info))
    }

    /// The sandbox's IP (`status.network.ip`).
    pub fn sandbox_ip(&self, id: &str) -> Result<String, Status> {
        let (status, _) = self.sandbox_status(id)?;
        Ok(status.network.map(|n| n.ip).unwrap_or_default())
    }

    /// The sandbox's network namespace path, from the runtime spec in the
    /// verbose info (`linux.namespaces[type=network].path`).
    pub fn netns_of(&self, id: &str) -> Result<Option<PathBuf>, Status> {
        let (_, info) = self.sandbox_status(id)?;
        let path = info
            .get("info")
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .and_then(|v| {
                v["runtimeSpec"]["linux"]["namespaces"]
                    .as_array()?
                    .iter()
                    .find(|n| n["type"] == "network")?["path"]
                    .as_str()
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
            });
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.sandboxes.insert(id.to_owned());
        if let Some(p) = &path {
            seen.netns.insert(p.clone());
        }
        Ok(path)
    }

    /// `StopPodSandbox` (CNI DEL).
    pub fn stop_sandbox(&self, id: &str) -> Result<(), Status> {
        let mut c = self.runtime.clone();
        let req = StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.rt.block_on(c.stop_pod_sandbox(req))?;
        Ok(())
    }

    /// `RemovePodSandbox`.
    pub fn remove_sandbox(&self, id: &str) -> Result<(), Status> {
        let mut c = self.runtime.clone();
        let req = RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.rt.block_on(c.remove_pod_sandbox(req))?;
        Ok(())
    }

    /// IDs of every sandbox (`ListPodSandbox`, no filter).
    pub fn sandbox_ids(&self) -> Result<Vec<String>, Status> {
        let mut c = self.runtime.clone();
        let r = self
            .rt
            .block_on(c.list_pod_sandbox(ListPodSandboxRequest { filter: None }))?
            .into_inner();
        Ok(r.items.into_iter().map(|s| s.id).collect())
    }

    /// `CreateContainer` + `StartContainer` in sandbox `id` (whose config
    /// was `sandbox`): the container's ID.
    pub fn start_container(
        &self,
        id: &str,
        sandbox: &PodSandboxConfig,
        config: ContainerConfig,
    ) -> Result<String, Status> {
        let mut c = self.runtime.clone();
        let req = CreateContainerRequest {
            pod_sandbox_id: id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox.clone()),
        };
        let cid = self
            .rt
            .block_on(c.create_container(req))?
            .into_inner()
            .container_id;
        let req = StartContainerRequest {
            container_id: cid.clone(),
        };
        self.rt.block_on(c.start_container(req))?;
        Ok(cid)
    }

    /// References of the images CRI sees (`ImageService.ListImages`).
    pub fn image_tags(&self) -> Result<Vec<String>, Status> {
        let mut c = self.images.clone();
        let r = self
            .rt
            .block_on(c.list_images(ListImagesRequest { filter: None }))?
            .into_inner();
        Ok(r.images.into_iter().flat_map(|i| i.repo_tags).collect())
    }
}

/// An `ImageSpec` for `image`.
pub fn image_spec(image: &str) -> ImageSpec {
    ImageSpec {
        image: image.into(),
        ..ImageSpec::default()
    }
}
