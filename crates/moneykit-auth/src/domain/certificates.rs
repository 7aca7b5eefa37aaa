//! Client certificates (RFC 8705): what a presented certificate says about its holder,
//! the identities a `tls_client_auth` client registers, and the thumbprint a
//! certificate-bound token carries.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid_registry, oid2abbrev};
use x509_parser::x509::X509Name;

/// A client certificate presented on a request: its leaf, read once per connection (or
/// per forwarded header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// `x5t#S256`: base64url SHA-256 of the leaf's DER (RFC 8705 §3.1).
    pub thumbprint: String,
    /// The subject's attributes in the certificate's order, types as short names
    /// (`CN`, `O`, …; dotted OIDs for the rest).
    pub subject: Vec<(String, String)>,
    /// The subject alternative names a client may be registered by.
    pub alternative_names: Vec<TlsIdentity>,
    /// Validity (Unix seconds).
    pub not_before: i64,
    /// Validity (Unix seconds).
    pub not_after: i64,
    /// Whether the chain verified against the configured client CAs (`--client-ca-file`)
    /// for TLS client use, when it was presented; why not, otherwise (no CA configured,
    /// another CA, expired, …).
    pub chain: Result<(), String>,
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an X.509 certificate")]
pub struct NotACertificate;

impl ClientCertificate {
    /// Reads a leaf certificate's DER; `chain` is the TLS layer's verdict on its chain.
    pub fn from_der(der: &[u8], chain: Result<(), String>) -> Result<Self, NotACertificate> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| NotACertificate)?;
        if !rest.is_empty() {
            return Err(NotACertificate);
        }
        let alternative_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(TlsIdentity::Dns((*dns).to_owned())),
                    GeneralName::URI(uri) => Some(TlsIdentity::Uri((*uri).to_owned())),
                    GeneralName::RFC822Name(email) => Some(TlsIdentity::Email((*email).to_owned())),
                    GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(TlsIdentity::Ip),
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(_) => return Err(NotACertificate),
        };
        Ok(Self {
            thumbprint: thumbprint(der),
            subject: name_attributes(cert.subject()),
            alternative_names,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            chain,
        })
    }

    /// Whether `now` (Unix seconds) is within its validity.
    pub fn is_current(&self, now: i64) -> bool {
        (self.not_before..=self.not_after).contains(&now)
    }
}

/// `x5t#S256` of a certificate's DER: base64url SHA-256.
pub fn thumbprint(der: &[u8]) -> String {
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    URL_SAFE_NO_PAD.encode(hash.as_ref())
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

fn name_attributes(name: &X509Name<'_>) -> Vec<(String, String)> {
    name.iter_attributes()
        .map(|attribute| {
            let kind = oid2abbrev(attribute.attr_type(), oid_registry())
                .map_or_else(|_| attribute.attr_type().to_id_string(), str::to_owned);
            let value = attribute
                .as_str()
                .map_or_else(|_| hex::encode(attribute.as_slice()), str::to_owned);
            (kind.to_ascii_uppercase(), value)
        })
        .collect()
}

/// What a `tls_client_auth` client is registered by (RFC 8705 §2.1.2): its subject
/// distinguished name, or one subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsIdentity {
    /// `tls_client_auth_subject_dn`: an RFC 4514 string such as `CN=billing,O=Acme`.
    SubjectDn(String),
    /// `tls_client_auth_san_dns`.
    Dns(String),
    /// `tls_client_auth_san_uri`.
    Uri(String),
    /// `tls_client_auth_san_email`.
    Email(String),
    /// `tls_client_auth_san_ip`.
    Ip(IpAddr),
}

/// Why a registered identity is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not an RFC 4514 distinguished name.
    #[error("{0:?} is not a distinguished name such as CN=billing,O=Acme")]
    Dn(String),
    /// Empty or too long.
    #[error("the TLS identity must be 1 to 1024 characters")]
    Length,
}

impl TlsIdentity {
    /// The RFC 8705 metadata name of the identity's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            TlsIdentity::SubjectDn(_) => "tls_client_auth_subject_dn",
            TlsIdentity::Dns(_) => "tls_client_auth_san_dns",
            TlsIdentity::Uri(_) => "tls_client_auth_san_uri",
            TlsIdentity::Email(_) => "tls_client_auth_san_email",
            TlsIdentity::Ip(_) => "tls_client_auth_san_ip",
        }
    }

    /// The identity of kind `kind` (a name [`Self::kind`] gives) with `value`; `None` for
    /// an unknown kind or an IP value that is not an address.
    pub fn from_kind(kind: &str, value: &str) -> Option<Self> {
        let value = value.to_owned();
        Some(match kind {
            "tls_client_auth_subject_dn" => TlsIdentity::SubjectDn(value),
            "tls_client_auth_san_dns" => TlsIdentity::Dns(value),
            "tls_client_auth_san_uri" => TlsIdentity::Uri(value),
            "tls_client_auth_san_email" => TlsIdentity::Email(value),
            "tls_client_auth_san_ip" => TlsIdentity::Ip(value.parse().ok()?),
            _ => return None,
        })
    }

    /// The identity's value, as registered.
    pub fn value(&self) -> String {
        match self {
            TlsIdentity::SubjectDn(v)
            | TlsIdentity::Dns(v)
            | TlsIdentity::Uri(v)
            | TlsIdentity::Email(v) => v.clone(),
            TlsIdentity::Ip(ip) => ip.to_string(),
        }
    }

    /// Checks a value about to be registered: a subject DN must parse.
    pub fn check(&self) -> Result<(), IdentityError> {
        let value = self.value();
        if value.is_empty() || value.len() > 1024 {
            return Err(IdentityError::Length);
        }
        if let TlsIdentity::SubjectDn(dn) = self {
            parse_dn(dn).ok_or_else(|| IdentityError::Dn(dn.clone()))?;
        }
        Ok(())
    }

    /// Whether `cert` shows this identity: the subject DN equal attribute by attribute
    /// (types case-insensitive, values exact; in the certificate's order or RFC 4514's
    /// reversed one), or one subject alternative name equal (DNS names case-insensitive).
    pub fn matches(&self, cert: &ClientCertificate) -> bool {
        match self {
            TlsIdentity::SubjectDn(dn) => parse_dn(dn).is_some_and(|wanted| {
                wanted == cert.subject || wanted.iter().rev().eq(cert.subject.iter())
            }),
            TlsIdentity::Dns(name) => cert
                .alternative_names
                .iter()
                .any(|n| matches!(n, TlsIdentity::Dns(d) if d.eq_ignore_ascii_case(name))),
            other => cert.alternative_names.contains(other),
        }
    }
}

/// Parses an RFC 4514 distinguished name into (TYPE, value) pairs, in the string's order:
/// `,` and `+` separate attributes, `\` escapes the next character (or two hex digits),
/// spaces around separators are dropped. `None` when malformed.
pub fn parse_dn(dn: &str) -> Option<Vec<(String, String)>> {
    let mut attributes = Vec::new();
    let mut current = String::new();
    let mut chars = dn.chars().peekable();
    let mut push = |raw: &str| -> Option<()> {
        let (kind, value) = raw.split_once('=')?;
        let kind = kind.trim();
        let value = value.trim();
        if kind.is_empty() || value.is_empty() {
            return None;
        }
        attributes.push((kind.to_ascii_uppercase(), value.to_owned()));
        Some(())
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next()?;
                let hex: String = [next].into_iter().chain(chars.peek().copied()).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(byte) if hex.len() == 2 && byte.is_ascii() => {
                        chars.next();
                        current.push(char::from(byte));
                    }
                    _ => current.push(next),
                }
            }
            ',' | '+' => {
                push(&current)?;
                current.clear();
            }
            // A value's own `=` stays; only the first one of each attribute splits.
            _ => current.push(c),
        }
    }
    push(&current)?;
    Some(attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(subject: &[(&str, &str)], names: Vec<TlsIdentity>) -> ClientCertificate {
        ClientCertificate {
            thumbprint: String::new(),
            subject: subject
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            alternative_names: names,
            not_before: 0,
            not_after: 100,
            chain: Ok(()),
        }
    }

    #[test]
    fn distinguished_names_parse_with_escapes() {
        assert_eq!(
            parse_dn("CN=billing, O=Acme\\, Inc.+OU=ops").unwrap(),
            [
                ("CN".to_owned(), "billing".to_owned()),
                ("O".to_owned(), "Acme, Inc.".to_owned()),
                ("OU".to_owned(), "ops".to_owned()),
            ]
        );
        assert_eq!(
            parse_dn("cn=a\\2Cb").unwrap(),
            [("CN".into(), "a,b".into())]
        );
        for bad in ["", "CN", "=x", "CN=", "CN=a,,O=b", "CN=a\\"] {
            assert!(parse_dn(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn identities_read_back_from_their_kind_and_value() {
        for identity in [
            TlsIdentity::SubjectDn("CN=a,O=b".into()),
            TlsIdentity::Dns("a.test".into()),
            TlsIdentity::Uri("spiffe://a/b".into()),
            TlsIdentity::Email("a@b.test".into()),
            TlsIdentity::Ip("::1".parse().unwrap()),
        ] {
            let back = TlsIdentity::from_kind(identity.kind(), &identity.value());
            assert_eq!(back, Some(identity));
        }
        assert_eq!(TlsIdentity::from_kind("tls_client_auth_san_ip", "x"), None);
        assert_eq!(TlsIdentity::from_kind("other", "x"), None);
    }

    #[test]
    fn identities_match_subjects_and_alternative_names() {
        let c = cert(
            &[("C", "US"), ("O", "Acme"), ("CN", "billing")],
            vec![
                TlsIdentity::Dns("Billing.Example".into()),
                TlsIdentity::Ip("127.0.0.1".parse().unwrap()),
            ],
        );
        assert!(TlsIdentity::SubjectDn("CN=billing,O=Acme,C=US".into()).matches(&c));
        assert!(TlsIdentity::SubjectDn("c=US, o=Acme, cn=billing".into()).matches(&c));
        assert!(!TlsIdentity::SubjectDn("CN=billing,O=Acme".into()).matches(&c));
        assert!(!TlsIdentity::SubjectDn("CN=Billing,O=Acme,C=US".into()).matches(&c));
        assert!(TlsIdentity::Dns("billing.example".into()).matches(&c));
        assert!(!TlsIdentity::Dns("other.example".into()).matches(&c));
        assert!(TlsIdentity::Ip("127.0.0.1".parse().unwrap()).matches(&c));
        assert!(!TlsIdentity::Uri("spiffe://x".into()).matches(&c));
        assert!(c.is_current(50) && !c.is_current(101));
    }
}
