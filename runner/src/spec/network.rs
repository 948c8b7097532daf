//! The pod's network identity in the spec: checks of `dnsPolicy` /
//! `dnsConfig` (Kubernetes' `validatePodDNSConfig` rules and limits, see
//! kubernetes `pkg/apis/core/validation`), of `hostNetwork` ports and of
//! `bandwidth`; and the names derived from the spec (namespace, FQDN
//! domain, where a bandwidth limit was written).

use super::policy::DnsPolicy;
use super::types::{PodSpec, SpecError};

/// At most this many nameservers: glibc's `MAXNS`.
pub const MAX_DNS_NAMESERVERS: usize = 3;
/// At most this many search domains (Kubernetes' limit since its expanded
/// DNS config went GA in 1.28; glibc 2.26 lifted its old limit of 6).
pub const MAX_DNS_SEARCHES: usize = 32;
/// At most this many characters in the search line, spaces included.
pub const MAX_DNS_SEARCH_CHARS: usize = 2048;
/// The longest DNS name (RFC 1123 subdomain): a longer search domain makes
/// some resolvers (glibc 2.28) abort, so kubelet drops it.
pub const MAX_DNS_NAME: usize = 253;

/// Bandwidth limits kubelet accepts (`validateBandwidthIsReasonable`):
/// 1 kbit/s to 1 Pbit/s.
pub const MIN_BANDWIDTH: u64 = 1_000;
pub const MAX_BANDWIDTH: u64 = 1_000_000_000_000_000;

/// The annotations a manifest gives bandwidth limits in.
pub const INGRESS_ANNOTATION: &str = "kubernetes.io/ingress-bandwidth";
pub const EGRESS_ANNOTATION: &str = "kubernetes.io/egress-bandwidth";

/// Whether `s` is an RFC 1123 subdomain: dot-separated labels of lowercase
/// letters, digits and '-', alphanumeric at both ends, 253 characters at
/// most (Kubernetes' `IsDNS1123Subdomain`).
pub fn is_dns_subdomain(s: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    s.len() <= MAX_DNS_NAME && s.split('.').all(label_ok)
}

impl PodSpec {
    /// The namespace the pod is in for CNI (`K8S_POD_NAMESPACE`) and its
    /// FQDN: the manifest's `metadata.namespace`, else `default_ns` (the
    /// containerd namespace podrun runs in).
    pub fn pod_namespace<'a>(&'a self, default_ns: &'a str) -> &'a str {
        self.kube
            .as_ref()
            .map_or(default_ns, |k| k.namespace.as_str())
    }

    /// The domain of the pod's FQDN, `<subdomain>.<namespace>.svc.<cluster
    /// domain>`, when it has a subdomain (kubelet's
    /// `GeneratePodHostNameAndDomain`).
    pub fn fqdn_domain(&self, default_ns: &str, cluster_domain: &str) -> Option<String> {
        let sub = self.subdomain.as_deref()?;
        Some(format!(
            "{sub}.{}.svc.{cluster_domain}",
            self.pod_namespace(default_ns)
        ))
    }

    /// Where the pod's bandwidth limit is written, for errors: the
    /// manifest annotation (ingress first) or podrun's `bandwidth`.
    pub fn bandwidth_field(&self) -> String {
        let bw = self.bandwidth.unwrap_or_default();
        match (&self.kube, bw.ingress_rate) {
            (Some(_), Some(_)) => format!("metadata.annotations.{INGRESS_ANNOTATION}"),
            (Some(_), None) => format!("metadata.annotations.{EGRESS_ANNOTATION}"),
            (None, _) => "bandwidth".into(),
        }
    }

    pub(super) fn validate_network(&self) -> Result<(), SpecError> {
        self.validate_dns()?;
        if self.host_network {
            self.validate_host_network_ports()?;
        }
        self.validate_bandwidth()
    }

    fn validate_dns(&self) -> Result<(), SpecError> {
        let none = self.dns_policy == Some(DnsPolicy::None);
        let Some(c) = &self.dns_config else {
            if none {
                return Err(SpecError::new(
                    "dnsConfig",
                    "is required when dnsPolicy is None",
                ));
            }
            return Ok(());
        };
        if none && c.nameservers.is_empty() {
            return Err(SpecError::new(
                "dnsConfig.nameservers",
                "needs at least one nameserver when dnsPolicy is None",
            ));
        }
        if c.nameservers.len() > MAX_DNS_NAMESERVERS {
            return Err(SpecError::new(
                "dnsConfig.nameservers",
                format!(
                    "{} nameservers, at most {MAX_DNS_NAMESERVERS} are allowed",
                    c.nameservers.len()
                ),
            ));
        }
        if c.searches.len() > MAX_DNS_SEARCHES {
            return Err(SpecError::new(
                "dnsConfig.searches",
                format!(
                    "{} search domains, at most {MAX_DNS_SEARCHES} are allowed",
                    c.searches.len()
                ),
            ));
        }
        let chars = c.searches.join(" ").len();
        if chars > MAX_DNS_SEARCH_CHARS {
            return Err(SpecError::new(
                "dnsConfig.searches",
                format!("{chars} characters, at most {MAX_DNS_SEARCH_CHARS} (spaces included)"),
            ));
        }
        for (i, s) in c.searches.iter().enumerate() {
            // A trailing dot (an absolute name) is fine.
            if !is_dns_subdomain(s.strip_suffix('.').unwrap_or(s)) {
                return Err(SpecError::new(
                    format!("dnsConfig.searches[{i}]"),
                    format!("{s:?} is not a DNS name (lowercase RFC 1123 subdomain)"),
                ));
            }
        }
        for (i, o) in c.options.iter().enumerate() {
            if o.name.is_empty() || o.name.contains(char::is_whitespace) {
                return Err(SpecError::new(
                    format!("dnsConfig.options[{i}].name"),
                    format!("{:?} is not an option name", o.name),
                ));
            }
            if o.value
                .as_deref()
                .is_some_and(|v| v.contains(char::is_whitespace))
            {
                return Err(SpecError::new(
                    format!("dnsConfig.options[{i}].value"),
                    "must not contain whitespace",
                ));
            }
        }
        Ok(())
    }

    /// A hostNetwork pod's containers bind the node's ports themselves:
    /// a hostPort must be the containerPort (Kubernetes' validation), and
    /// a hostIP cannot be honoured (nothing translates addresses).
    fn validate_host_network_ports(&self) -> Result<(), SpecError> {
        for (i, p) in self.ports.iter().enumerate() {
            if let Some(hp) = p.host_port.filter(|&h| h != p.container_port) {
                return Err(SpecError::new(
                    format!("ports[{i}].hostPort"),
                    format!(
                        "{hp} must equal containerPort ({}) when hostNetwork is true",
                        p.container_port
                    ),
                ));
            }
            if p.host_ip.is_some() {
                return Err(SpecError::new(
                    format!("ports[{i}].hostIP"),
                    "cannot be honoured when hostNetwork is true (the containers bind \
                     the node's addresses themselves)",
                ));
            }
        }
        Ok(())
    }

    fn validate_bandwidth(&self) -> Result<(), SpecError> {
        let Some(bw) = self.bandwidth else {
            return Ok(());
        };
        if self.host_network {
            return Err(SpecError::new(
                "bandwidth",
                "cannot be applied to a hostNetwork pod: it has no interface of its own",
            ));
        }
        for (field, rate) in [
            ("ingressRate", bw.ingress_rate),
            ("egressRate", bw.egress_rate),
        ] {
            if let Some(r) = rate.filter(|r| !(MIN_BANDWIDTH..=MAX_BANDWIDTH).contains(r)) {
                return Err(SpecError::new(
                    format!("bandwidth.{field}"),
                    format!("{r} bits/s is not between 1k and 1P"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Result<PodSpec, SpecError> {
        PodSpec::from_yaml(&format!(
            "name: p\ncontainers: [{{name: c, image: i}}]\n{extra}"
        ))
    }

    fn err(extra: &str) -> String {
        spec(extra).unwrap_err().to_string()
    }

    #[test]
    fn dns_policy_none_needs_a_config_with_a_nameserver() {
        assert!(err("dnsPolicy: None\n").starts_with("dnsConfig: is required"));
        assert!(err("dnsPolicy: None\ndnsConfig: {searches: [a]}\n")
            .starts_with("dnsConfig.nameservers: needs at least one"));
        spec("dnsPolicy: None\ndnsConfig: {nameservers: [192.0.2.1]}\n").unwrap();
        spec("dnsPolicy: Default\n").unwrap();
        spec("dnsConfig: {searches: [a.example.]}\n").unwrap();
    }

    #[test]
    fn dns_config_limits_are_kubernetes_ones() {
        let e = err("dnsConfig: {nameservers: [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4]}\n");
        assert!(e.starts_with("dnsConfig.nameservers: 4 nameservers"), "{e}");
        let many: Vec<String> = (0..33).map(|i| format!("d{i}")).collect();
        let e = err(&format!("dnsConfig: {{searches: [{}]}}\n", many.join(",")));
        assert!(
            e.starts_with("dnsConfig.searches: 33 search domains"),
            "{e}"
        );
        let long: Vec<String> = (0..9).map(|i| format!("{i}{}", "a".repeat(240))).collect();
        let e = err(&format!("dnsConfig: {{searches: [{}]}}\n", long.join(",")));
        assert!(e.starts_with("dnsConfig.searches: 2177 characters"), "{e}");
        let e = err("dnsConfig: {searches: [ok, Bad_Name]}\n");
        assert!(e.starts_with("dnsConfig.searches[1]: \"Bad_Name\""), "{e}");
        let e = err("dnsConfig: {options: [{name: ''}]}\n");
        assert!(e.starts_with("dnsConfig.options[0].name"), "{e}");
        let e = err("dnsConfig: {options: [{name: ndots, value: '1 2'}]}\n");
        assert!(e.starts_with("dnsConfig.options[0].value"), "{e}");
    }

    #[test]
    fn host_network_ports_bind_the_node_directly() {
        spec(
            "hostNetwork: true\nports: [{containerPort: 80, hostPort: 80}, {containerPort: 81}]\n",
        )
        .unwrap();
        let e = err("hostNetwork: true\nports: [{containerPort: 80, hostPort: 8080}]\n");
        assert!(
            e.starts_with("ports[0].hostPort: 8080 must equal containerPort (80)"),
            "{e}"
        );
        let e = err(
            "hostNetwork: true\nports: [{containerPort: 80, hostPort: 80, hostIP: 192.0.2.1}]\n",
        );
        assert!(e.starts_with("ports[0].hostIP: cannot be honoured"), "{e}");
        // Without hostNetwork the port is translated: any hostPort.
        spec("ports: [{containerPort: 80, hostPort: 8080}]\n").unwrap();
    }

    #[test]
    fn bandwidth_is_checked_and_refused_for_host_network() {
        spec("bandwidth: {ingressRate: 1000000}\n").unwrap();
        let e = err("bandwidth: {egressRate: 10}\n");
        assert!(e.starts_with("bandwidth.egressRate: 10 bits/s"), "{e}");
        let e = err("hostNetwork: true\nbandwidth: {ingressRate: 1000000}\n");
        assert!(
            e.starts_with("bandwidth: cannot be applied to a hostNetwork pod"),
            "{e}"
        );
    }

    #[test]
    fn names_derived_from_the_spec() {
        let s = spec("subdomain: sub\nbandwidth: {egressRate: 1000000}\n").unwrap();
        assert_eq!(s.pod_namespace("podrun-ns"), "podrun-ns");
        assert_eq!(
            s.fqdn_domain("podrun-ns", "cluster.local").as_deref(),
            Some("sub.podrun-ns.svc.cluster.local")
        );
        assert_eq!(s.bandwidth_field(), "bandwidth");
        let mut k = s.clone();
        k.kube = Some(crate::spec::KubeMeta {
            namespace: "shop".into(),
            ..Default::default()
        });
        assert_eq!(k.pod_namespace("podrun-ns"), "shop");
        assert_eq!(
            k.fqdn_domain("x", "corp.example").as_deref(),
            Some("sub.shop.svc.corp.example")
        );
        assert_eq!(
            k.bandwidth_field(),
            "metadata.annotations.kubernetes.io/egress-bandwidth"
        );
        assert!(spec("").unwrap().fqdn_domain("x", "y").is_none());
        assert!(is_dns_subdomain("a-1.b") && !is_dns_subdomain("a..b") && !is_dns_subdomain("-a"));
    }
}
