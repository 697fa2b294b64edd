//! The SSRF guard: which addresses deliveries (and every other request Weft
//! makes for a tenant) may reach. Receivers are on the internet; loopback,
//! private, link-local (the cloud metadata service at 169.254.169.254 among
//! them), unique-local and other special-purpose addresses are refused unless
//! the operator allow-lists them. The check runs on the addresses a name
//! resolves to, right before connecting, so a name that points inside (or is
//! re-pointed there) is refused too.
//!
//! The policy also says whether plain `http://` may be used (not unless the
//! operator allows it, for development) and whether an endpoint may skip
//! certificate verification (likewise).

use ipnet::IpNet;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Special-purpose ranges (IANA's registries of IPv4 and IPv6 special-purpose
/// addresses), each with what it is, refused unless allow-listed. Every IPv6
/// range that can carry an IPv4 address inside it (mapped, compatible,
/// translated, NAT64, 6to4, Teredo) is refused whole, so that no internal
/// IPv4 address is reached in IPv6 clothing (`[::127.0.0.1]`).
const REFUSED: &[(&str, &str)] = &[
    ("0.0.0.0/8", "a \"this network\" address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("::/96", "an IPv4-compatible address"),
    ("::ffff:0:0/96", "an IPv4-mapped address"),
    ("::ffff:0:0:0/96", "an IPv4-translated address"),
    ("64:ff9b::/96", "an IPv4/IPv6 translation address"),
    ("64:ff9b:1::/48", "a local IPv4/IPv6 translation address"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo address"),
    ("2001:2::/48", "a benchmarking address"),
    ("2001:10::/28", "an ORCHID address"),
    ("2001:20::/28", "an ORCHID address"),
    ("2001:db8::/32", "a documentation address"),
    ("2002::/16", "a 6to4 address"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "a segment routing address"),
    ("fc00::/7", "a unique-local address"),
    ("fe80::/10", "a link-local address"),
    ("ff00::/8", "a multicast address"),
];

/// Which addresses may be connected to, and how.
#[derive(Debug, Clone)]
pub struct NetworkPolicy {
    refused: Arc<Vec<(IpNet, &'static str)>>,
    allowed: Arc<Vec<IpNet>>,
    plain_http: bool,
    unverified_tls: bool,
    /// Names answered without DNS (`host` → address and port), as curl's
    /// `--resolve` does; the guard still checks the address.
    pinned: Arc<HashMap<String, SocketAddr>>,
}

impl Default for NetworkPolicy {
    /// Public addresses only.
    fn default() -> Self {
        Self::allowing(&[]).expect("no networks to parse")
    }
}

impl NetworkPolicy {
    /// Public addresses, and those in `networks` (CIDRs or single addresses),
    /// which win over the refused ranges. The error names the entry at fault.
    pub fn allowing(networks: &[String]) -> Result<Self, String> {
        let allowed = crate::auth::parse_networks(networks)?;
        let refused = REFUSED
            .iter()
            .map(|(network, what)| (network.parse().expect("a valid range"), *what))
            .collect();
        Ok(Self {
            refused: Arc::new(refused),
            allowed: Arc::new(allowed),
            plain_http: false,
            unverified_tls: false,
            pinned: Arc::default(),
        })
    }

    /// This policy, letting requests use plain `http://` (development only:
    /// nothing is encrypted).
    pub fn with_plain_http(self, allowed: bool) -> Self {
        Self {
            plain_http: allowed,
            ..self
        }
    }

    /// This policy, letting endpoints turn certificate verification off
    /// (`"tls": {"verify": false}`; development only).
    pub fn with_unverified_tls(self, allowed: bool) -> Self {
        Self {
            unverified_tls: allowed,
            ..self
        }
    }

    /// This policy, answering `host` with `address` instead of asking DNS.
    pub fn pinning(self, host: &str, address: SocketAddr) -> Self {
        let mut pinned = (*self.pinned).clone();
        pinned.insert(host.to_ascii_lowercase(), address);
        Self {
            pinned: Arc::new(pinned),
            ..self
        }
    }

    /// Why a request to `url` may not be made under this policy, looking
    /// only at its scheme.
    pub fn scheme_refusal(&self, url: &str) -> Option<String> {
        let plain = url
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
        (plain && !self.plain_http).then(|| {
            "plain http:// is refused: Weft sends over HTTPS only \
             (an operator can allow http:// for development with --allow-http)"
                .to_owned()
        })
    }

    /// Why an endpoint may not skip certificate verification, if it may not.
    pub fn unverified_tls_refusal(&self) -> Option<String> {
        (!self.unverified_tls).then(|| {
            "certificate verification cannot be turned off on this server \
             (an operator can allow it for development with --allow-unverified-tls)"
                .to_owned()
        })
    }

    /// Why `ip` may not be connected to, if it may not.
    pub fn refusal(&self, ip: IpAddr) -> Option<String> {
        if self.allowed.iter().any(|network| network.contains(&ip)) {
            return None;
        }
        self.refused
            .iter()
            .find(|(network, _)| network.contains(&ip))
            .map(|(_, what)| {
                format!("{ip} is {what}; an operator can allow it with --allow-network")
            })
    }
}

/// Resolves names for the HTTP connector and keeps only the addresses the
/// policy permits; a name left with none fails to resolve, saying why.
#[derive(Clone)]
pub(super) struct GuardedResolver {
    pub(super) policy: NetworkPolicy,
}

type Addresses = std::vec::IntoIter<SocketAddr>;

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedResolver {
    type Response = Addresses;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Addresses, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = match policy.pinned.get(&host) {
                Some(address) => vec![*address],
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let mut refusals = Vec::new();
            let permitted: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| match policy.refusal(address.ip()) {
                    Some(why) => {
                        refusals.push(why);
                        false
                    }
                    None => true,
                })
                .collect();
            if permitted.is_empty() && !refusals.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("refused to connect to {host}: {}", refusals.join("; ")),
                ));
            }
            Ok(permitted.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_refused_and_public_ones_allowed() {
        let policy = NetworkPolicy::default();
        for (address, what) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.255.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared"),
            ("0.0.0.0", "this network"),
            ("::1", "loopback"),
            ("fd12::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("::ffff:127.0.0.1", "IPv4-mapped"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("224.0.0.1", "multicast"),
            // IPv6 forms that carry an internal IPv4 address.
            ("::127.0.0.1", "IPv4-compatible"),
            ("::10.0.0.1", "IPv4-compatible"),
            ("::ffff:0:7f00:1", "IPv4-translated"),
            ("64:ff9b::a9fe:a9fe", "translation"),
            ("64:ff9b:1::7f00:1", "translation"),
            ("2002:7f00:1::1", "6to4"),
            ("2002:a9fe:a9fe::", "6to4"),
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo"),
            ("2001:db8::1", "documentation"),
            ("192.0.2.10", "documentation"),
        ] {
            let refusal = policy
                .refusal(address.parse().unwrap())
                .unwrap_or_else(|| panic!("{address} was allowed"));
            assert!(refusal.contains(what), "{address}: {refusal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert_eq!(policy.refusal(public.parse().unwrap()), None, "{public}");
        }
    }

    #[test]
    fn allow_listed_networks_win() {
        let policy = NetworkPolicy::allowing(&["127.0.0.0/8".into(), "::1".into()]).unwrap();
        assert_eq!(policy.refusal("127.0.0.1".parse().unwrap()), None);
        assert_eq!(policy.refusal("::1".parse().unwrap()), None);
        assert!(policy.refusal("10.0.0.1".parse().unwrap()).is_some());
        let error = NetworkPolicy::allowing(&["loopback".into()]).unwrap_err();
        assert!(error.contains("\"loopback\""), "{error}");
    }
}
