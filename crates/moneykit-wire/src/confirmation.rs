//! The `cnf` (confirmation) claim of a sender-constrained token: what a presenter must
//! prove it holds besides the token (RFC 7800).

use serde::{Deserialize, Serialize};

/// The key or certificate a token is bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Confirmation {
    /// RFC 9449 §6.1: the RFC 7638 SHA-256 thumbprint (base64url) of the public key whose
    /// DPoP proofs must accompany the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// RFC 8705 §3.1: the SHA-256 thumbprint (base64url) of the DER of the client
    /// certificate the token must be presented with.
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl Confirmation {
    /// Whether the confirmation binds to nothing.
    pub fn is_empty(&self) -> bool {
        self.jkt.is_none() && self.x5t_s256.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_use_their_registered_names() {
        let cnf = Confirmation {
            jkt: Some("a".into()),
            x5t_s256: Some("b".into()),
        };
        let json = serde_json::to_string(&cnf).unwrap();
        assert_eq!(json, r#"{"jkt":"a","x5t#S256":"b"}"#);
        assert_eq!(serde_json::from_str::<Confirmation>(&json).unwrap(), cnf);
        assert_eq!(
            serde_json::to_string(&Confirmation::default()).unwrap(),
            "{}"
        );
    }
}
