//! Where a key may be used from: a list of networks in CIDR notation. The
//! parser serves the delivery guard's allow-list too.

use ipnet::IpNet;
use std::net::IpAddr;

/// The networks a key may be used from; empty means anywhere.
#[derive(Debug, Clone, Default)]
pub struct AllowedNetworks(Vec<IpNet>);

/// Parses CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses. The
/// error names the entry at fault.
pub fn parse_networks(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map(|network| network.trunc())
                .map_err(|_| {
                    format!(
                        "{entry:?} is not a network: expected a CIDR like 10.0.0.0/8 or an address"
                    )
                })
        })
        .collect()
}

impl AllowedNetworks {
    /// See [`parse_networks`].
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        parse_networks(entries).map(Self)
    }

    /// Allows no address at all: what a stored list that no longer parses means.
    pub fn nowhere() -> Self {
        Self(vec!["255.255.255.255/32".parse().expect("a valid network")])
    }

    /// Whether a request from `peer` is allowed; an unknown peer is allowed
    /// only when every address is.
    pub fn permits(&self, peer: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        peer.is_some_and(|ip| {
            let ip = ip.to_canonical();
            self.0.iter().any(|network| network.contains(&ip))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networks(entries: &[&str]) -> AllowedNetworks {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        AllowedNetworks::parse(&entries).unwrap()
    }

    #[test]
    fn addresses_inside_a_listed_network_are_permitted() {
        let office = networks(&["10.1.0.0/16", "2001:db8::/32", "192.0.2.7"]);
        for inside in ["10.1.200.3", "2001:db8::1", "192.0.2.7", "::ffff:10.1.0.9"] {
            assert!(office.permits(Some(inside.parse().unwrap())), "{inside}");
        }
        for outside in ["10.2.0.1", "127.0.0.1", "2001:db9::1", "192.0.2.8"] {
            assert!(!office.permits(Some(outside.parse().unwrap())), "{outside}");
        }
        assert!(!office.permits(None));
    }

    #[test]
    fn an_empty_list_permits_every_address() {
        assert!(networks(&[]).permits(Some("203.0.113.9".parse().unwrap())));
        assert!(networks(&[]).permits(None));
        assert!(!AllowedNetworks::nowhere().permits(Some("127.0.0.1".parse().unwrap())));
    }

    #[test]
    fn a_malformed_entry_is_named() {
        let error = AllowedNetworks::parse(&["10.0.0.0/8".into(), "10.0.0/33".into()]).unwrap_err();
        assert!(error.contains("\"10.0.0/33\""), "{error}");
    }
}
