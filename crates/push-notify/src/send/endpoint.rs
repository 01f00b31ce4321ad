//! Where a Web Push subscription may make the server send: a subscription's endpoint is a URL
//! the *browser* chose, so anyone signed in could otherwise point the server at its own
//! network (loopback, private ranges, the cloud's metadata service).
//!
//! The policy: `https` only, and only to public addresses, checked when a subscription is
//! activated ([`check`]) and again at every connection (the HTTP client's
//! resolver, so a name that resolves elsewhere later — DNS rebinding — still cannot reach a
//! private address). Redirects are not followed. Tests and private deployments can relax it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::PushError;

/// What endpoints a Web Push sender accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointPolicy {
    /// Private, loopback and other non-public addresses are allowed (tests, a push service on
    /// one's own network).
    pub allow_private: bool,
    /// Plain `http` endpoints are allowed.
    pub allow_http: bool,
}

impl EndpointPolicy {
    /// Public `https` endpoints only: the default.
    pub fn strict() -> Self {
        Self::default()
    }

    /// Anything: for tests against a local push service.
    pub fn permissive() -> Self {
        Self {
            allow_private: true,
            allow_http: true,
        }
    }
}

fn refused(reason: impl Into<String>) -> PushError {
    PushError::Invalid {
        field: "endpoint",
        reason: reason.into(),
    }
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local (cloud metadata
/// lives there), shared (CGNAT), documentation, benchmarking, multicast, reserved or
/// unspecified; IPv6 forms that embed an IPv4 address are judged by it.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [_, _, _, _, _, _, hi, lo] = segments;
        return is_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    if segments[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::from(
            (u32::from(segments[1]) << 16) | u32::from(segments[2]),
        ));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x2001 && segments[1] < 0x0200) // IETF protocol assignments (Teredo …)
        || segments[..4] == [0x0100, 0, 0, 0] // discard
        || segments[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
}

/// Checks an endpoint URL against `policy`, resolving its host: every address it resolves to
/// must be allowed.
pub async fn check(endpoint: &str, policy: EndpointPolicy) -> Result<(), PushError> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| refused(e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        _ => return Err(refused("must be an https URL")),
    }
    if policy.allow_private {
        return Ok(());
    }
    let host = url.host().ok_or_else(|| refused("has no host"))?;
    let addresses: Vec<IpAddr> = match host {
        url::Host::Ipv4(v4) => vec![IpAddr::V4(v4)],
        url::Host::Ipv6(v6) => vec![IpAddr::V6(v6)],
        url::Host::Domain(name) => {
            let port = url.port_or_known_default().unwrap_or(443);
            tokio::net::lookup_host((name, port))
                .await
                .map_err(|_| refused("its host does not resolve"))?
                .map(|a| a.ip())
                .collect()
        }
    };
    if addresses.is_empty() || !addresses.into_iter().all(is_public) {
        return Err(refused("must be a public address"));
    }
    Ok(())
}

/// A resolver that only hands out public addresses: the HTTP client of a strict sender cannot
/// connect anywhere else, whatever a name resolves to by the time it connects.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:c0a8:0101::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "142.250.196.100",
            "2607:f8b0:4004:c07::5f",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn endpoints_must_be_https_to_public_addresses() {
        let strict = EndpointPolicy::strict();
        for bad in [
            "http://8.8.8.8/push",
            "https://127.0.0.1/push",
            "https://[::1]:8443/push",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.5/x",
            "https://localhost/push",
            "ftp://8.8.8.8/x",
            "not a url",
        ] {
            assert!(check(bad, strict).await.is_err(), "{bad}");
        }
        assert!(check("https://8.8.8.8/push", strict).await.is_ok());
        let permissive = EndpointPolicy::permissive();
        assert!(check("http://127.0.0.1:9/push", permissive).await.is_ok());
    }
}
