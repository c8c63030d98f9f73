//! Who called, and from where: a call's [`Origin`], taken from its TCP
//! peer, and from one forwarding header (`X-Forwarded-For`, or RFC 7239's
//! `Forwarded`: `--trusted-proxies-header`) only when that peer is one of
//! the `--trusted-proxies`. A header from any other peer is ignored: anyone
//! can write one. Only the chosen header is read: a proxy appends to the
//! one it writes and passes the other through as the client sent it.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;

use super::Door;
pub use crate::domain::audit::Origin;

/// The longest user agent kept; longer ones are cut.
const MAX_USER_AGENT_LEN: usize = 256;
/// The most forwarded hops looked at, from the nearest one.
const MAX_HOPS: usize = 32;

/// An address range: `10.0.0.0/8`, `::1/128`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_matches(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let (whole, rest) = (usize::from(prefix / 8), prefix % 8);
    if net[..whole] != ip[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        net[whole] & mask == ip[whole] & mask
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let mut network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0..={max}"))?,
        };
        // Bits beyond the prefix must be zero: 10.1.2.3/8 is a typo.
        if zero_host_bits(network, prefix) != network {
            return Err(format!(
                "{text:?} has bits set beyond its prefix (did you mean {}/{prefix}?)",
                zero_host_bits(network, prefix)
            ));
        }
        // Peers are compared as IPv4 when IPv4-mapped: so are such ranges.
        let mut prefix = prefix;
        if let IpAddr::V6(v6) = network {
            if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
                network = IpAddr::V4(v4);
                prefix -= 96;
            }
        }
        Ok(Cidr { network, prefix })
    }
}

fn zero_host_bits(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The header the trusted proxies write the client's address in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (nginx's `$proxy_add_x_forwarded_for`, Envoy,
    /// HAProxy, cloud load balancers).
    #[default]
    #[value(name = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239's `Forwarded: for=...`.
    Forwarded,
}

/// The peers whose forwarded headers are believed (`--trusted-proxies`),
/// and which header they write.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    ranges: Vec<Cidr>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    pub fn new(ranges: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies {
            ranges,
            header: ForwardedHeader::default(),
        }
    }

    /// These proxies, writing the client's address in `header`.
    pub fn reading(self, header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies { header, ..self }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|range| range.contains(ip))
    }

    /// The origin of a call through `door` from the TCP peer `peer`.
    ///
    /// From a trusted peer, the forwarded hops are walked from the nearest
    /// one back while each hop that handed the call on is trusted too; the
    /// first untrusted (or last) hop is the client. A hop that is not an
    /// address (`unknown`, an obfuscated name, garbage) stops the walk at
    /// the proxy that wrote it. Only the chosen header is read.
    pub fn origin(&self, door: Door, peer: Option<SocketAddr>, headers: &HeaderMap) -> Origin {
        let peer_ip = peer.map(|p| p.ip());
        let mut client = peer_ip;
        if let Some(mut current) = peer_ip.filter(|ip| self.trusts(*ip)) {
            let hops = forwarded_hops(headers, self.header);
            for hop in hops.iter().rev().take(MAX_HOPS) {
                let Some(hop) = hop else { break };
                current = *hop;
                if !self.trusts(current) {
                    break;
                }
            }
            client = Some(current);
        }
        Origin {
            door: door.name(),
            source_address: client
                .map(|ip| unmapped(ip).to_string())
                .unwrap_or_default(),
            user_agent: user_agent(headers),
        }
    }
}

/// `::ffff:127.0.0.1` as `127.0.0.1`.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The forwarded hops of `header`, the client first: each an address, or
/// None for a hop that names none.
fn forwarded_hops(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    // Split as bytes, each hop parsed on its own: a client's hop that is
    // not text must not take the whole line (the real address a proxy
    // appended to it included) with it.
    let hops = |name| {
        headers
            .get_all(name)
            .iter()
            .flat_map(|value| value.as_bytes().split(|b| *b == b','))
            .map(|hop| std::str::from_utf8(hop).ok())
    };
    if header == ForwardedHeader::Forwarded {
        return hops(http::header::FORWARDED)
            .map(|element| {
                element?
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, value)| forwarded_for(value.trim()))
            })
            .collect();
    }
    hops(http::header::HeaderName::from_static("x-forwarded-for"))
        .map(|hop| address(hop?.trim()))
        .collect()
}

/// A `for=` value: `192.0.2.60`, `"192.0.2.60:47011"`, `"[2001:db8::1]"`,
/// `"[2001:db8::1]:4711"`; `unknown` and `_obfuscated` name no address.
fn forwarded_for(value: &str) -> Option<IpAddr> {
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    address(value)
}

/// An address with or without a port, IPv6 bracketed when it has one.
fn address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// The caller's `User-Agent`, printable ASCII only (anything else becomes
/// `?`, so that it cannot dress up a log line), at most 256 characters.
fn user_agent(headers: &HeaderMap) -> String {
    let Some(value) = headers.get(http::header::USER_AGENT) else {
        return String::new();
    };
    value
        .as_bytes()
        .iter()
        .take(MAX_USER_AGENT_LEN)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

/// Parses `--trusted-proxies`: comma-separated CIDR ranges or addresses.
pub fn parse_trusted_proxies(text: &str) -> Result<TrustedProxies, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(Cidr::from_str)
        .collect::<Result<Vec<_>, _>>()
        .map(TrustedProxies::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(text: &str) -> TrustedProxies {
        parse_trusted_proxies(text).unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, http::HeaderValue::from_static(value));
        }
        headers
    }

    fn source(trusted: &str, peer: &str, pairs: &[(&'static str, &'static str)]) -> String {
        proxies(trusted)
            .origin(Door::Grpc, Some(peer.parse().unwrap()), &headers(pairs))
            .source_address
    }

    /// [`source`] with proxies that write `Forwarded`.
    fn forwarded_source(trusted: &str, pairs: &[(&'static str, &'static str)]) -> String {
        proxies(trusted)
            .reading(ForwardedHeader::Forwarded)
            .origin(
                Door::Grpc,
                Some("127.0.0.1:1".parse().unwrap()),
                &headers(pairs),
            )
            .source_address
    }

    #[test]
    fn ranges_parse_and_match() {
        let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert!(mapped.contains("10.1.2.3".parse().unwrap()));
        assert!(mapped.contains("::ffff:10.1.2.3".parse().unwrap()));
        let range: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(range.contains("10.255.0.1".parse().unwrap()));
        assert!(!range.contains("11.0.0.1".parse().unwrap()));
        assert!(range.contains("::ffff:10.1.2.3".parse().unwrap()));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        let odd: Cidr = "192.168.0.0/23".parse().unwrap();
        assert!(odd.contains("192.168.1.200".parse().unwrap()));
        assert!(!odd.contains("192.168.2.1".parse().unwrap()));
        assert!("0.0.0.0/0"
            .parse::<Cidr>()
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "::/129",
            "host",
            "10.0.0.0/x",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(
            parse_trusted_proxies("127.0.0.1, 10.0.0.0/8,")
                .unwrap()
                .ranges
                .len(),
            2
        );
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_peer() {
        let xff = [("x-forwarded-for", "203.0.113.7")];
        assert_eq!(source("127.0.0.1", "127.0.0.1:5000", &xff), "203.0.113.7");
        assert_eq!(source("127.0.0.2", "127.0.0.1:5000", &xff), "127.0.0.1");
        assert_eq!(source("", "127.0.0.1:5000", &xff), "127.0.0.1");
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_nearest() {
        // A client that writes its own header cannot choose its address:
        // the trusted proxy appended the real one.
        let spoofed = [("x-forwarded-for", "198.51.100.1, 203.0.113.7")];
        assert_eq!(source("127.0.0.1", "127.0.0.1:1", &spoofed), "203.0.113.7");
        // Through two trusted proxies.
        let chained = [("x-forwarded-for", "203.0.113.7, 10.0.0.5")];
        assert_eq!(
            source("127.0.0.1,10.0.0.0/8", "127.0.0.1:1", &chained),
            "203.0.113.7"
        );
        // Several header lines are one list, in order.
        let lines = [
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "10.0.0.5"),
        ];
        assert_eq!(
            source("127.0.0.1,10.0.0.0/8", "127.0.0.1:1", &lines),
            "203.0.113.7"
        );
        // A hop that is no address stops the walk at the proxy that wrote it.
        let garbage = [("x-forwarded-for", "203.0.113.7, nonsense")];
        assert_eq!(source("127.0.0.1", "127.0.0.1:1", &garbage), "127.0.0.1");
        // A client's hop that is not text does not hide the address the
        // proxy appended after it.
        let mut binary = HeaderMap::new();
        binary.insert(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff, 203.0.113.7").unwrap(),
        );
        let origin =
            proxies("127.0.0.1").origin(Door::Grpc, Some("127.0.0.1:1".parse().unwrap()), &binary);
        assert_eq!(origin.source_address, "203.0.113.7");
    }

    #[test]
    fn only_the_chosen_header_is_read() {
        // nginx appends to X-Forwarded-For and passes the client's own
        // Forwarded through: that one must not count.
        let both = [
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "198.51.100.1"),
        ];
        assert_eq!(source("127.0.0.1", "127.0.0.1:1", &both), "198.51.100.1");
        assert_eq!(forwarded_source("127.0.0.1", &both), "6.6.6.6");
        let forwarded_only = [("forwarded", "for=6.6.6.6")];
        assert_eq!(
            source("127.0.0.1", "127.0.0.1:1", &forwarded_only),
            "127.0.0.1"
        );
    }

    #[test]
    fn forwarded_is_read_as_rfc_7239_writes_it() {
        let v6 = [("forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=https")];
        assert_eq!(forwarded_source("127.0.0.1", &v6), "2001:db8:cafe::17");
        let list = [("forwarded", "for=192.0.2.43, For=\"198.51.100.17:80\";by=x")];
        assert_eq!(forwarded_source("127.0.0.1", &list), "198.51.100.17");
        let unknown = [("forwarded", "for=unknown")];
        assert_eq!(forwarded_source("127.0.0.1", &unknown), "127.0.0.1");
        // Every hop trusted: the farthest one.
        let inner = [("forwarded", "for=10.1.1.1")];
        assert_eq!(forwarded_source("127.0.0.1,10.0.0.0/8", &inner), "10.1.1.1");
    }

    #[test]
    fn the_user_agent_is_printable_and_bounded() {
        let mut odd = HeaderMap::new();
        odd.insert(
            "user-agent",
            http::HeaderValue::from_bytes(b"Boto3/1.35 md/\xe9x").unwrap(),
        );
        let origin = TrustedProxies::default().origin(Door::Aws, None, &odd);
        assert_eq!(origin.user_agent, "Boto3/1.35 md/?x");
        assert_eq!(origin.door, "aws");
        assert_eq!(origin.source_address, "");
        let long = "a".repeat(1000);
        let mut many = HeaderMap::new();
        many.insert("user-agent", long.parse().unwrap());
        let origin = TrustedProxies::default().origin(Door::Grpc, None, &many);
        assert_eq!(origin.user_agent.len(), MAX_USER_AGENT_LEN);
    }
}
