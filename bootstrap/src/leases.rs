//! Leases as `status` and `doctor` list them: every key under
//! `<prefix>/subnets/`, its value decoded as flanneld does (or why not),
//! and the time left on its etcd lease (none: a reservation).

use anyhow::Result;

use crate::etcd::{Etcd, Kv};
use crate::lease::{parse_key, Attrs, SubnetKey};

/// One key under `<prefix>/subnets/`.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The etcd key.
    pub path: String,
    /// The subnets it names (`None`: not a lease key).
    pub key: Option<SubnetKey>,
    /// The value, or what is wrong with it.
    pub attrs: Result<Attrs, String>,
    /// etcd lease id; 0 for a reservation (written without a TTL).
    pub lease_id: i64,
    /// Seconds left (`None`: a reservation, or expired).
    pub ttl: Option<i64>,
}

impl Listed {
    pub fn from_kv(kv: &Kv) -> Listed {
        Listed {
            path: kv.key.clone(),
            key: parse_key(&kv.key),
            attrs: Attrs::parse(&kv.value),
            lease_id: kv.lease,
            ttl: None,
        }
    }

    /// A key an operator wrote without a TTL: never expires, never renewed.
    pub fn is_reservation(&self) -> bool {
        self.lease_id == 0
    }

    /// `reserved (no TTL)`, `expired`, or `5h02m10s`.
    pub fn expiry_text(&self) -> String {
        match (self.lease_id, self.ttl) {
            (0, _) => "reserved (no TTL)".into(),
            (_, None) => "expired".into(),
            (_, Some(t)) => format!("{}h{:02}m{:02}s", t / 3600, t / 60 % 60, t % 60),
        }
    }

    /// The value's problem or the key's, if any.
    pub fn problem(&self) -> Option<String> {
        if self.key.is_none() {
            return Some("the key does not name a subnet (flanneld ignores it)".into());
        }
        self.attrs
            .as_ref()
            .err()
            .map(|e| format!("value is not a lease: {e}"))
    }

    /// The decoded value, when it decodes.
    pub fn attrs(&self) -> Option<&Attrs> {
        self.attrs.as_ref().ok()
    }

    /// The subnets, or an empty key when it names none.
    pub fn subnets(&self) -> SubnetKey {
        self.key.unwrap_or(SubnetKey { v4: None, v6: None })
    }
}

/// Every key under `prefix`, with the time left on each etcd lease.
pub fn list(etcd: &mut Etcd, prefix: &str) -> Result<Vec<Listed>> {
    let mut out: Vec<Listed> = etcd
        .get_prefix(prefix)?
        .iter()
        .map(Listed::from_kv)
        .collect();
    for l in &mut out {
        if l.lease_id != 0 {
            l.ttl = etcd.lease_ttl(l.lease_id)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, lease: i64) -> Kv {
        Kv {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            mod_revision: 1,
            lease,
        }
    }

    #[test]
    fn reservations_and_problems() {
        let l = Listed::from_kv(&kv(
            "/p/subnets/0.0.0.0-0&fd00:0:0:3::-64",
            r#"{"PublicIP":"0.0.0.0","PublicIPv6":"fd00::11","BackendType":"host-gw"}"#,
            0,
        ));
        assert!(l.is_reservation());
        assert_eq!(l.expiry_text(), "reserved (no TTL)");
        assert_eq!(l.problem(), None);
        assert_eq!(l.subnets().v4, None);
        let mut l = Listed::from_kv(&kv("/p/subnets/garbage", "{}", 7));
        assert!(l.problem().unwrap().contains("does not name a subnet"));
        assert_eq!(l.expiry_text(), "expired");
        l.ttl = Some(3725);
        assert_eq!(l.expiry_text(), "1h02m05s");
        let l = Listed::from_kv(&kv("/p/subnets/10.2.3.0-24", "nope", 7));
        assert!(l.problem().unwrap().starts_with("value is not a lease"));
    }
}
