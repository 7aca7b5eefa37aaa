//! Apps and clients as the service knows them.

use time::OffsetDateTime;

use super::certificates::TlsIdentity;
use super::scope::Scopes;
use super::secrets::StoredSecret;

/// An app: the owner of clients and (later) of a webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// `app_…` id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// Where its webhooks are delivered; `None`: no webhooks.
    pub webhook_url: Option<String>,
}

/// A client: one set of credentials of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// `live_…` id; also the `sub` and `client_id` of its tokens.
    pub id: String,
    /// The app it belongs to.
    pub app_id: String,
    /// Display name.
    pub name: String,
    /// The scopes it may ask for.
    pub scopes: Scopes,
    /// The audiences it may ask for, the first being its default; empty: only the
    /// server's default audience.
    pub audiences: Vec<String>,
    /// Lifetime of its tokens in seconds, overriding the server default when set.
    pub token_ttl_secs: Option<u32>,
    /// How it proves who it is.
    pub auth: ClientAuth,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it is (or will be) disabled; `None` while enabled.
    pub disabled_at: Option<OffsetDateTime>,
    /// Whether its token requests must carry a DPoP proof (RFC 9449 §5), so it only ever
    /// gets tokens bound to a key.
    pub require_dpop: bool,
}

/// How a client authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// With a secret (`client_secret_basic` or `client_secret_post`): any of these that
    /// has not expired; during a rotation's grace, the old and the new.
    Secret(Vec<StoredSecret>),
    /// With a JWT signed by one of its keys (`private_key_jwt`); it has no secret.
    PrivateKeyJwt(ClientKeys),
    /// With a client certificate that chains to a configured CA and shows this identity
    /// (`tls_client_auth`, RFC 8705 §2.1).
    TlsClientAuth(TlsIdentity),
    /// With one of these self-signed certificates, by their `x5t#S256` thumbprints
    /// (`self_signed_tls_client_auth`, RFC 8705 §2.2).
    SelfSignedTls(Vec<String>),
}

/// Where a `private_key_jwt` client's public keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientKeys {
    /// A registered JWKS document.
    Jwks(String),
    /// A JWKS URL the client publishes, fetched and cached in the background.
    Uri(String),
}

impl ClientAuth {
    /// The RFC 7591 name of the method: `client_secret_basic` stands for both secret
    /// methods (a secret client may use either).
    pub fn method(&self) -> &'static str {
        match self {
            ClientAuth::Secret(_) => "client_secret_basic",
            ClientAuth::PrivateKeyJwt(_) => "private_key_jwt",
            ClientAuth::TlsClientAuth(_) => "tls_client_auth",
            ClientAuth::SelfSignedTls(_) => "self_signed_tls_client_auth",
        }
    }
}

impl Client {
    /// Whether the client is disabled at `now`: a scheduled disablement takes effect at
    /// its time, not before.
    pub fn is_disabled(&self, now: OffsetDateTime) -> bool {
        self.disabled_at.is_some_and(|at| at <= now)
    }

    /// The audiences it may ask for, given the server default: its own list, or the
    /// default alone.
    pub fn allowed_audiences<'a>(&'a self, default: &'a String) -> &'a [String] {
        if self.audiences.is_empty() {
            std::slice::from_ref(default)
        } else {
            &self.audiences
        }
    }

    /// The lifetime its tokens get, given the server default.
    pub fn token_ttl(&self, default_secs: u32) -> u32 {
        self.token_ttl_secs.unwrap_or(default_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn client(disabled_at: Option<OffsetDateTime>) -> Client {
        Client {
            id: "live_1".into(),
            app_id: "app_1".into(),
            name: "c".into(),
            scopes: Scopes::default(),
            audiences: Vec::new(),
            token_ttl_secs: None,
            auth: ClientAuth::Secret(Vec::new()),
            created_at: OffsetDateTime::UNIX_EPOCH,
            disabled_at,
            require_dpop: false,
        }
    }

    #[test]
    fn scheduled_disablement_takes_effect_at_its_time() {
        let now = OffsetDateTime::now_utc();
        let c = client(Some(now + Duration::minutes(5)));
        assert!(!c.is_disabled(now));
        assert!(c.is_disabled(now + Duration::minutes(5)));
        assert!(!client(None).is_disabled(now));
        assert!(client(Some(now)).is_disabled(now));
    }

    #[test]
    fn client_ttl_overrides_the_default() {
        let mut c = client(None);
        assert_eq!(c.token_ttl(3600), 3600);
        c.token_ttl_secs = Some(60);
        assert_eq!(c.token_ttl(3600), 60);
    }
}
