//! [`PrivateKeyJwt`]: client authentication with a signed JWT instead of a secret
//! (`private_key_jwt`, RFC 7523 §2.2 and §3): the server holds only the public key.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::configuration::Configuration;
use crate::error::CredentialError;
use crate::jwt::random_jti;
use crate::private_key::PrivateKey;
use crate::secret::Secret;
use crate::token_request::GenerateAccessTokenOpts;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub(crate) const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid by default: long enough for one request.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
/// The longest lifetime the server accepts.
const MAX_LIFETIME: Duration = Duration::from_secs(300);

/// Makes client assertions: a fresh signed JWT for every request, so none can be
/// replayed (each has its own `jti`, and the server refuses one it has seen).
///
/// The JWT has `iss` and `sub` = the client id, `aud` = the server's issuer identifier
/// (a single string), `iat`, `exp` = `iat` + the lifetime, and a random 128-bit `jti`; its
/// header has `alg`, `typ: JWT` and the key's `kid` if it has one.
///
/// ```no_run
/// use moneykit::{AccessTokenApi, Configuration, PrivateKey, PrivateKeyJwt};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Configuration::self_hosted("https://auth.example.com")?;
/// let key = PrivateKey::from_file("client-key.pem")?;
/// let assertions = PrivateKeyJwt::new(&config, "live_…", key);
/// let api = AccessTokenApi::new(config)?;
/// let token = api.generate_access_token(assertions.token_request()?).await?;
/// # let _ = token;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PrivateKeyJwt {
    client_id: String,
    key: Arc<PrivateKey>,
    audience: String,
    lifetime: Duration,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

impl PrivateKeyJwt {
    /// Assertions for `client_id`, signed with `key`, for the server of `configuration`:
    /// its base URL (without a trailing slash) is the audience.
    pub fn new(
        configuration: &Configuration,
        client_id: impl Into<String>,
        key: impl Into<Arc<PrivateKey>>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            key: key.into(),
            audience: configuration.host.trim_end_matches('/').to_owned(),
            lifetime: DEFAULT_LIFETIME,
        }
    }

    /// Sets `aud`: for a server whose issuer identifier is not the URL the requests go
    /// to (behind a proxy, for example).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Sets how long each assertion is valid (default 60 s), in whole seconds from 1 s to
    /// the 5 minutes the server allows.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.clamp(Duration::from_secs(1), MAX_LIFETIME);
        self
    }

    /// The client the assertions are for.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// A new signed assertion (compact JWT), issued now.
    pub fn assertion(&self) -> Result<Secret, CredentialError> {
        self.assertion_at(crate::jwt::unix_now())
    }

    fn assertion_at(&self, now: i64) -> Result<Secret, CredentialError> {
        let header = Header {
            alg: self.key.algorithm().as_str(),
            typ: "JWT",
            kid: self.key.key_id(),
        };
        let claims = Claims {
            iss: &self.client_id,
            sub: &self.client_id,
            aud: &self.audience,
            iat: now,
            exp: now + self.lifetime.as_secs() as i64,
            jti: random_jti()?,
        };
        let mut jwt = [json_part(&header)?, json_part(&claims)?].join(".");
        let signature = self.key.sign(jwt.as_bytes())?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jwt);
        Ok(Secret::new(jwt))
    }

    /// The form of a client-credentials request authenticated by a new assertion; set
    /// `scope` or `resource` on it as needed.
    pub fn token_request(&self) -> Result<GenerateAccessTokenOpts, CredentialError> {
        Ok(GenerateAccessTokenOpts {
            grant_type: Some("client_credentials".into()),
            client_id: Some(self.client_id.clone()),
            client_assertion_type: Some(JWT_BEARER_ASSERTION_TYPE.into()),
            client_assertion: Some(self.assertion()?.expose().to_owned()),
            ..Default::default()
        })
    }
}

fn json_part(value: &impl Serialize) -> Result<String, CredentialError> {
    let json = serde_json::to_vec(value)
        .map_err(|_| CredentialError::new("cannot encode the assertion"))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::private_key::tests::generated_keys;

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    fn config() -> Configuration {
        // A trailing slash, which the audience must not keep.
        Configuration::moneykit().host("http://127.0.0.1:8080/")
    }

    #[test]
    fn assertions_carry_the_claims_the_server_checks_and_verify() {
        for (algorithm, pem, verifier) in generated_keys() {
            let key = PrivateKey::from_pem(pem.as_bytes())
                .unwrap()
                .with_key_id("k1");
            let assertions = PrivateKeyJwt::new(&config(), "live_abc", key);
            let jwt = assertions.assertion_at(1_700_000_000).unwrap();
            let parts: Vec<&str> = jwt.expose().split('.').collect();
            assert_eq!(parts.len(), 3);
            assert_eq!(
                decode(parts[0]),
                serde_json::json!({"alg": algorithm.as_str(), "typ": "JWT", "kid": "k1"})
            );
            let claims = decode(parts[1]);
            assert_eq!(claims["iss"], "live_abc");
            assert_eq!(claims["sub"], "live_abc");
            assert_eq!(claims["aud"], Value::from("http://127.0.0.1:8080"));
            assert_eq!(claims["iat"], 1_700_000_000);
            assert_eq!(claims["exp"], 1_700_000_060);
            let jti = URL_SAFE_NO_PAD
                .decode(claims["jti"].as_str().unwrap())
                .unwrap();
            assert_eq!(jti.len(), 16);
            assert_eq!(claims.as_object().unwrap().len(), 6, "{claims}");
            let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
            let signed = format!("{}.{}", parts[0], parts[1]);
            assert!(
                verifier.verify(signed.as_bytes(), &signature),
                "{algorithm}"
            );
        }
    }

    #[test]
    fn every_assertion_is_new() {
        let (_, pem, _) = generated_keys().remove(2);
        let key = PrivateKey::from_pem(pem.as_bytes()).unwrap();
        let assertions = PrivateKeyJwt::new(&config(), "live_abc", key);
        let jtis: std::collections::HashSet<String> = (0..50)
            .map(|_| {
                let jwt = assertions.assertion_at(1).unwrap();
                let claims = decode(jwt.expose().split('.').nth(1).unwrap());
                claims["jti"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(jtis.len(), 50);
    }

    #[test]
    fn audience_and_lifetime_can_be_set_within_bounds() {
        let (_, pem, _) = generated_keys().remove(0);
        let key = Arc::new(PrivateKey::from_pem(pem.as_bytes()).unwrap());
        let claims = |assertions: PrivateKeyJwt| {
            let jwt = assertions.assertion_at(1000).unwrap();
            let claims = decode(jwt.expose().split('.').nth(1).unwrap());
            (
                claims["aud"].clone(),
                claims["exp"].as_i64().unwrap() - 1000,
            )
        };
        let base = PrivateKeyJwt::new(&config(), "c", key.clone());
        assert_eq!(
            claims(base.clone().audience("https://auth.example.com")),
            (Value::from("https://auth.example.com"), 60)
        );
        let lifetime = |d| claims(base.clone().lifetime(d)).1;
        assert_eq!(lifetime(Duration::from_secs(30)), 30);
        assert_eq!(lifetime(Duration::from_secs(3600)), 300);
        assert_eq!(lifetime(Duration::ZERO), 1);
        let header = decode(
            base.assertion()
                .unwrap()
                .expose()
                .split('.')
                .next()
                .unwrap(),
        );
        assert!(
            header.get("kid").is_none(),
            "no kid without a key id: {header}"
        );
    }

    #[test]
    fn token_requests_are_client_credentials_with_an_assertion() {
        let (_, pem, _) = generated_keys().remove(0);
        let key = PrivateKey::from_pem(pem.as_bytes()).unwrap();
        let form = PrivateKeyJwt::new(&config(), "live_abc", key)
            .token_request()
            .unwrap();
        let names: Vec<&str> = form.pairs().iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "grant_type",
                "client_id",
                "client_assertion_type",
                "client_assertion"
            ]
        );
        assert_eq!(form.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(form.client_id.as_deref(), Some("live_abc"));
        assert_eq!(
            form.client_assertion_type.as_deref(),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        assert!(form.client_secret.is_none());
    }
}
