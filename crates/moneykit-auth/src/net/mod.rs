//! Addresses: the CIDRs of `--trusted-proxy`, the key by which rate limits and the
//! per-address connection cap count a source, and the [`guard`] every fetch of a URL a
//! user gave passes (the SSRF guard). Imports nothing from the rest of the crate.

pub mod guard;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 address block, `203.0.113.0/24` or `2001:db8::/32`; a bare address is
/// a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u128::from(ip.to_bits()), self.prefix, 32) == u128::from(net.to_bits())
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(ip.to_bits(), self.prefix, 128) == net.to_bits()
            }
            _ => false,
        }
    }
}

/// `bits` (an address `width` bits wide) with all but its first `prefix` bits cleared.
fn mask(bits: u128, prefix: u8, width: u8) -> u128 {
    match u32::from(width - prefix) {
        0 => bits,
        host if host >= 128 => 0,
        host => bits & !((1u128 << host) - 1),
    }
}

/// Why a `--trusted-proxy` value is not a CIDR.
#[derive(Debug, thiserror::Error)]
#[error("expected an IP address or a CIDR such as 10.0.0.0/8 or fd00::/8, got {0:?}")]
pub struct BadCidr(String);

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(text: &str) -> Result<Self, BadCidr> {
        let bad = || BadCidr(text.to_owned());
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let address = address.to_canonical();
        let width = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(bad)?,
            Some(_) => return Err(bad()),
            None => width,
        };
        // Host bits are cleared, so `10.1.2.3/8` means `10.0.0.0/8`.
        let network = match address {
            IpAddr::V4(v4) => {
                let bits = mask(u128::from(v4.to_bits()), prefix, 32);
                IpAddr::V4(Ipv4Addr::from_bits(bits as u32))
            }
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(mask(v6.to_bits(), prefix, 128))),
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The key one source is counted under: an IPv4 address as is, an IPv6 address by its
/// /64. One IPv6 host usually holds a whole /64 and can pick a new address from it for
/// every request, so counting per /128 would give it 2^64 budgets.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(mask(v6.to_bits(), 64, 128))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let v4: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(v4.to_string(), "10.0.0.0/8");
        assert!(v4.contains(ip("10.255.0.1")));
        assert!(v4.contains(ip("::ffff:10.0.0.1")), "IPv4-mapped");
        assert!(!v4.contains(ip("11.0.0.1")));
        assert!(!v4.contains(ip("::a00:1")));

        let one: Cidr = "127.0.0.2".parse().unwrap();
        assert_eq!(one.to_string(), "127.0.0.2/32");
        assert!(one.contains(ip("127.0.0.2")) && !one.contains(ip("127.0.0.1")));

        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fdff::1")) && !v6.contains(ip("fe80::1")));
        let all: Cidr = "::/0".parse().unwrap();
        assert!(all.contains(ip("2001:db8::1")) && !all.contains(ip("192.0.2.1")));
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .unwrap()
                .contains(ip("192.0.2.1"))
        );
        assert!("::1/128".parse::<Cidr>().unwrap().contains(ip("::1")));

        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "host/8",
            "10/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ipv6_sources_are_keyed_by_their_64() {
        assert_eq!(source_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(source_key(ip("203.0.113.7")), ip("203.0.113.7"));
        assert_eq!(source_key(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
    }
}
