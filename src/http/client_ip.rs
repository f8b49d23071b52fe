//! Who a request comes from, as an address, for the limits kept per client (websockets,
//! sign-in attempts).
//!
//! The TCP peer is the client unless it is one of the configured `trusted_proxies`; then
//! the client is the right-most address in `X-Forwarded-For` that is not itself a trusted
//! proxy (each proxy appends the address it heard from, so addresses to the left of the
//! last untrusted one were written by the client and prove nothing). Without trusted
//! proxies the header is ignored: a client cannot pick its own address to dodge a limit.

use std::net::IpAddr;

use actix_web::HttpRequest;

#[derive(Debug, Clone, Default)]
pub struct ClientIp {
    trusted: Vec<IpAddr>,
}

impl ClientIp {
    /// From `trusted_proxies`: comma-separated IP addresses.
    pub fn parse(list: &str) -> Result<ClientIp, String> {
        let trusted = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| format!("`trusted_proxies` entry {s:?} is not an IP address"))
            })
            .collect::<Result<_, _>>()?;
        Ok(ClientIp { trusted })
    }

    /// The client's address (unspecified if the peer's is unknown, as in unit tests).
    pub fn of(&self, req: &HttpRequest) -> IpAddr {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        self.resolve(
            peer,
            req.headers()
                .get_all("x-forwarded-for")
                .filter_map(|v| v.to_str().ok()),
        )
    }

    fn resolve<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.trusted.contains(&peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusted.contains(&ip) => continue,
                Ok(ip) => return ip,
                // Garbage where an address should be: stop trusting the chain here.
                Err(_) => return peer,
            }
        }
        peer
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
    }
}
