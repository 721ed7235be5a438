//! The guard on tenant-supplied URLs (Creatio instance, delivery URL): they
//! must not reach private, loopback or link-local addresses unless the
//! operator allows those networks (`CASEBRIDGE_ALLOW_PRIVATE_TARGETS`).
//!
//! Enforced twice: when a URL is saved ([`check_url`], for a clear error),
//! and on every connection by the HTTP client's DNS resolver
//! ([`GuardedResolver`]), so a name that later resolves elsewhere (DNS
//! rebinding) is still refused.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which networks are allowed although private.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    allowed: Arc<Vec<IpNet>>,
}

impl TargetPolicy {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        TargetPolicy {
            allowed: Arc::new(allowed),
        }
    }

    /// Whether requests may go to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_private(ip) || self.allowed.iter().any(|n| n.contains(&ip))
    }

    fn refusal(&self, host: &str, ip: IpAddr) -> String {
        format!(
            "{host} resolves to {ip}, a private, loopback or link-local address; casebridge does \
             not send requests there unless the operator allows that network with \
             CASEBRIDGE_ALLOW_PRIVATE_TARGETS (e.g. {}/32)",
            ip
        )
    }

    /// Checks a URL's host now: literal addresses directly, names by
    /// resolving them. `Err` is a sentence for the person who typed it.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url} is not a URL: {e}"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("{url} has no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return if self.permits(ip) {
                Ok(())
            } else {
                Err(self.refusal(host, ip))
            };
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| {
                format!("the host name {host} could not be resolved ({e}); check the spelling")
            })?
            .collect();
        // As the resolver does: refused addresses are skipped, so the URL
        // works as long as one permitted address remains.
        match (addrs.iter().any(|a| self.permits(a.ip())), addrs.first()) {
            (false, Some(bad)) => Err(self.refusal(host, bad.ip())),
            _ => Ok(()),
        }
    }
}

/// Whether an address is one a tenant must not make casebridge call.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// A DNS resolver for reqwest that drops refused addresses.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: TargetPolicy,
}

impl GuardedResolver {
    pub fn new(policy: TargetPolicy) -> Self {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if permitted.is_empty() {
                if let Some(first) = all.first() {
                    return Err(policy.refusal(&host, first.ip()).into());
                }
            }
            let addrs: Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_recognised() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn allowed_networks_open_a_hole() {
        let closed = TargetPolicy::default();
        let e = closed.check_url("http://127.0.0.1:8088").await.unwrap_err();
        assert!(e.contains("CASEBRIDGE_ALLOW_PRIVATE_TARGETS"), "{e}");
        assert!(closed.check_url("http://[::1]:80/x").await.is_err());
        let open = TargetPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(open.check_url("http://127.0.0.1:8088").await.is_ok());
        assert!(open.check_url("http://localhost:8088").await.is_ok());
    }
}
