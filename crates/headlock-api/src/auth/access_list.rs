//! Per-user API access lists: IP addresses and CIDR blocks, IPv4 and IPv6, as Ops
//! Manager's `ipAddress` / `cidrBlock` entries. An empty list allows every address;
//! a request from elsewhere is answered `403 IP_ADDRESS_NOT_ON_ACCESS_LIST`.
//!
//! Entries are validated when stored ([`parse_access_list_entry`]): a bare address is
//! a /32 or /128, and a block with host bits set (`10.0.0.1/8`) is refused rather than
//! silently widened, since it is most likely a typo. Clients reaching a dual-stack
//! listener over IPv4 appear as IPv4-mapped IPv6 (`::ffff:192.0.2.1`) and are matched
//! as the IPv4 address they are.

use std::net::IpAddr;

use ipnet::IpNet;

/// Why an access-list entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessListError {
    /// Not an IP address or a CIDR block.
    #[error("access list entry `{entry}` is not an IP address or CIDR block")]
    Unparsable {
        /// The entry, cut to 64 characters.
        entry: String,
    },
    /// A CIDR block whose address has bits set past the prefix.
    #[error("access list entry `{entry}` has host bits set; did you mean `{suggested}`?")]
    HostBitsSet {
        /// The entry as given.
        entry: String,
        /// The block with the host bits cleared.
        suggested: String,
    },
}

/// Validates one entry and returns it as a network (`192.0.2.1` -> `192.0.2.1/32`).
pub fn parse_access_list_entry(entry: &str) -> Result<IpNet, AccessListError> {
    let trimmed = entry.trim();
    let net = if trimmed.contains('/') {
        trimmed.parse::<IpNet>().ok()
    } else {
        trimmed.parse::<IpAddr>().ok().map(IpNet::from)
    };
    let Some(net) = net else {
        return Err(AccessListError::Unparsable {
            entry: entry.chars().take(64).collect(),
        });
    };
    if net.trunc() != net {
        return Err(AccessListError::HostBitsSet {
            entry: trimmed.to_owned(),
            suggested: net.trunc().to_string(),
        });
    }
    Ok(net)
}

/// True when `ip` may use the API under this access list: the list is empty, or an
/// entry contains `ip`. Entries that do not parse (they are validated when stored,
/// so this means a damaged store) match nothing: the check fails closed.
pub fn access_list_allows(entries: &[String], ip: IpAddr) -> bool {
    if entries.is_empty() {
        return true;
    }
    let ip = ip.to_canonical();
    entries
        .iter()
        .filter_map(|e| parse_access_list_entry(e).ok())
        .any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|s| s.to_string()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn accepts_any_address_with_an_empty_list() {
        assert!(access_list_allows(&[], ip("203.0.113.9")));
        assert!(access_list_allows(&[], ip("2001:db8::1")));
    }

    #[test]
    fn accepts_exact_ipv4_and_ipv4_cidr() {
        let l = list(&["192.0.2.1", "10.0.0.0/8"]);
        assert!(access_list_allows(&l, ip("192.0.2.1")));
        assert!(access_list_allows(&l, ip("10.255.0.3")));
    }

    #[test]
    fn rejects_addresses_outside_the_list() {
        let l = list(&["192.0.2.1", "10.0.0.0/8"]);
        assert!(!access_list_allows(&l, ip("192.0.2.2")));
        assert!(!access_list_allows(&l, ip("11.0.0.1")));
        assert!(!access_list_allows(&l, ip("2001:db8::1")));
    }

    #[test]
    fn accepts_ipv6_address_and_block() {
        let l = list(&["2001:db8::/32", "::1"]);
        assert!(access_list_allows(&l, ip("2001:db8:ffff::7")));
        assert!(access_list_allows(&l, ip("::1")));
        assert!(!access_list_allows(&l, ip("2001:db9::1")));
        assert!(!access_list_allows(&l, ip("10.0.0.1")));
    }

    #[test]
    fn accepts_ipv4_mapped_ipv6_client_against_ipv4_entries() {
        let l = list(&["192.0.2.0/24"]);
        assert!(access_list_allows(&l, ip("::ffff:192.0.2.77")));
        assert!(!access_list_allows(&l, ip("::ffff:198.51.100.1")));
    }

    #[test]
    fn rejects_everything_when_every_entry_is_damaged() {
        let l = list(&["not-an-ip"]);
        assert!(!access_list_allows(&l, ip("192.0.2.1")));
    }

    #[test]
    fn accepts_valid_entries_and_normalises_bare_addresses() {
        assert_eq!(
            parse_access_list_entry("192.0.2.1").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(
            parse_access_list_entry(" 10.0.0.0/8 ").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_access_list_entry("2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert_eq!(
            parse_access_list_entry("0.0.0.0/0").unwrap().to_string(),
            "0.0.0.0/0"
        );
    }

    #[test]
    fn rejects_garbage_and_out_of_range_prefixes() {
        for bad in [
            "",
            "host.example",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "/8",
            "1.2.3.4.5",
        ] {
            assert!(
                matches!(
                    parse_access_list_entry(bad),
                    Err(AccessListError::Unparsable { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_cidr_with_host_bits_and_suggests_the_block() {
        assert_eq!(
            parse_access_list_entry("10.1.2.3/8"),
            Err(AccessListError::HostBitsSet {
                entry: "10.1.2.3/8".into(),
                suggested: "10.0.0.0/8".into()
            })
        );
    }
}
