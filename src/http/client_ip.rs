//! Who a request comes from, as an address, for the limits kept per client (websockets,
//! sign-in attempts).
//!
//! The TCP peer is the client unless it is one of the configured `trusted_proxies`; then
//! the client is the right-most address in `X-Forwarded-For` that is not itself a trusted
//! proxy (each proxy appends the address it heard from, so addresses to the left of the
//! last untrusted one were written by the client and prove nothing). Without trusted
//! proxies the header is ignored: a client cannot pick its own address to dodge a limit.
//!
//! The limits key a client by its IPv4 address, or by the /64 of its IPv6 address: one
//! subscriber usually gets a whole /64, so keying by the full address would give an
//! attacker 2^64 fresh allowances. IPv4-mapped IPv6 addresses count as IPv4.

use std::net::{IpAddr, Ipv6Addr};

use actix_web::HttpRequest;
use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct ClientIp {
    trusted: Vec<IpNet>,
}

impl ClientIp {
    /// From `trusted_proxies`: comma-separated addresses or networks (`10.0.0.0/8`).
    pub fn parse(list: &str) -> Result<ClientIp, String> {
        let trusted = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("`trusted_proxies` entry {s:?} is not an IP address or network")
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(ClientIp { trusted })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The key the per-client limits count this request's client by (unspecified if the
    /// peer's address is unknown, as in request tests).
    pub fn of(&self, req: &HttpRequest) -> IpAddr {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        limit_key(
            self.resolve(
                peer.to_canonical(),
                req.headers()
                    .get_all("x-forwarded-for")
                    .filter_map(|v| v.to_str().ok()),
            ),
        )
    }

    fn resolve<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
                Ok(ip) if self.trusts(ip) => continue,
                Ok(ip) => return ip,
                // Garbage where an address should be: stop trusting the chain here.
                Err(_) => return peer,
            }
        }
        peer
    }
}

/// An IPv4 address as it is; an IPv6 address's /64.
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let none = ClientIp::parse("").unwrap();
        assert_eq!(
            none.resolve(ip("10.0.0.9"), ["1.2.3.4"].into_iter()),
            ip("10.0.0.9")
        );
        let proxies = ClientIp::parse("10.0.0.1, 10.0.0.2").unwrap();
        // The client wrote 6.6.6.6 itself; the proxy appended the address it heard from.
        assert_eq!(
            proxies.resolve(ip("10.0.0.1"), ["6.6.6.6, 1.2.3.4, 10.0.0.2"].into_iter()),
            ip("1.2.3.4")
        );
        assert_eq!(
            proxies.resolve(ip("10.0.0.1"), ["not-an-ip"].into_iter()),
            ip("10.0.0.1")
        );
        assert_eq!(
            proxies.resolve(ip("10.0.0.1"), std::iter::empty()),
            ip("10.0.0.1")
        );
        assert!(ClientIp::parse("10.0.0.1,proxy").is_err());
        // Networks, and IPv4-mapped addresses, are trusted as their IPv4 selves.
        let net = ClientIp::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            net.resolve(ip("10.9.9.9"), ["1.2.3.4"].into_iter()),
            ip("1.2.3.4")
        );
        assert_eq!(ip("::ffff:10.0.0.1").to_canonical(), ip("10.0.0.1"));
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            limit_key(ip("2001:db8:1:2:ffff::9")),
            limit_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(limit_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }
}
