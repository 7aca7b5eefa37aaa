//! Clients without secrets: registering the public keys of a `private_key_jwt` client,
//! and the trust rules that let federated workloads get a client's tokens with their
//! platform's token. Every input is checked before anything is written: a JWKS must
//! parse and hold public keys only, and every URL passes the SSRF guard.

use crate::crypto::jose::{Strictness, parse_jwks};
use crate::domain::assertions::{IssuerKeys, TrustRule, discovery_url};
use crate::domain::clients::{Client, ClientAuth, ClientKeys};
use crate::domain::ids::new_trust_rule_id;
use crate::net::guard::{self, TargetPolicy};
use crate::store::Store;

use super::{
    AdminError, ClientUpdate, NewClient, Via, existing_client, insert_new_client, now,
    update_client,
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

/// Creates a `private_key_jwt` client with `keys`: it gets no secret. JWKS URIs are
/// checked against `policy` (the server's key-fetch guard).
pub async fn create_key_client(
    store: &dyn Store,
    new: &NewClient,
    keys: &KeysInput,
    policy: TargetPolicy,
    via: Via,
) -> Result<Client, AdminError> {
    let keys = check_keys(keys, policy).await?;
    insert_new_client(store, new, ClientAuth::PrivateKeyJwt(keys), via).await
}

/// Changes a client as [`super::update_client`] does and, for a `private_key_jwt` client,
/// replaces its keys (rolling them: register the new key beside the old, then drop the
/// old once the client signs with the new). Everything is checked before anything is
/// written, so a bad key or a secret client leaves the client as it was. Servers use new
/// keys within a second; keys at a URI are fetched in the background.
pub async fn update_client_with_keys(
    store: &dyn Store,
    id: &str,
    update: &ClientUpdate,
    keys: Option<&KeysInput>,
    policy: TargetPolicy,
    via: Via,
) -> Result<Client, AdminError> {
    let keys = match keys {
        Some(input) => {
            let checked = check_keys(input, policy).await?;
            let client = existing_client(store, id).await?;
            if !matches!(client.auth, ClientAuth::PrivateKeyJwt(_)) {
                return Err(AdminError::Invalid(format!(
                    "client {} authenticates with {}: keys are for private_key_jwt clients",
                    client.id,
                    client.auth.method()
                )));
            }
            Some(checked)
        }
        None => None,
    };
    let mut client = match keys.is_some() && update.is_empty() {
        true => existing_client(store, id).await?,
        false => update_client(store, id, update, via).await?,
    };
    if let Some(keys) = keys {
        if !store.set_client_keys(id, &keys).await? {
            return Err(AdminError::UnknownClient(id.to_owned()));
        }
        tracing::info!(client_id = %id, %via, "client keys replaced");
        client.auth = ClientAuth::PrivateKeyJwt(keys);
    }
    Ok(client)
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
    via: Via,
) -> Result<TrustRule, AdminError> {
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
    existing_client(store, client_id).await?;
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
    tracing::info!(
        client_id = %client_id,
        rule_id = %rule.id,
        issuer = %rule.issuer,
        %via,
        "trust rule added"
    );
    Ok(rule)
}

/// Removes one of a client's trust rules.
pub async fn untrust(
    store: &dyn Store,
    client_id: &str,
    rule_id: &str,
    via: Via,
) -> Result<(), AdminError> {
    if !store.delete_trust_rule(client_id, rule_id).await? {
        existing_client(store, client_id).await?;
        return Err(AdminError::Invalid(format!(
            "client {client_id} has no trust rule {rule_id}"
        )));
    }
    tracing::info!(client_id = %client_id, rule_id = %rule_id, %via, "trust rule removed");
    Ok(())
}
