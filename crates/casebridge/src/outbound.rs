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
        let block = special_purpose_block(ip).unwrap_or("special-purpose");
        let width = if ip.is_ipv4() { 32 } else { 128 };
        format!(
            "{host} resolves to {ip}, a {block} address, not a public one; casebridge does not \
             send requests there unless the operator allows that network with \
             CASEBRIDGE_ALLOW_PRIVATE_TARGETS (e.g. {ip}/{width})"
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

/// Networks that are not globally reachable unicast, from IANA's IPv4 and
/// IPv6 Special-Purpose Address Registries (plus multicast), with the
/// registry's name. A few registry entries that are globally reachable
/// (AS112, AMT, PCP/TURN anycast) sit inside larger blocks refused here;
/// Creatio and chat platforms do not live there.
const SPECIAL_PURPOSE: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\""),
    ("10.0.0.0/8", "private-use"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private-use"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
    ("192.168.0.0/16", "private-use"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    (
        "240.0.0.0/4",
        "reserved (and the limited broadcast address)",
    ),
    (
        "::/96",
        "IPv4-compatible (deprecated), the unspecified and loopback addresses",
    ),
    ("::ffff:0:0:0/96", "IPv4-translated (SIIT)"),
    (
        "64:ff9b::/96",
        "IPv4/IPv6 translation (NAT64 well-known prefix)",
    ),
    ("64:ff9b:1::/48", "IPv4/IPv6 translation (local-use NAT64)"),
    ("100::/64", "discard-only"),
    (
        "2001::/23",
        "IETF protocol assignments (Teredo, benchmarking, ORCHID)",
    ),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6) SIDs"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
];

fn special_purpose() -> &'static [(IpNet, &'static str)] {
    static NETS: std::sync::LazyLock<Vec<(IpNet, &'static str)>> = std::sync::LazyLock::new(|| {
        SPECIAL_PURPOSE
            .iter()
            .map(|(net, name)| (net.parse().expect("a valid CIDR"), *name))
            .collect()
    });
    &NETS
}

/// Why `ip` is one a tenant must not make casebridge call (the registry's
/// name for its block), or `None` for a globally reachable address.
/// IPv4-mapped (`::ffff:a.b.c.d`) and 6to4 (`2002:aabb:ccdd::/48`)
/// addresses are judged by the IPv4 address they carry, which is where the
/// packets go. NAT64 prefixes are refused whole: an IPv6-only deployment
/// that reaches Creatio through NAT64 allows `64:ff9b::/96` with
/// `CASEBRIDGE_ALLOW_PRIVATE_TARGETS`.
pub fn special_purpose_block(ip: IpAddr) -> Option<&'static str> {
    if let IpAddr::V6(v6) = ip {
        if let Some(v4) = v6.to_ipv4_mapped() {
            return special_purpose_block(IpAddr::V4(v4));
        }
        let s = v6.segments();
        if s[0] == 0x2002 {
            let v4 = std::net::Ipv4Addr::new(
                (s[1] >> 8) as u8,
                s[1] as u8,
                (s[2] >> 8) as u8,
                s[2] as u8,
            );
            return special_purpose_block(IpAddr::V4(v4));
        }
    }
    special_purpose()
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, name)| *name)
}

/// Whether an address is one a tenant must not make casebridge call.
pub fn is_private(ip: IpAddr) -> bool {
    special_purpose_block(ip).is_some()
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
                    // A typed refusal: the Creatio client reports it as
                    // AddressRefused (needs a person), not as a transient
                    // connection failure to retry for days.
                    let refused = creatio::AddressRefused(policy.refusal(&host, first.ip()));
                    return Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>);
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
    fn every_special_purpose_block_is_refused_at_its_edges() {
        for (net, name) in special_purpose() {
            let first = net.network();
            let last = net.broadcast();
            assert!(is_private(first), "{first} ({name})");
            assert!(is_private(last), "{last} ({name})");
        }
    }

    #[test]
    fn ipv6_forms_that_carry_an_ipv4_address_are_refused() {
        for (ip, why) in [
            ("::127.0.0.1", "IPv4-compatible"),
            ("::8.8.8.8", "IPv4-compatible, even public"),
            ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
            ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("::ffff:0:127.0.0.1", "SIIT IPv4-translated"),
            ("::ffff:0:8.8.8.8", "SIIT IPv4-translated, even public"),
            ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
            ("::ffff:10.0.0.1", "IPv4-mapped private"),
            ("2002:7f00:1::1", "6to4 of 127.0.0.1"),
            ("2002:a9fe:a9fe::1", "6to4 of 169.254.169.254"),
            ("2001::1", "Teredo"),
            ("fec0::1", "site-local"),
            ("100::1", "discard-only"),
            ("2001:db8::1", "documentation"),
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}: {why}");
        }
        for ip in ["::ffff:8.8.8.8", "2002:808:808::1", "2a00:1450::1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn ipv4_special_purpose_blocks_are_refused() {
        for ip in [
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "192.88.99.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "198.20.0.1", "203.0.114.1", "223.255.255.255"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn literal_ipv6_urls_in_the_three_forms_are_refused_with_the_block_named() {
        let closed = TargetPolicy::default();
        for (url, block) in [
            ("http://[::127.0.0.1]:8080/", "IPv4-compatible"),
            ("http://[64:ff9b::7f00:1]/", "NAT64"),
            ("https://[::ffff:0:7f00:1]/", "SIIT"),
        ] {
            let e = closed.check_url(url).await.unwrap_err();
            assert!(e.contains(block), "{url}: {e}");
        }
    }

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
