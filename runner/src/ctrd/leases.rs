//! containerd leases: what keeps content, ingests and snapshots that
//! nothing references yet from the garbage collector while podrun builds
//! on them. Every request made through [`Ctrd::leased`] adds what it
//! creates to the lease; deleting the lease hands them back to the
//! collector, which then keeps only what an image, a container or another
//! object references. The expiry label makes a lease that a crashed podrun
//! never deleted lapse on its own (containerd's `gc.expire`, as the Go
//! client's `leases.WithExpiration`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::{CreateRequest, DeleteRequest};
use containerd_client::tonic::Code;

use super::client::{ctx, missing, Ctrd};

/// containerd's lease expiry label (RFC 3339 time).
pub const EXPIRE_LABEL: &str = "containerd.io/gc.expire";

/// A lease podrun created: delete it with [`Ctrd::delete_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
}

impl Ctrd {
    /// The same connection, every request made under `lease`: what the Go
    /// client's `leases.WithLease(ctx, id)` does. containerd adds what such
    /// a request creates (content, ingests, snapshots) to the lease, so its
    /// garbage collector keeps them until the lease is deleted or expires.
    pub fn leased(&self, lease: &Lease) -> Ctrd {
        Ctrd {
            lease: Some(lease.id.clone()),
            ..self.clone()
        }
    }

    /// Creates lease `id`, expiring after `ttl`. A lease of that ID left
    /// by a killed podrun (IDs of a pod's run are fixed) is replaced.
    pub async fn create_lease(&self, id: &str, ttl: Duration) -> Result<Lease> {
        let lease = Lease { id: id.to_string() };
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let expire = rfc3339_utc((since + ttl).as_secs());
        // Never itself under a lease: plain requests.
        let plain = Ctrd {
            lease: None,
            ..self.clone()
        };
        let r = CreateRequest {
            id: id.to_string(),
            labels: HashMap::from([(EXPIRE_LABEL.to_string(), expire)]),
        };
        let mut c = LeasesClient::new(self.ch.clone());
        match c.create(plain.req(r.clone())).await {
            Ok(_) => return Ok(lease),
            Err(s) if s.code() == Code::AlreadyExists => {}
            Err(s) => return Err(ctx(format!("create lease {id}"))(s)),
        }
        self.delete_lease(&lease, false).await?;
        c.create(plain.req(r))
            .await
            .map_err(ctx(format!("create lease {id}")))?;
        Ok(lease)
    }

    /// A lease ID no other podrun command uses: `podrun-PURPOSE-TIME-PID`.
    pub fn unique_lease_id(purpose: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        format!(
            "podrun-{purpose}-{}{:09}-{}",
            now.as_secs(),
            now.subsec_nanos(),
            std::process::id()
        )
    }

    /// Deletes `lease`; with `sync`, containerd also runs its garbage
    /// collection before answering, so what only the lease held is gone
    /// on return. A lease already gone is fine.
    pub async fn delete_lease(&self, lease: &Lease, sync: bool) -> Result<()> {
        let mut c = LeasesClient::new(self.ch.clone());
        let plain = Ctrd {
            lease: None,
            ..self.clone()
        };
        let r = DeleteRequest {
            id: lease.id.clone(),
            sync,
        };
        match c.delete(plain.req(r)).await {
            Ok(_) => Ok(()),
            Err(s) if missing(&s) => Ok(()),
            Err(s) => Err(ctx(format!("delete lease {}", lease.id))(s)),
        }
    }

    /// Deletes `lease`, only warning on failure: what it held is
    /// referenced by then, and the lease expires by itself.
    pub async fn release_lease(&self, lease: &Lease) {
        if let Err(e) = self.delete_lease(lease, false).await {
            tracing::warn!("podrun: {e:#} (it expires by itself)");
        }
    }
}

/// `secs` since the epoch as RFC 3339 in UTC (`2006-01-02T15:04:05Z`),
/// what Go's `time.Parse(time.RFC3339, …)` in containerd's GC reads.
pub fn rfc3339_utc(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::rfc3339_utc;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        // `date -u -d @951782400`: the leap day of a century leap year.
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(rfc3339_utc(4_107_542_400), "2100-03-01T00:00:00Z");
    }
}
