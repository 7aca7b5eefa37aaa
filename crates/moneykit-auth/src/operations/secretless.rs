//! Clients without secrets: registering the public keys of a `private_key_jwt` client or
//! the certificate identity of an mTLS one (RFC 8705),
//! and the trust rules that let federated workloads get a client's tokens with their
//! platform's token. Every input is checked before anything is written: a JWKS must
//! parse and hold public keys only, and every URL passes the SSRF guard.

use crate::crypto::jose::{Strictness, parse_jwks};
use crate::domain::assertions::{IssuerKeys, TrustRule, discovery_url};
use crate::domain::certificates::{ClientCertificate, TlsIdentity, thumbprint};
use crate::domain::clients::{Client, ClientAuth, ClientKeys};
use crate::domain::ids::new_trust_rule_id;
use crate::net::guard::{self, TargetPolicy};
use crate::store::Store;
use serde_json::Value;

use super::audit::{self, Actor, Change};
use super::{
    AdminError, ClientUpdate, NewClient, change_client, insert_new_client, managed_client, now,
    views,
};

/// Largest JWKS document registered: a handful of RSA keys fit in a few KiB.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// Longest issuer, subject or audience of a trust rule.
const MAX_RULE_VALUE: usize = 1024;

/// A client's keys as given: a JWKS document, or the URL the client publishes it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysInput {
    /// A JWKS document (`--jwks-file`).
    Jwks(String),
    /// A JWKS URL (`--jwks-uri`).
    Uri(String),
}

impl KeysInput {
    /// A JWKS document or a URL, whichever was given; both is refused.
    pub fn either(jwks: Option<&str>, uri: Option<&str>) -> Result<Option<Self>, AdminError> {
        match (jwks, uri) {
            (Some(_), Some(_)) => Err(AdminError::Invalid(
                "give jwks or jwks_uri, not both".into(),
            )),
            (Some(jwks), None) => Ok(Some(KeysInput::Jwks(jwks.to_owned()))),
            (None, Some(uri)) => Ok(Some(KeysInput::Uri(uri.to_owned()))),
            (None, None) => Ok(None),
        }
    }
}

/// Checks a JWKS document: public keys this server can verify with, nothing private.
fn check_jwks(jwks: &str) -> Result<String, AdminError> {
    if jwks.len() > MAX_JWKS_BYTES {
        return Err(AdminError::Invalid(format!(
            "jwks: larger than {MAX_JWKS_BYTES} bytes"
        )));
    }
    parse_jwks(jwks.as_bytes(), Strictness::Every)
        .map_err(|e| AdminError::Invalid(format!("jwks: {e}")))?;
    Ok(jwks.trim().to_owned())
}

/// Checks a URL the server will fetch keys from, against `policy`, addresses included.
async fn check_fetch_url(
    what: &str,
    url: &str,
    policy: TargetPolicy,
) -> Result<String, AdminError> {
    guard::check_target(url, policy)
        .await
        .map(|u| u.to_string())
        .map_err(|e| AdminError::Invalid(format!("{what}: {e}")))
}

async fn check_keys(keys: &KeysInput, policy: TargetPolicy) -> Result<ClientKeys, AdminError> {
    Ok(match keys {
        KeysInput::Jwks(jwks) => ClientKeys::Jwks(check_jwks(jwks)?),
        KeysInput::Uri(uri) => ClientKeys::Uri(check_fetch_url("jwks_uri", uri, policy).await?),
    })
}

/// How a client without a secret proves who it is, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretlessAuth {
    /// `private_key_jwt` with these keys.
    Keys(KeysInput),
    /// `tls_client_auth`: a certificate from a configured client CA showing this identity.
    Tls(TlsIdentity),
    /// `self_signed_tls_client_auth`: one of the certificates in this PEM (`--cert-file`).
    SelfSigned(String),
}

impl SecretlessAuth {
    /// The RFC 7591 name of the method these credentials are for.
    pub fn method(&self) -> &'static str {
        match self {
            SecretlessAuth::Keys(_) => "private_key_jwt",
            SecretlessAuth::Tls(_) => "tls_client_auth",
            SecretlessAuth::SelfSigned(_) => "self_signed_tls_client_auth",
        }
    }
}

/// The credentials of a client being created or changed, checked against the method
/// named (`None`: the one they imply; a secret without any): what the CLI and the admin
/// API both take.
pub fn credentials_for_method(
    method: Option<&str>,
    given: Option<SecretlessAuth>,
) -> Result<Option<SecretlessAuth>, AdminError> {
    let invalid = |why: String| Err(AdminError::Invalid(why));
    let needs = |method: &str| match method {
        "private_key_jwt" => Some("the client's public keys (jwks or jwks_uri)"),
        "tls_client_auth" => Some("the certificate's subject DN or one subject alternative name"),
        "self_signed_tls_client_auth" => Some("the client's certificate (PEM)"),
        _ => None,
    };
    match (method, &given) {
        (None, _) => Ok(given),
        (Some("client_secret" | "client_secret_basic" | "client_secret_post"), None) => Ok(None),
        (Some("client_secret" | "client_secret_basic" | "client_secret_post"), Some(auth)) => {
            invalid(format!(
                "credentials for {} were given to a client with a secret",
                auth.method()
            ))
        }
        (Some(method), None) => match needs(method) {
            Some(what) => invalid(format!("a {method} client needs {what}")),
            None => invalid(format!(
                "the authentication method must be one of client_secret_basic, \
                 client_secret_post, private_key_jwt, tls_client_auth, \
                 self_signed_tls_client_auth; not {method:?}"
            )),
        },
        (Some(method), Some(auth)) if auth.method() != method => invalid(format!(
            "the credentials given are for {}, not {method}",
            auth.method()
        )),
        (Some(_), Some(_)) => Ok(given),
    }
}

/// Most self-signed certificates one client registers (one per instance being rolled).
const MAX_CERTIFICATES: usize = 8;

/// The `x5t#S256` thumbprints of the certificates in `pem`: each must be an X.509
/// certificate, and nothing private may be in the file.
fn certificate_thumbprints(pem: &str) -> Result<Vec<String>, AdminError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let invalid = |why: String| AdminError::Invalid(format!("certificate: {why}"));
    if pem.len() > MAX_JWKS_BYTES {
        return Err(invalid(format!("larger than {MAX_JWKS_BYTES} bytes")));
    }
    if pem.contains("PRIVATE KEY") {
        return Err(invalid(
            "the file holds a private key: register the certificate only".into(),
        ));
    }
    let mut thumbprints = Vec::new();
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = der.map_err(|e| invalid(format!("not PEM: {e}")))?;
        ClientCertificate::from_der(&der, Err(String::new()))
            .map_err(|e| invalid(e.to_string()))?;
        thumbprints.push(thumbprint(&der));
    }
    match thumbprints.len() {
        0 => Err(invalid("no CERTIFICATE block found".into())),
        n if n > MAX_CERTIFICATES => Err(invalid(format!(
            "more than {MAX_CERTIFICATES} certificates"
        ))),
        _ => Ok(thumbprints),
    }
}

/// Checks `auth` and turns it into what is stored.
async fn check_auth(auth: &SecretlessAuth, policy: TargetPolicy) -> Result<ClientAuth, AdminError> {
    Ok(match auth {
        SecretlessAuth::Keys(keys) => ClientAuth::PrivateKeyJwt(check_keys(keys, policy).await?),
        SecretlessAuth::Tls(identity) => {
            identity
                .check()
                .map_err(|e| AdminError::Invalid(format!("tls identity: {e}")))?;
            ClientAuth::TlsClientAuth(identity.clone())
        }
        SecretlessAuth::SelfSigned(pem) => ClientAuth::SelfSignedTls(certificate_thumbprints(pem)?),
    })
}

/// Creates a client that authenticates without a secret: it gets none. JWKS URIs are
/// checked against `policy` (the server's key-fetch guard).
pub async fn create_secretless_client(
    store: &dyn Store,
    new: &NewClient,
    auth: &SecretlessAuth,
    policy: TargetPolicy,
    actor: &Actor,
) -> Result<Client, AdminError> {
    let auth = match check_auth(auth, policy).await {
        Ok(auth) => auth,
        Err(error) => return audit::finish(store, actor, "client.create", None, Err(error)).await,
    };
    insert_new_client(store, new, auth, actor).await
}

/// Changes a client as [`super::update_client`] does and, for a client without a secret,
/// replaces how it authenticates: its keys (rolling them: register the new key beside the
/// old, then drop the old once the client signs with the new), its TLS identity or
/// certificates, or the method itself. Everything is checked before anything is written,
/// so bad input or a secret client leaves the client as it was. Servers use the change
/// within a second; keys at a URI are fetched in the background.
pub async fn update_client_credentials(
    store: &dyn Store,
    id: &str,
    update: &ClientUpdate,
    auth: Option<&SecretlessAuth>,
    policy: TargetPolicy,
    actor: &Actor,
) -> Result<Client, AdminError> {
    let result = change_credentials(store, id, update, auth, policy, actor).await;
    let client = audit::finish(store, actor, "client.update", Some(id), result).await?;
    tracing::info!(
        client_id = %id,
        auth_method = client.auth.method(),
        credentials = auth.is_some(),
        via = %actor.via,
        "client updated"
    );
    Ok(client)
}

async fn change_credentials(
    store: &dyn Store,
    id: &str,
    update: &ClientUpdate,
    auth: Option<&SecretlessAuth>,
    policy: TargetPolicy,
    actor: &Actor,
) -> Result<(Client, Change), AdminError> {
    let current = managed_client(store, id, actor).await?;
    let auth = match auth {
        Some(input) => {
            let checked = check_auth(input, policy).await?;
            if matches!(current.auth, ClientAuth::Secret(_)) {
                return Err(AdminError::Invalid(format!(
                    "client {} authenticates with a secret: keys and certificates are for \
                     clients created without one",
                    current.id
                )));
            }
            Some(checked)
        }
        None => None,
    };
    let before = views::client_json(&current);
    let mut client = match update.is_empty() {
        true => current,
        false => change_client(store, id, update, actor).await?.0,
    };
    if let Some(auth) = auth {
        if !store.set_client_credentials(id, &auth).await? {
            return Err(AdminError::UnknownClient(id.to_owned()));
        }
        client.auth = auth;
    }
    let change = Change::of(id, before, views::client_json(&client));
    Ok((client, change))
}

/// What a new trust rule should be.
#[derive(Debug, Clone)]
pub struct NewTrustRule {
    /// The platform's issuer (`iss`).
    pub issuer: String,
    /// The workload's subject (`sub`), matched exactly.
    pub subject: String,
    /// The audience its tokens must carry; `None`: this server's issuer.
    pub audience: Option<String>,
    /// The issuer's keys; `None`: found through its discovery document.
    pub keys: Option<KeysInput>,
}

/// Checks one value of a trust rule: present, bounded, printable.
fn check_rule_value(what: &str, value: &str) -> Result<String, AdminError> {
    if value.is_empty() || value.len() > MAX_RULE_VALUE || value.chars().any(char::is_control) {
        return Err(AdminError::Invalid(format!(
            "{what} must be 1-{MAX_RULE_VALUE} bytes without control characters"
        )));
    }
    Ok(value.to_owned())
}

/// Adds a rule by which `client_id` trusts workloads with a token of `rule.issuer` for
/// `rule.subject`. Issuers whose keys are found by discovery, and key URIs, are checked
/// against `policy`.
pub async fn trust(
    store: &dyn Store,
    client_id: &str,
    rule: &NewTrustRule,
    policy: TargetPolicy,
    actor: &Actor,
) -> Result<TrustRule, AdminError> {
    let result = add_trust_rule(store, client_id, rule, policy, actor).await;
    let rule = audit::finish(
        store,
        actor,
        "client.trust_rule.add",
        Some(client_id),
        result,
    )
    .await?;
    tracing::info!(
        client_id = %client_id,
        rule_id = %rule.id,
        issuer = %rule.issuer,
        via = %actor.via,
        "trust rule added"
    );
    Ok(rule)
}

async fn add_trust_rule(
    store: &dyn Store,
    client_id: &str,
    rule: &NewTrustRule,
    policy: TargetPolicy,
    actor: &Actor,
) -> Result<(TrustRule, Change), AdminError> {
    let issuer = check_rule_value("issuer", &rule.issuer)?;
    let subject = check_rule_value("subject", &rule.subject)?;
    let audience = rule
        .audience
        .as_deref()
        .map(|a| check_rule_value("audience", a))
        .transpose()?;
    let keys = match &rule.keys {
        Some(KeysInput::Jwks(jwks)) => IssuerKeys::Jwks(check_jwks(jwks)?),
        Some(KeysInput::Uri(uri)) => {
            IssuerKeys::Uri(check_fetch_url("jwks_uri", uri, policy).await?)
        }
        None => {
            check_fetch_url(
                "issuer (its keys are found by discovery)",
                &discovery_url(&issuer),
                policy,
            )
            .await?;
            IssuerKeys::Discovery
        }
    };
    managed_client(store, client_id, actor).await?;
    let rule = TrustRule {
        id: new_trust_rule_id(),
        client_id: client_id.to_owned(),
        issuer,
        subject,
        audience,
        keys,
        created_at: now(),
    };
    store.insert_trust_rule(&rule).await?;
    let change = Change::of(client_id, Value::Null, views::trust_rule_json(&rule));
    Ok((rule, change))
}

/// Removes one of a client's trust rules.
pub async fn untrust(
    store: &dyn Store,
    client_id: &str,
    rule_id: &str,
    actor: &Actor,
) -> Result<(), AdminError> {
    let result = async {
        managed_client(store, client_id, actor).await?;
        let rules = store.list_trust_rules(Some(client_id)).await?;
        let rule = rules.iter().find(|r| r.id == rule_id);
        if !store.delete_trust_rule(client_id, rule_id).await? {
            return Err(AdminError::Invalid(format!(
                "client {client_id} has no trust rule {rule_id}"
            )));
        }
        let before = rule.map_or(Value::Null, views::trust_rule_json);
        Ok(((), Change::of(client_id, before, Value::Null)))
    };
    audit::finish(
        store,
        actor,
        "client.trust_rule.remove",
        Some(client_id),
        result.await,
    )
    .await?;
    tracing::info!(client_id = %client_id, rule_id = %rule_id, via = %actor.via, "trust rule removed");
    Ok(())
}
