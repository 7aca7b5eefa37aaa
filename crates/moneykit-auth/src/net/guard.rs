//! Which URLs the server may connect to: the guard against server-side request forgery,
//! for every URL a user gives (webhook targets, client JWKS URIs, trusted issuers).
//!
//! A webhook URL is chosen by whoever administers an app, and the server POSTs to it from
//! inside the operator's network; a JWKS URI or issuer is fetched from there too. So by default only `https` URLs are accepted, and only
//! when every address the host resolves to is a public unicast address: loopback, private
//! (RFC 1918, unique-local), link-local (which includes the cloud metadata address
//! 169.254.169.254), carrier-grade NAT, multicast, documentation and unspecified
//! addresses are refused, as are IPv6 forms of them (IPv4-mapped, NAT64, 6to4 and Teredo
//! are judged by the IPv4 address they carry) and IPv6 outside global unicast
//! (IPv4-compatible, IPv4-translated, site-local, discard-only …). The checks run
//! when the URL is set *and* on every delivery, against the addresses actually connected
//! to ([`GuardedResolver`]), so a DNS answer that changes after the URL was accepted
//! (rebinding) gains nothing. Redirects are not followed.
//!
//! Operators opt out explicitly: `allow_http` for plain-HTTP endpoints, and
//! `allow_private_targets` for receivers on their own network (tests use both for
//! `127.0.0.1`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// What the operator allows beyond public `https` endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Accept `http://` URLs.
    pub allow_http: bool,
    /// Accept hosts that resolve to loopback, private, link-local and other non-public
    /// addresses.
    pub allow_private_targets: bool,
}

impl TargetPolicy {
    /// This policy narrowed by a request's flags: a flag given as `false` takes that
    /// allowance away, `true` or absent leaves it as it is. Never wider than `self`, so a
    /// request cannot allow what the operator did not.
    pub fn narrowed(self, allow_http: Option<bool>, allow_private_targets: Option<bool>) -> Self {
        Self {
            allow_http: self.allow_http && allow_http.unwrap_or(true),
            allow_private_targets: self.allow_private_targets
                && allow_private_targets.unwrap_or(true),
        }
    }
}

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL.
    #[error("not a valid URL: {0}")]
    Invalid(String),
    /// Not https (or http when allowed).
    #[error("the URL must use https (http needs the operator's allow-http flag)")]
    Scheme,
    /// Credentials in the URL would be sent to, and logged by, whatever is at the host.
    #[error("the URL must not contain a user name or password")]
    Credentials,
    /// The host is or resolves to a non-public address.
    #[error(
        "{host} resolves to {addr}, a {kind} address, refused without the operator's allow-private-targets flag"
    )]
    Private {
        /// The URL's host.
        host: String,
        /// The refused address.
        addr: IpAddr,
        /// What kind of address it is.
        kind: &'static str,
    },
    /// The host does not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Unresolvable {
        /// The URL's host.
        host: String,
        /// What the resolver said.
        reason: String,
    },
}

/// Checks the form of a webhook URL (scheme, host, no credentials) and, when the host is
/// a literal address, that address: literals never reach [`GuardedResolver`], so this is
/// where they are checked. Host names are resolved and checked separately.
pub fn check_url(text: &str, policy: TargetPolicy) -> Result<Url, TargetError> {
    let url = Url::parse(text.trim()).map_err(|e| TargetError::Invalid(e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        _ => return Err(TargetError::Scheme),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(TargetError::Invalid("no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    if let Some(host) = url.host_str()
        && let Some(ip) = literal_ip(host)
    {
        check_addr(host, ip, policy)?;
    }
    Ok(url)
}

/// The address `host` is, if it is a literal (IPv6 bracketed, as `Url::host_str` gives
/// it), rather than a name to resolve.
fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// What kind of non-public address `ip` is, or `None` for a public unicast address.
pub fn non_public_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

/// The IPv4 address in two 16-bit segments.
fn v4_in(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// IPv6 is allowed only as global unicast (`2000::/3`) outside the special-purpose blocks
/// in it. Forms that carry an IPv4 address a connection ends up at (IPv4-mapped, NAT64's
/// well-known prefix, 6to4, Teredo) are judged by that IPv4 address; forms that are not
/// routable on the internet at all (IPv4-compatible, IPv4-translated, local-use NAT64,
/// site-local, discard-only, anything outside `2000::/3`) are refused whatever they hold.
fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        // ::ffff:0:0/96: this is the IPv4 address itself on a dual-stack socket.
        return v4_kind(v4);
    }
    match ip.segments() {
        [0, 0, 0, 0, 0, 0, 0, 0] => Some("unspecified"),
        [0, 0, 0, 0, 0, 0, 0, 1] => Some("loopback"),
        // ::/96 (IPv4-compatible, deprecated by RFC 4291) and ::ffff:0:0:0/96
        // (IPv4-translated, RFC 2765): never routed on the internet.
        [0, 0, 0, 0, 0, 0, _, _] => Some("IPv4-compatible (reserved)"),
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some("IPv4-translated (reserved)"),
        // NAT64's well-known prefix (RFC 6052): the gateway connects to the IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => v4_kind(v4_in(hi, lo)),
        // Local-use NAT64 (RFC 8215): a translator inside the operator's network.
        [0x64, 0xff9b, 1, ..] => Some("local-use NAT64 (private)"),
        // Teredo (RFC 4380): the server's IPv4 address, and the client's, inverted.
        [0x2001, 0, server_hi, server_lo, _, _, client_hi, client_lo] => {
            v4_kind(v4_in(server_hi, server_lo)).or(v4_kind(v4_in(!client_hi, !client_lo)))
        }
        // 6to4 (RFC 3056): the IPv4 address of the site's router.
        [0x2002, hi, lo, ..] => v4_kind(v4_in(hi, lo)),
        [first, ..] if first & 0xff00 == 0xff00 => Some("multicast"),
        [first, ..] if first & 0xffc0 == 0xfe80 => Some("link-local"),
        [first, ..] if first & 0xffc0 == 0xfec0 => Some("site-local (private)"),
        [first, ..] if first & 0xfe00 == 0xfc00 => Some("unique-local (private)"),
        [0x0100, 0, 0, 0, ..] => Some("discard-only"),
        [first, ..] if first & 0xe000 != 0x2000 => Some("reserved (not global unicast)"),
        [0x2001, 0x0db8, ..] => Some("documentation"),
        [0x3fff, second, ..] if second & 0xf000 == 0 => Some("documentation"),
        // 2001::/23: benchmarking, ORCHID and other IETF protocol assignments.
        [0x2001, second, ..] if second < 0x0200 => Some("IETF protocol assignment"),
        _ => None,
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("carrier-grade NAT (shared)")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else if ip.is_documentation() || (a == 198 && (b == 18 || b == 19)) {
        Some("documentation or benchmarking")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("IETF protocol assignment")
    } else {
        None
    }
}

/// Checks one resolved address of `host` against `policy`.
pub fn check_addr(host: &str, addr: IpAddr, policy: TargetPolicy) -> Result<(), TargetError> {
    match non_public_kind(addr) {
        Some(kind) if !policy.allow_private_targets => Err(TargetError::Private {
            host: host.to_owned(),
            addr,
            kind,
        }),
        _ => Ok(()),
    }
}

/// Resolves `host` and checks every address: all must pass, so a name that resolves to
/// one public and one private address is refused.
pub async fn resolve_checked(
    host: &str,
    port: u16,
    policy: TargetPolicy,
) -> Result<Vec<SocketAddr>, TargetError> {
    let addrs: Vec<SocketAddr> = match literal_ip(host) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| TargetError::Unresolvable {
                host: host.to_owned(),
                reason: e.to_string(),
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(TargetError::Unresolvable {
            host: host.to_owned(),
            reason: "no addresses".into(),
        });
    }
    for addr in &addrs {
        check_addr(host, addr.ip(), policy)?;
    }
    Ok(addrs)
}

/// Checks a URL fully: its form, then every address its host resolves to.
pub async fn check_target(text: &str, policy: TargetPolicy) -> Result<Url, TargetError> {
    let url = check_url(text, policy)?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    resolve_checked(&host, port, policy).await?;
    Ok(url)
}

/// The delivery client's DNS resolver: resolves, then refuses the connection unless every
/// address passes the policy. Connections go only to addresses it returned.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    /// The operator's policy.
    pub policy: TargetPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The port is replaced by the URL's; 0 only satisfies the lookup.
            let addrs = resolve_checked(&host, 0, policy).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_http: false,
        allow_private_targets: false,
    };

    #[test]
    fn only_https_without_credentials_by_default() {
        assert!(check_url("https://hooks.example.com/mk", STRICT).is_ok());
        assert_eq!(
            check_url("http://hooks.example.com/mk", STRICT),
            Err(TargetError::Scheme)
        );
        assert_eq!(
            check_url("ftp://hooks.example.com/", STRICT),
            Err(TargetError::Scheme)
        );
        assert_eq!(
            check_url("https://user:pw@hooks.example.com/", STRICT),
            Err(TargetError::Credentials)
        );
        assert!(matches!(
            check_url("not a url", STRICT),
            Err(TargetError::Invalid(_))
        ));
        let http = TargetPolicy {
            allow_http: true,
            ..STRICT
        };
        assert!(check_url("http://hooks.example.com/mk", http).is_ok());
    }

    #[test]
    fn request_flags_narrow_the_policy_but_never_widen_it() {
        let open = TargetPolicy {
            allow_http: true,
            allow_private_targets: true,
        };
        assert_eq!(STRICT.narrowed(Some(true), Some(true)), STRICT);
        assert_eq!(STRICT.narrowed(None, None), STRICT);
        assert_eq!(open.narrowed(None, None), open);
        assert_eq!(open.narrowed(Some(true), Some(true)), open);
        assert_eq!(open.narrowed(Some(false), Some(false)), STRICT);
        assert_eq!(
            open.narrowed(None, Some(false)),
            TargetPolicy {
                allow_http: true,
                allow_private_targets: false
            }
        );
    }

    #[test]
    fn non_public_addresses_are_classified() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(non_public_kind(ip).is_some(), "{private} is not public");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert_eq!(non_public_kind(ip), None, "{public} is public");
        }
    }

    /// Every IPv6 form that embeds or stands for a non-public address is refused, and
    /// global unicast (including 6to4, Teredo and NAT64 of public IPv4) is allowed. Only
    /// the guard's decision is checked: nothing here connects anywhere.
    #[test]
    fn ipv6_forms_of_non_public_addresses_are_refused() {
        const REFUSED: bool = false;
        const ALLOWED: bool = true;
        let table: &[(&str, bool, &str)] = &[
            ("::127.0.0.1", REFUSED, "IPv4-compatible of loopback"),
            (
                "::8.8.8.8",
                REFUSED,
                "IPv4-compatible (deprecated) of a public address",
            ),
            ("::ffff:0:7f00:1", REFUSED, "IPv4-translated of loopback"),
            (
                "::ffff:0:808:808",
                REFUSED,
                "IPv4-translated of a public address",
            ),
            ("2002:7f00:1::", REFUSED, "6to4 of 127.0.0.1"),
            ("2002:a00:1::1", REFUSED, "6to4 of 10.0.0.1"),
            ("2002:a9fe:a9fe::", REFUSED, "6to4 of 169.254.169.254"),
            ("2002:808:808::1", ALLOWED, "6to4 of 8.8.8.8"),
            (
                "2001:0:808:808::f5ff:fffe",
                REFUSED,
                "Teredo, client 10.0.0.1",
            ),
            (
                "2001:0:7f00:1::f7f7:fbfb",
                REFUSED,
                "Teredo, server 127.0.0.1",
            ),
            (
                "2001:0:808:808::f7f7:fbfb",
                ALLOWED,
                "Teredo, server 8.8.8.8, client 8.8.4.4",
            ),
            ("64:ff9b::7f00:1", REFUSED, "NAT64 of 127.0.0.1"),
            ("64:ff9b::a9fe:a9fe", REFUSED, "NAT64 of 169.254.169.254"),
            ("64:ff9b::808:808", ALLOWED, "NAT64 of 8.8.8.8"),
            ("64:ff9b:1::808:808", REFUSED, "local-use NAT64 (RFC 8215)"),
            (
                "64:ff9b:1:ffff::a00:1",
                REFUSED,
                "local-use NAT64 of 10.0.0.1",
            ),
            ("::ffff:127.0.0.1", REFUSED, "IPv4-mapped of loopback"),
            ("::ffff:10.0.0.1", REFUSED, "IPv4-mapped of 10.0.0.1"),
            ("fec0::1", REFUSED, "site-local (deprecated)"),
            ("feff::1", REFUSED, "site-local, top of fec0::/10"),
            ("100::1", REFUSED, "discard-only"),
            ("fe80::1", REFUSED, "link-local"),
            ("fc00::1", REFUSED, "unique-local"),
            (
                "fd00:ec2::254",
                REFUSED,
                "unique-local (AWS metadata over IPv6)",
            ),
            ("ff02::1", REFUSED, "multicast"),
            ("::1", REFUSED, "loopback"),
            ("::", REFUSED, "unspecified"),
            ("::2", REFUSED, "reserved (::/96)"),
            ("2001:db8::1", REFUSED, "documentation"),
            ("3fff::1", REFUSED, "documentation (RFC 9637)"),
            ("2001:2::1", REFUSED, "benchmarking"),
            ("2001:10::1", REFUSED, "ORCHID"),
            ("2001:20::1", REFUSED, "ORCHIDv2"),
            ("5f00::1", REFUSED, "SRv6 SIDs (RFC 9602)"),
            ("4000::1", REFUSED, "not in global unicast 2000::/3"),
            ("2606:4700::1111", ALLOWED, "global unicast"),
            ("2001:4860:4860::8888", ALLOWED, "global unicast"),
            ("2a00:1450:4001:80b::200e", ALLOWED, "global unicast"),
            ("127.0.0.1", REFUSED, "IPv4 loopback"),
            ("93.184.216.34", ALLOWED, "public IPv4"),
        ];
        let open = TargetPolicy {
            allow_http: false,
            allow_private_targets: true,
        };
        let mut wrong = Vec::new();
        for &(text, allowed, what) in table {
            let ip: IpAddr = text.parse().unwrap_or_else(|_| panic!("{text} parses"));
            let url = match ip {
                IpAddr::V6(_) => format!("https://[{text}]/hook"),
                IpAddr::V4(_) => format!("https://{text}/hook"),
            };
            let decision = check_url(&url, STRICT);
            let refused_as_private = matches!(decision, Err(TargetError::Private { .. }));
            let right = non_public_kind(ip).is_none() == allowed
                && decision.is_ok() == allowed
                && (allowed || refused_as_private)
                && check_url(&url, open).is_ok();
            if !right {
                let said = if decision.is_ok() {
                    "allowed"
                } else {
                    "refused"
                };
                wrong.push(format!("{url} ({what}): {said}"));
            }
        }
        assert!(wrong.is_empty(), "wrong decisions:\n{}", wrong.join("\n"));
    }

    #[tokio::test]
    async fn private_targets_need_the_flag() {
        let err = check_target("https://127.0.0.1:9/hook", STRICT)
            .await
            .unwrap_err();
        assert!(matches!(err, TargetError::Private { .. }), "{err}");
        let err = check_target("https://[::1]/hook", STRICT)
            .await
            .unwrap_err();
        assert!(matches!(err, TargetError::Private { .. }), "{err}");
        let err = check_target("https://localhost/hook", STRICT)
            .await
            .unwrap_err();
        assert!(matches!(err, TargetError::Private { .. }), "{err}");
        let open = TargetPolicy {
            allow_http: true,
            allow_private_targets: true,
        };
        assert!(check_target("http://127.0.0.1:9/hook", open).await.is_ok());
    }
}
