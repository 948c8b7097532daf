//! The leases the agent holds: every other key under the prefix, as the
//! list and then the watch told them, indexed by the subnets each names.
//!
//! Two keys can name one subnet for a while (a node that raced another for
//! it, a key written by hand): the kernel holds one route for it, the last
//! one programmed. When that key goes, the subnet is programmed again from
//! a key still naming it, found here, instead of left without a route.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use crate::etcd::Kv;
use crate::lease::parse_key;

#[derive(Default)]
pub struct Held {
    leases: BTreeMap<String, Kv>,
    by_subnet: BTreeMap<IpNet, BTreeSet<String>>,
}

/// The subnets lease key `key` names (none for a key that is no lease).
pub fn subnets_of(key: &str) -> Vec<IpNet> {
    parse_key(key)
        .map(|k| [k.get(false), k.get(true)].into_iter().flatten().collect())
        .unwrap_or_default()
}

impl Held {
    /// Hold exactly `kvs`.
    pub fn replace(&mut self, kvs: impl IntoIterator<Item = Kv>) {
        *self = Held::default();
        for kv in kvs {
            self.insert(kv);
        }
    }

    pub fn insert(&mut self, kv: Kv) {
        for s in subnets_of(&kv.key) {
            self.by_subnet.entry(s).or_default().insert(kv.key.clone());
        }
        self.leases.insert(kv.key.clone(), kv);
    }

    pub fn remove(&mut self, key: &str) {
        if self.leases.remove(key).is_none() {
            return;
        }
        for s in subnets_of(key) {
            if let Some(keys) = self.by_subnet.get_mut(&s) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_subnet.remove(&s);
                }
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Kv> {
        self.leases.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.leases.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Kv)> {
        self.leases.iter()
    }

    /// The keys held that name `subnet`.
    pub fn naming(&self, subnet: &IpNet) -> impl Iterator<Item = &String> {
        self.by_subnet.get(subnet).into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::Held;
    use crate::etcd::Kv;

    fn kv(key: &str) -> Kv {
        Kv {
            key: format!("/coreos.com/network/subnets/{key}"),
            value: Vec::new(),
            mod_revision: 1,
            lease: 0,
        }
    }

    #[test]
    fn keys_are_found_by_the_subnets_they_name() {
        let mut h = Held::default();
        h.insert(kv("10.2.3.0-24&fd42::-64"));
        h.insert(kv("10.2.4.0-24&fd42::-64"));
        h.insert(kv("junk"));
        let v6 = "fd42::/64".parse().unwrap();
        assert_eq!(h.naming(&v6).count(), 2);
        h.remove("/coreos.com/network/subnets/10.2.3.0-24&fd42::-64");
        let left: Vec<&String> = h.naming(&v6).collect();
        assert_eq!(left, ["/coreos.com/network/subnets/10.2.4.0-24&fd42::-64"]);
        assert_eq!(h.len(), 2);
        h.replace([kv("10.2.5.0-24")]);
        assert_eq!((h.len(), h.naming(&v6).count()), (1, 0));
    }
}
