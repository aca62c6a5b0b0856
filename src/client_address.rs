//! The client's address when requests arrive through reverse proxies you
//! run: [`TrustedProxies`].
//!
//! ```
//! use std::net::IpAddr;
//! use tower_authkit::client_address::TrustedProxies;
//!
//! // e.g. from AUTHKIT_TRUSTED_PROXIES
//! let proxies: TrustedProxies = "10.0.0.0/8, 127.0.0.1".parse().expect("IPs or CIDRs");
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7".parse().unwrap());
//!
//! // Our proxy at 10.1.2.3 appended the address it saw: that is the client.
//! let peer: IpAddr = "10.1.2.3".parse().unwrap();
//! assert_eq!(proxies.client(peer, &headers), "203.0.113.7".parse::<IpAddr>().unwrap());
//! // Anyone else's header is ignored: the socket peer is the client.
//! let stranger: IpAddr = "198.51.100.1".parse().unwrap();
//! assert_eq!(proxies.client(stranger, &headers), stranger);
//! ```
//!
//! The rule: when the connection's peer is not a trusted proxy, forwarding
//! headers are ignored and the peer is the client. When it is, the client is
//! the right-most `X-Forwarded-For` address that is not itself a trusted
//! proxy: each trusted proxy appends the address it saw, so entries left of
//! that one are whatever the client wrote and change nothing. Several
//! `X-Forwarded-For` headers read as one list, in order. An entry that is not
//! an address stops the walk at the last trusted hop (a client-written entry
//! never stands in for one a proxy wrote). With no trusted proxies (the
//! default), every header is ignored.
//!
//! Use it wherever a client's address counts: sign-in limits
//! ([`SignIn::check`](crate::session::SignIn::check)), audit lines, and the
//! `X-Forwarded-For` an ingress sends on.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;
use ipnet::IpNet;

use crate::error::ConfigError;

/// The reverse proxies whose `X-Forwarded-For` is believed: IP addresses
/// and CIDR ranges. See the [module docs](self).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.networks.iter().map(ToString::to_string))
            .finish()
    }
}

impl FromStr for TrustedProxies {
    type Err = ConfigError;

    /// A comma-separated list of IPs or CIDRs (`10.0.0.0/8, ::1`); empty
    /// for none.
    fn from_str(list: &str) -> Result<Self, ConfigError> {
        let mut networks = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let network = match entry.parse::<IpNet>() {
                Ok(network) => network.trunc(),
                Err(_) => entry
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| ConfigError::Invalid {
                        setting: "trusted_proxies",
                        reason: format!("{entry:?} is not an IP address or a CIDR range"),
                    })?,
            };
            networks.push(network);
        }
        Ok(Self { networks })
    }
}

/// An `X-Forwarded-For` entry: an address, maybe with a port (`[::1]:80`).
fn entry_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

impl TrustedProxies {
    /// No trusted proxies: the socket peer is always the client.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|network| network.contains(&ip))
    }

    /// The client's address for a request from `peer` (the connection's
    /// remote address, e.g. axum's `ConnectInfo<SocketAddr>`).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.is_trusted(client) {
            return client;
        }
        let values: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|value| value.to_str().unwrap_or(""))
            .collect();
        for entry in values.iter().rev().flat_map(|value| value.rsplit(',')) {
            let Some(address) = entry_address(entry) else {
                break;
            };
            client = address;
            if !self.is_trusted(address) {
                break;
            }
        }
        client
    }

    /// The scheme the client used, as a trusted proxy at `peer` says in
    /// `X-Forwarded-Proto` (`http` or `https`; its right-most entry); `None`
    /// when the peer is not trusted or says nothing usable.
    pub fn scheme(&self, peer: IpAddr, headers: &HeaderMap) -> Option<&'static str> {
        if !self.is_trusted(peer) {
            return None;
        }
        let said = headers.get_all("x-forwarded-proto").iter().next_back()?.to_str().ok()?;
        match said.rsplit(',').next()?.trim().to_ascii_lowercase().as_str() {
            "https" => Some("https"),
            "http" => Some("http"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let proxies: TrustedProxies = "10.0.0.0/8, 127.0.0.1".parse().unwrap();
        let peer = ip("10.0.0.2");
        for (values, client) in [
            (&["203.0.113.7"][..], "203.0.113.7"),
            (&["6.6.6.6, 203.0.113.7"], "203.0.113.7"),
            (&["6.6.6.6, 203.0.113.7, 10.9.9.9"], "203.0.113.7"),
            (&["6.6.6.6", "203.0.113.7, 10.9.9.9"], "203.0.113.7"),
            (&["203.0.113.7:5555"], "203.0.113.7"),
            (&["[2001:db8::1]:443"], "2001:db8::1"),
            (&["::ffff:203.0.113.7"], "203.0.113.7"),
            (&["10.1.1.1, 10.2.2.2"], "10.1.1.1"),
            (&[], "10.0.0.2"),
            (&["6.6.6.6, garbage"], "10.0.0.2"),
            (&["203.0.113.7, garbage, 10.3.3.3"], "10.3.3.3"),
        ] {
            assert_eq!(proxies.client(peer, &forwarded(values)), ip(client), "{values:?}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(proxies.client(ip("198.51.100.1"), &headers), ip("198.51.100.1"));
        assert_eq!(TrustedProxies::none().client(ip("10.0.0.1"), &headers), ip("10.0.0.1"));
        assert_eq!(proxies.scheme(ip("198.51.100.1"), &HeaderMap::new()), None);
    }

    #[test]
    fn mapped_peers_match_their_ipv4_ranges() {
        let proxies: TrustedProxies = "127.0.0.1".parse().unwrap();
        let headers = forwarded(&["203.0.113.7"]);
        assert_eq!(proxies.client(ip("::ffff:127.0.0.1"), &headers), ip("203.0.113.7"));
    }

    #[test]
    fn lists_parse_or_name_the_bad_entry() {
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        assert!(" 10.0.0.0/8 , ::1,fd00::/8 ".parse::<TrustedProxies>().is_ok());
        let error = "10.0.0.0/8, proxy.internal".parse::<TrustedProxies>().unwrap_err();
        assert!(error.to_string().contains("proxy.internal"), "{error}");
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn the_scheme_comes_only_from_a_trusted_proxy() {
        let proxies: TrustedProxies = "127.0.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", "HTTPS".parse().unwrap());
        assert_eq!(proxies.scheme(ip("127.0.0.1"), &headers), Some("https"));
        headers.insert("x-forwarded-proto", "gopher".parse().unwrap());
        assert_eq!(proxies.scheme(ip("127.0.0.1"), &headers), None);
    }
}
