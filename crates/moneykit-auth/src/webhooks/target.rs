//! Which URLs may receive webhooks: the guard against server-side request forgery.
//!
//! A webhook URL is chosen by whoever administers an app, and the server POSTs to it from
//! inside the operator's network. So by default only `https` URLs are accepted, and only
//! when every address the host resolves to is a public unicast address: loopback, private
//! (RFC 1918, unique-local), link-local (which includes the cloud metadata address
//! 169.254.169.254), carrier-grade NAT, multicast, documentation and unspecified
//! addresses are refused, as are IPv6 forms of them (IPv4-mapped, NAT64). The checks run
//! when the URL is set *and* on every delivery, against the addresses actually connected
//! to ([`GuardedResolver`]), so a DNS answer that changes after the URL was accepted
//! (rebinding) gains nothing. Redirects are not followed.
//!
//! Operators opt out explicitly: `allow_http` for plain-HTTP endpoints, and
//! `allow_private_targets` for receivers on their own network (tests use both for
//! `127.0.0.1`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

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

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL.
    #[error("not a valid URL: {0}")]
    Invalid(String),
    /// Not https (or http when allowed).
    #[error("webhook URLs must use https (http needs the operator's allow-http flag)")]
    Scheme,
    /// Credentials in the URL would be sent to, and logged by, whatever is at the host.
    #[error("webhook URLs must not contain a user name or password")]
    Credentials,
    /// The host is or resolves to a non-public address.
    #[error(
        "{host} resolves to {addr}, a {kind} address; webhooks to it need the operator's allow-private-targets flag"
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
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_kind(v4);
            }
            let seg = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                Some("unique-local (private)")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if seg[0] & 0xff00 == 0xff00 {
                Some("multicast")
            } else if seg[0] == 0x0064 && seg[1] == 0xff9b {
                // NAT64: the embedded IPv4 address decides.
                let v4 = Ipv4Addr::new(
                    (seg[6] >> 8) as u8,
                    seg[6] as u8,
                    (seg[7] >> 8) as u8,
                    seg[7] as u8,
                );
                v4_kind(v4)
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                Some("documentation")
            } else {
                None
            }
        }
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
