//! Trusted proxies: where a request came from when a load balancer or an ingress stands in
//! front of the edge.
//!
//! Without any, a request's client is the connection's peer, and a client's own
//! `X-Forwarded-For` is ignored (anyone can write one). Behind a proxy every peer is the proxy,
//! so the rate limits per address, the detectors and the automatic response would all see one
//! address. Naming the proxies' networks (`--trusted-proxy`, `[edge] trusted_proxies`) makes
//! the edge read `X-Forwarded-For` from the right — each hop appends the address it saw — and
//! take the first address that is not a trusted proxy: what the outermost proxy saw, which a
//! client cannot forge (what it wrote itself is further left). An entry that is not an address
//! stops the walk at the hop that passed it on. A trusted proxy's address is never blocked.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The networks whose `X-Forwarded-For` the edge believes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses networks (`10.0.0.0/8`, `fd00::/8`) or single addresses (`10.1.2.3`).
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<TrustedProxies, String> {
        list.iter()
            .map(|s| {
                let s = s.as_ref().trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("trusted proxy `{s}` is not an address or a network"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer` carrying `forwarded` (the `X-Forwarded-For` values
    /// in the order received): see the module's documentation.
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        for value in forwarded.rev() {
            for entry in value.rsplit(',') {
                match hop(entry.trim()) {
                    Some(ip) => {
                        client = ip;
                        if !self.trusts(ip) {
                            return client;
                        }
                    }
                    None => return client,
                }
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry's address (`203.0.113.7`, `2001:db8::1`, with a port or in
/// brackets as some proxies write them).
fn hop(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .or_else(|_| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .unwrap_or("")
                .parse::<IpAddr>()
        })
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "fd00::/8", "192.0.2.9"]).unwrap();
        let client = |peer: &str, xff: &[&str]| proxies.client(ip(peer), xff.iter().copied());
        // A peer that is no proxy: its own address, whatever it wrote.
        assert_eq!(client("203.0.113.5", &["198.51.100.1"]), ip("203.0.113.5"));
        // Behind one proxy: what it saw.
        assert_eq!(client("10.0.0.7", &["203.0.113.5"]), ip("203.0.113.5"));
        // A forged entry left of what the proxy appended is not believed.
        assert_eq!(
            client("10.0.0.7", &["198.51.100.66, 203.0.113.5"]),
            ip("203.0.113.5")
        );
        // Two proxies (an outer one trusted by address), over two header lines.
        assert_eq!(
            client("10.0.0.7", &["198.51.100.66, 203.0.113.5", "192.0.2.9"]),
            ip("203.0.113.5")
        );
        // Ports, brackets, IPv6 and IPv4-mapped peers.
        assert_eq!(client("10.0.0.7", &["203.0.113.5:4711"]), ip("203.0.113.5"));
        assert_eq!(client("fd00::1", &["[2001:db8::5]"]), ip("2001:db8::5"));
        assert_eq!(
            client("::ffff:10.0.0.7", &["2001:db8::5"]),
            ip("2001:db8::5")
        );
        // Garbage stops the walk at the hop that passed it on.
        assert_eq!(client("10.0.0.7", &["nonsense, 10.2.3.4"]), ip("10.2.3.4"));
        // Only proxies, or no header: the last proxy seen.
        assert_eq!(client("10.0.0.7", &["10.9.9.9"]), ip("10.9.9.9"));
        assert_eq!(client("10.0.0.7", &[]), ip("10.0.0.7"));
        // No trusted proxies: the header is never read.
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.7"), ["203.0.113.5"].into_iter()),
            ip("10.0.0.7")
        );
    }

    #[test]
    fn bad_networks_are_refused_by_name() {
        assert_eq!(
            TrustedProxies::parse(&["10.0.0.0/33"]).unwrap_err(),
            "trusted proxy `10.0.0.0/33` is not an address or a network"
        );
        assert!(TrustedProxies::parse(&["ingress"]).is_err());
        let host_bits = TrustedProxies::parse(&["10.1.2.3/8"]).unwrap();
        assert!(host_bits.trusts(ip("10.200.0.1")));
    }
}
