//! Refuses delivery to addresses that are not globally routable: loopback, private, link-local
//! (cloud metadata), CGNAT, documentation, multicast, reserved. Checked on every resolved address
//! the client may connect to, and on IP-literal hosts before any request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why `ip` is not a permitted destination, or `None` when it is a global unicast address.
pub fn non_global_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let reason = match (a, b, c) {
        (0, _, _) => "this-network address (0.0.0.0/8)",
        (10, _, _) => "private address (10.0.0.0/8)",
        (100, 64..=127, _) => "shared CGNAT address (100.64.0.0/10)",
        (127, _, _) => "loopback address",
        (169, 254, _) => "link-local address (169.254.0.0/16, cloud metadata)",
        (172, 16..=31, _) => "private address (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol address (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation address",
        (192, 88, 99) => "6to4 relay address (192.88.99.0/24)",
        (192, 168, _) => "private address (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking address (198.18.0.0/15)",
        (224..=239, _, _) => "multicast address",
        (240..=255, _, _) => "reserved or broadcast address",
        _ => return None,
    };
    Some(reason)
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified address (::)");
    }
    if ip.is_loopback() {
        return Some("loopback address (::1)");
    }
    let seg = ip.segments();
    // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses reach IPv4 hosts.
    if seg[..5] == [0, 0, 0, 0, 0] && (seg[5] == 0xffff || seg[5] == 0) {
        let [a, b] = seg[6].to_be_bytes();
        let [c, d] = seg[7].to_be_bytes();
        return v4_reason(Ipv4Addr::new(a, b, c, d))
            .map(|_| "IPv4-mapped or -compatible address of a non-global IPv4 address")
            .or(if seg[5] == 0 {
                Some("IPv4-compatible address (deprecated)")
            } else {
                None
            });
    }
    let reason = match seg[0] {
        0x0064 if seg[1] == 0xff9b => "NAT64 address (64:ff9b::/96)",
        0x0100 if seg[1..4] == [0, 0, 0] => "discard-only address (100::/64)",
        0x2001 if seg[1] == 0x0db8 => "documentation address (2001:db8::/32)",
        0x2001 if seg[1] < 0x0200 => "IETF protocol address (2001::/23)",
        0x2002 => "6to4 address (2002::/16)",
        0x3fff if seg[1] < 0x1000 => "documentation address (3fff::/20)",
        s if (s & 0xfe00) == 0xfc00 => "unique local address (fc00::/7)",
        s if (s & 0xffc0) == 0xfe80 => "link-local address (fe80::/10)",
        s if (s & 0xffc0) == 0xfec0 => "site-local address (fec0::/10)",
        s if (s & 0xff00) == 0xff00 => "multicast address",
        _ => return None,
    };
    Some(reason)
}

/// The error a guarded resolver returns; the delivery client finds it in the error chain.
#[derive(Debug, thiserror::Error)]
#[error("destination refused: {host} resolves only to non-global addresses ({reason})")]
pub struct RefusedDestination {
    pub host: String,
    pub reason: &'static str,
}

/// DNS resolution that drops non-global addresses, so the client connects only to an address
/// that was checked (no window for DNS rebinding between check and connect).
#[derive(Debug, Default, Clone)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_reason = "no address";
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match non_global_reason(addr.ip()) {
                    Some(reason) => {
                        first_reason = reason;
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(RefusedDestination {
                        host,
                        reason: first_reason,
                    });
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> bool {
        non_global_reason(text.parse().unwrap()).is_some()
    }

    #[test]
    fn refuses_non_global_ipv4() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.10",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
    }

    #[test]
    fn allows_global_ipv4() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "52.94.236.248",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.254",
        ] {
            assert!(!refused(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn refuses_non_global_ipv6() {
        for ip in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::8.8.8.8",
            "64:ff9b::a9fe:a9fe",
            "100::1",
            "2001:db8::1",
            "2001::1",
            "2002:a9fe:a9fe::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "3fff::1",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
    }

    #[test]
    fn allows_global_ipv6() {
        for ip in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
        ] {
            assert!(!refused(ip), "{ip} should be allowed");
        }
    }
}
