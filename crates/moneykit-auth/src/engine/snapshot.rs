//! The in-memory view the hot path serves from.
//!
//! A [`Snapshot`] is built from the whole stored state: clients with their apps, the
//! parsed signing keys, the JWKS and every introspection body already serialized. Request
//! handlers read it through [`SnapshotCell`] (an atomic pointer swap: no lock, no
//! database), and the background refresh in [`crate::engine::refresh`] swaps in a new one when the
//! stored state changes or a key changes state. A change usually touches one client, so
//! the next snapshot is [`Snapshot::apply`]: the changed entries built anew, every other
//! one shared with the snapshot before.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use bytes::Bytes;
use moneykit_wire::{AppClientResponse, AppResponse, AuthorizationServerMetadata, JwkSet};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::crypto::jose::{Algorithm, Strictness, VerifyingKey, parse_jwks};
use crate::crypto::sealing::SealingError;
use crate::crypto::{KeyPair, MasterKey, PublicKey};
use crate::domain::assertions::{
    AssertionAudience, IssuerKeys, JWT_BEARER_GRANT, KeyLocation, TOKEN_EXCHANGE_GRANT, TrustRule,
};
use crate::domain::clients::{App, Client, ClientAuth, ClientKeys};
use crate::domain::secrets::{StoredSecret, last_expiring_within};
use crate::domain::signing_keys::KeyStatus;
use crate::domain::signing_keys::{KeyRecord, KeySchedule};
use crate::domain::tokens::access_token_header;
use crate::store::{StateChanges, StoredState};

/// Settings that shape tokens, fixed for the life of a server.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// The `iss` of every token, and the only one accepted.
    pub issuer: String,
    /// The `aud` of tokens for clients without audiences of their own.
    pub audience: String,
    /// Token lifetime for clients without their own.
    pub default_ttl_secs: u32,
    /// List every client's scopes in the RFC 8414 metadata (`scopes_supported`). Off by
    /// default: anyone may read the metadata, and one tenant's scope names are not
    /// another's business.
    pub publish_scopes: bool,
    /// How JWTs signed by others are judged: client assertions and platform tokens.
    pub assertions: AssertionSettings,
    /// How DPoP proofs are judged.
    pub dpop: super::dpop::DpopSettings,
    /// Whether requests can present client certificates (a TLS listener, or a proxy that
    /// forwards them): then tokens are bound to them, and metadata says so.
    pub client_certificates: bool,
}

/// How client assertions (`private_key_jwt`) and federated platform tokens are judged.
#[derive(Debug, Clone)]
pub struct AssertionSettings {
    /// The `aud` a client assertion must carry.
    pub audience: AssertionAudience,
    /// Longest a client assertion may still be valid for (`exp` - now), in seconds.
    pub max_lifetime_secs: i64,
    /// Longest lifetime (`exp` - `iat`) of a platform token exchanged, in seconds.
    pub federation_max_lifetime_secs: i64,
}

impl AssertionSettings {
    /// The settings for `issuer`: `strict` takes only the issuer identifier as an
    /// assertion's audience; the lifetimes are whole seconds of the ones given.
    pub fn new(
        issuer: &str,
        strict: bool,
        max_lifetime: std::time::Duration,
        federation_max_lifetime: std::time::Duration,
    ) -> Self {
        let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Self {
            audience: AssertionAudience {
                issuer: issuer.to_owned(),
                endpoints: vec![
                    format!("{issuer}/oauth2/token"),
                    format!("{issuer}/auth/token"),
                    format!("{issuer}/oauth2/introspect"),
                    format!("{issuer}/oauth2/revoke"),
                ],
                strict,
            },
            max_lifetime_secs: secs(max_lifetime),
            federation_max_lifetime_secs: secs(federation_max_lifetime),
        }
    }
}

/// A client as the hot path needs it.
#[derive(Debug)]
pub struct ClientEntry {
    /// The stored client.
    pub client: Client,
    /// Its app.
    pub app: Arc<App>,
    /// A `private_key_jwt` client's keys: parsed from its registered JWKS, or where its
    /// JWKS URI's keys are cached.
    pub keys: KeySet,
    /// When each of a secret client's secrets (in order) was last used, in Unix seconds,
    /// since the last sweep (0: not since): stamped by [`ClientEntry::stamp_use`], swept by
    /// [`Snapshot::take_secret_uses`].
    secret_uses: Box<[AtomicI64]>,
    /// The `/auth/introspect` body, serialized on first use (most clients are never
    /// introspected, and with 100 000 clients eager bodies would cost ~30 MB).
    introspection_json: OnceLock<Bytes>,
}

/// An entry shared by the snapshots it is unchanged in, in a set keyed by its id.
#[derive(Debug)]
struct Keyed<T>(Arc<T>);

impl<T> Clone for Keyed<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// What a [`Keyed`] set is keyed by.
trait Id {
    fn id(&self) -> &str;
}

impl Id for ClientEntry {
    fn id(&self) -> &str {
        &self.client.id
    }
}

impl Id for App {
    fn id(&self) -> &str {
        &self.id
    }
}

// Entries are a set keyed by id (`Borrow<str>`), so the id is stored once, not again as
// a map key: with 100 000 clients that is several megabytes.
impl<T: Id> PartialEq for Keyed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}

impl<T: Id> Eq for Keyed<T> {}

impl<T: Id> std::hash::Hash for Keyed<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id().hash(state);
    }
}

impl<T: Id> std::borrow::Borrow<str> for Keyed<T> {
    fn borrow(&self) -> &str {
        self.0.id()
    }
}

impl ClientEntry {
    /// The entry of `client`, whose app must be among `apps`.
    fn new(client: Client, apps: &HashSet<Keyed<App>>) -> Result<Keyed<Self>, SnapshotError> {
        let app = apps
            .get(client.app_id.as_str())
            .ok_or_else(|| SnapshotError::OrphanClient(client.id.clone()))?
            .0
            .clone();
        let secret_uses = match &client.auth {
            ClientAuth::Secret(secrets) => secrets.iter().map(|_| AtomicI64::new(0)).collect(),
            _ => Box::default(),
        };
        Ok(Keyed(Arc::new(ClientEntry {
            keys: KeySet::of_client(&client),
            secret_uses,
            client,
            app,
            introspection_json: OnceLock::new(),
        })))
    }

    /// Records that the secret in `slot` was used at `now`. Reads first, so a busy
    /// secret writes its cache line once a second, not on every request.
    pub fn stamp_use(&self, slot: usize, now: OffsetDateTime) {
        if let Some(stamp) = self.secret_uses.get(slot) {
            let secs = now.unix_timestamp();
            if stamp.load(Ordering::Relaxed) < secs {
                stamp.store(secs, Ordering::Relaxed);
            }
        }
    }

    /// Carries the uses stamped on `old` (this client's entry before a change) over to
    /// the same secrets here, so catching up with a change loses none of them.
    fn keep_uses_of(&self, old: &ClientEntry) {
        let (ClientAuth::Secret(now), ClientAuth::Secret(before)) =
            (&self.client.auth, &old.client.auth)
        else {
            return;
        };
        for (secret, stamp) in now.iter().zip(&self.secret_uses) {
            if let Some(slot) = before.iter().position(|b| b.id == secret.id) {
                stamp.fetch_max(
                    old.secret_uses[slot].swap(0, Ordering::Relaxed),
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// The `/auth/introspect` body for this client.
    pub fn introspection_json(&self) -> &Bytes {
        self.introspection_json.get_or_init(|| {
            let body = introspection_body(&self.client, &self.app);
            Bytes::from(serde_json::to_vec(&body).expect("serializable"))
        })
    }
}

/// The public keys that verify someone's JWTs.
#[derive(Debug, Default)]
pub enum KeySet {
    /// None: a secret client.
    #[default]
    None,
    /// Registered with the server, parsed when the snapshot was built.
    Registered(Vec<VerifyingKey>),
    /// Fetched from elsewhere and cached ([`crate::engine::remote_keys`]).
    Remote(KeyLocation),
}

impl KeySet {
    fn of_client(client: &Client) -> Self {
        match &client.auth {
            ClientAuth::Secret(_) | ClientAuth::TlsClientAuth(_) | ClientAuth::SelfSignedTls(_) => {
                KeySet::None
            }
            ClientAuth::PrivateKeyJwt(ClientKeys::Jwks(jwks)) => {
                KeySet::registered(jwks, &client.id)
            }
            ClientAuth::PrivateKeyJwt(ClientKeys::Uri(uri)) => {
                KeySet::Remote(KeyLocation::Jwks(uri.clone()))
            }
        }
    }

    fn of_rule(rule: &TrustRule) -> Self {
        match &rule.keys {
            IssuerKeys::Jwks(jwks) => KeySet::registered(jwks, &rule.id),
            IssuerKeys::Uri(uri) => KeySet::Remote(KeyLocation::Jwks(uri.clone())),
            IssuerKeys::Discovery => KeySet::Remote(KeyLocation::Discovery(rule.issuer.clone())),
        }
    }

    /// Registered keys, checked when they were registered; a stored JWKS that no longer
    /// parses (edited by hand) verifies nothing, and says so once here.
    fn registered(jwks: &str, owner: &str) -> Self {
        match parse_jwks(jwks.as_bytes(), Strictness::Every) {
            Ok(keys) => KeySet::Registered(keys),
            Err(error) => {
                tracing::warn!(owner, %error, "stored JWKS is not usable; its JWTs are refused");
                KeySet::Registered(Vec::new())
            }
        }
    }

    /// Where the keys are fetched from, if elsewhere.
    pub fn location(&self) -> Option<&KeyLocation> {
        match self {
            KeySet::Remote(location) => Some(location),
            _ => None,
        }
    }
}

/// A client's trust in an external issuer, with the keys that verify its tokens.
#[derive(Debug)]
pub struct TrustEntry {
    /// The rule.
    pub rule: TrustRule,
    /// The issuer's keys.
    pub keys: KeySet,
}

impl TrustEntry {
    fn new(rule: TrustRule) -> Arc<Self> {
        Arc::new(Self {
            keys: KeySet::of_rule(&rule),
            rule,
        })
    }
}

/// Trust rules by issuer, each issuer's oldest first (the order they are tried in).
fn by_issuer(
    entries: impl Iterator<Item = Arc<TrustEntry>>,
) -> HashMap<String, Vec<Arc<TrustEntry>>> {
    let mut trust: HashMap<String, Vec<Arc<TrustEntry>>> = HashMap::new();
    for entry in entries {
        trust
            .entry(entry.rule.issuer.clone())
            .or_default()
            .push(entry);
    }
    for rules in trust.values_mut() {
        rules.sort_by(|a, b| (a.rule.created_at, &a.rule.id).cmp(&(b.rule.created_at, &b.rule.id)));
    }
    trust
}

/// A signing key ready to sign: parsed once, with its JWT header precomputed.
#[derive(Debug)]
pub struct Signer {
    /// The parsed private key.
    pub key: KeyPair,
    /// Its public half, which verifies what it signed.
    pub public: PublicKey,
    /// base64url of the access-token JWT header for this key.
    pub access_token_header: String,
    /// When it starts signing.
    pub activates_at: OffsetDateTime,
}

/// The signing keys published at one moment, ready to sign and serve.
#[derive(Debug)]
struct Published {
    /// In activation order: a handful (next, active, retired within a day), so lookups
    /// scan them, which beats hashing a 100-byte header on every request.
    signers: Vec<Signer>,
    jwks_json: Bytes,
    /// When the key schedule next changes (a key activates or leaves the JWKS).
    stale_at: Option<OffsetDateTime>,
}

impl Published {
    /// The keys of `keys` published at `now`, their private halves opened.
    fn at(
        keys: &[KeyRecord],
        master: &MasterKey,
        now: OffsetDateTime,
    ) -> Result<Arc<Self>, SnapshotError> {
        let schedule = KeySchedule::new(keys);
        let mut signers = Vec::new();
        let mut jwks = JwkSet::default();
        for scheduled in schedule.published_at(now) {
            let record = scheduled.record;
            let public = PublicKey::from_sec1(&record.kid, &record.public_key)?;
            jwks.keys.push(public.to_jwk());
            let pkcs8 = master.open(&record.kid, &record.sealed_private_key)?;
            signers.push(Signer {
                key: KeyPair::from_pkcs8(&record.kid, &pkcs8)?,
                public,
                access_token_header: access_token_header(&record.kid),
                activates_at: record.activates_at,
            });
        }
        Ok(Arc::new(Self {
            signers,
            jwks_json: Bytes::from(serde_json::to_vec(&jwks).expect("serializable")),
            stale_at: schedule.next_change_after(now),
        }))
    }
}

/// The read-only state every request is served from.
#[derive(Debug)]
pub struct Snapshot {
    /// The store revision this was built from.
    pub revision: i64,
    /// Token settings.
    pub settings: Arc<TokenSettings>,
    apps: HashSet<Keyed<App>>,
    clients: HashSet<Keyed<ClientEntry>>,
    /// Trust rules by issuer: a platform token's `iss` picks the rules to try.
    trust: HashMap<String, Vec<Arc<TrustEntry>>>,
    /// Every place keys are fetched from, for the background fetcher.
    key_locations: Vec<KeyLocation>,
    keys: Arc<Published>,
    metadata_json: Bytes,
    /// When the key schedule next changes (a key activates or leaves the JWKS).
    pub stale_at: Option<OffsetDateTime>,
}

// The entries' last-use stamps and lazily built bodies are interior mutability the hash
// never sees: it hashes only the client id.
#[allow(clippy::mutable_key_type)]
impl Snapshot {
    /// Builds the view at `now` (consuming the loaded state, so memory holds one copy of
    /// the clients), opening the private keys of every published key.
    pub fn build(
        state: StoredState,
        master: &MasterKey,
        settings: Arc<TokenSettings>,
        now: OffsetDateTime,
    ) -> Result<Self, SnapshotError> {
        let apps: HashSet<Keyed<App>> =
            state.apps.into_iter().map(|a| Keyed(Arc::new(a))).collect();
        let mut clients = HashSet::with_capacity(state.clients.len());
        for client in state.clients {
            clients.insert(ClientEntry::new(client, &apps)?);
        }
        let trust = by_issuer(state.trust_rules.into_iter().map(TrustEntry::new));
        let keys = Published::at(&state.keys, master, now)?;
        Ok(Self::assemble(
            state.revision,
            settings,
            apps,
            clients,
            trust,
            keys,
            None,
        ))
    }

    /// The view after `changes`, at `now`: the changed clients, the clients of changed
    /// apps and the changed clients' trust rules built anew, the keys opened again only if
    /// they changed, and everything else shared with `self` (the set of entries is copied,
    /// not rebuilt: no entry is hashed again).
    pub fn apply(
        &self,
        changes: StateChanges,
        master: &MasterKey,
        now: OffsetDateTime,
    ) -> Result<Self, SnapshotError> {
        let mut apps = self.apps.clone();
        let changed_apps: HashSet<String> = changes.apps.iter().map(|a| a.id.clone()).collect();
        for app in changes.apps {
            apps.replace(Keyed(Arc::new(app)));
        }
        let mut clients = self.clients.clone();
        let mut replaced: HashMap<String, Keyed<ClientEntry>> = HashMap::new();
        for id in &changes.client_ids {
            if let Some(old) = clients.take(id.as_str()) {
                replaced.insert(id.clone(), old);
            }
        }
        let mut fresh = changes.clients;
        if !changed_apps.is_empty() {
            // Their entries hold the app as it was.
            let moved: Vec<Keyed<ClientEntry>> = clients
                .iter()
                .filter(|entry| changed_apps.contains(&entry.0.client.app_id))
                .cloned()
                .collect();
            for old in moved {
                clients.remove(old.0.id());
                fresh.push(old.0.client.clone());
                replaced.insert(old.0.client.id.clone(), old);
            }
        }
        // Whether a place keys are fetched from may have come or gone.
        let mut remote = replaced.values().any(|old| old.0.keys.location().is_some());
        for client in fresh {
            let entry = ClientEntry::new(client, &apps)?;
            if let Some(old) = replaced.get(entry.0.id()) {
                entry.0.keep_uses_of(&old.0);
            }
            remote |= entry.0.keys.location().is_some();
            clients.insert(entry);
        }
        let changed_clients: HashSet<&str> =
            changes.client_ids.iter().map(String::as_str).collect();
        let (gone, kept): (Vec<_>, Vec<_>) = self
            .trust
            .values()
            .flatten()
            .cloned()
            .partition(|t| changed_clients.contains(t.rule.client_id.as_str()));
        let added: Vec<_> = changes
            .trust_rules
            .into_iter()
            .map(TrustEntry::new)
            .collect();
        remote |= gone
            .iter()
            .chain(&added)
            .any(|t| t.keys.location().is_some());
        let trust = by_issuer(kept.into_iter().chain(added));
        let keys = match changes.keys {
            Some(keys) => Published::at(&keys, master, now)?,
            None => self.keys.clone(),
        };
        Ok(Self::assemble(
            changes.revision,
            self.settings.clone(),
            apps,
            clients,
            trust,
            keys,
            (!remote).then(|| self.key_locations.clone()),
        ))
    }

    /// What is derived from the parts: the metadata, and where keys are fetched from
    /// unless `key_locations` are known to be unchanged.
    fn assemble(
        revision: i64,
        settings: Arc<TokenSettings>,
        apps: HashSet<Keyed<App>>,
        clients: HashSet<Keyed<ClientEntry>>,
        trust: HashMap<String, Vec<Arc<TrustEntry>>>,
        keys: Arc<Published>,
        key_locations: Option<Vec<KeyLocation>>,
    ) -> Self {
        let key_locations = key_locations.unwrap_or_else(|| {
            let all: BTreeSet<&KeyLocation> = clients
                .iter()
                .filter_map(|c| c.0.keys.location())
                .chain(trust.values().flatten().filter_map(|t| t.keys.location()))
                .collect();
            all.into_iter().cloned().collect()
        });
        let metadata = server_metadata(&settings, clients.iter().map(|c| &c.0.client));
        Self {
            revision,
            stale_at: keys.stale_at,
            metadata_json: Bytes::from(serde_json::to_vec(&metadata).expect("serializable")),
            settings,
            apps,
            clients,
            trust,
            key_locations,
            keys,
        }
    }

    /// The client with this id, if it exists (enabled or not).
    pub fn client(&self, id: &str) -> Option<&ClientEntry> {
        self.clients.get(id).map(|entry| &*entry.0)
    }

    /// Every client, in no particular order.
    pub fn clients(&self) -> impl Iterator<Item = &ClientEntry> {
        self.clients.iter().map(|entry| &*entry.0)
    }

    /// The clients whose last live secret expires within `window` of `now`, with that
    /// secret: what the gauge counts and the refresh announces.
    pub fn clients_running_out(
        &self,
        now: OffsetDateTime,
        window: time::Duration,
    ) -> impl Iterator<Item = (&ClientEntry, &StoredSecret)> {
        self.clients()
            .filter_map(move |entry| match &entry.client.auth {
                ClientAuth::Secret(secrets) => {
                    last_expiring_within(secrets, now, window).map(|secret| (entry, secret))
                }
                _ => None,
            })
    }

    /// The secret uses stamped since the last sweep (secret id, Unix seconds), clearing
    /// them: what the refresh flushes to the store, and sweeps from a snapshot it replaces.
    /// A use stamped by a request still holding a replaced snapshot after its sweep is
    /// lost, which only makes a last-use time a little older than it could be.
    pub fn take_secret_uses(&self) -> Vec<(String, i64)> {
        let mut taken = Vec::new();
        for Keyed(entry) in &self.clients {
            let ClientAuth::Secret(secrets) = &entry.client.auth else {
                continue;
            };
            for (secret, stamp) in secrets.iter().zip(&entry.secret_uses) {
                if stamp.load(Ordering::Relaxed) != 0 {
                    taken.push((secret.id.clone(), stamp.swap(0, Ordering::Relaxed)));
                }
            }
        }
        taken
    }

    /// The trust rules for platform tokens of `issuer`.
    pub fn trust_rules(&self, issuer: &str) -> impl Iterator<Item = &TrustEntry> {
        self.trust.get(issuer).into_iter().flatten().map(|t| &**t)
    }

    /// Every place keys are fetched from.
    pub fn key_locations(&self) -> &[KeyLocation] {
        &self.key_locations
    }

    /// The key that signs at `now`. Keys are few and ordered, so a backwards scan is the
    /// cheapest correct answer even right at an activation boundary.
    pub fn signer_at(&self, now: OffsetDateTime) -> Option<&Signer> {
        self.keys
            .signers
            .iter()
            .rev()
            .find(|s| s.activates_at <= now)
    }

    /// The public key with this `kid`, if published.
    pub fn verifier(&self, kid: &str) -> Option<&PublicKey> {
        self.keys
            .signers
            .iter()
            .find(|s| s.public.kid() == kid)
            .map(|s| &s.public)
    }

    /// The public key whose precomputed access-token header is exactly `header_b64`.
    pub fn verifier_for_header(&self, header_b64: &str) -> Option<&PublicKey> {
        self.keys
            .signers
            .iter()
            .find(|s| s.access_token_header == header_b64)
            .map(|s| &s.public)
    }

    /// The age of every key that can sign, for `/metrics`.
    pub fn key_ages(&self, now: OffsetDateTime) -> Vec<crate::metrics::KeyAge> {
        let active = self.signer_at(now);
        self.keys
            .signers
            .iter()
            .map(|s| crate::metrics::KeyAge {
                kid: s.key.kid().to_owned(),
                state: if s.activates_at > now {
                    KeyStatus::Next
                } else if active.is_some_and(|a| std::ptr::eq(a, s)) {
                    KeyStatus::Active
                } else {
                    KeyStatus::Retired
                },
                age_secs: (now - s.activates_at).whole_seconds(),
            })
            .collect()
    }

    /// The JWKS body, serialized once.
    pub fn jwks_json(&self) -> &Bytes {
        &self.keys.jwks_json
    }

    /// The RFC 8414 metadata body, serialized once.
    pub fn metadata_json(&self) -> &Bytes {
        &self.metadata_json
    }
}

/// RFC 8414 metadata for `issuer`; `scopes_supported` is every scope some client may ask
/// for, so it changes as clients do.
fn server_metadata<'c>(
    settings: &TokenSettings,
    clients: impl Iterator<Item = &'c Client>,
) -> AuthorizationServerMetadata {
    let issuer = &settings.issuer;
    let scopes: BTreeSet<&str> = match settings.publish_scopes {
        true => clients.flat_map(|c| c.scopes.iter()).collect(),
        false => BTreeSet::new(),
    };
    let auth_methods = || {
        let mut methods = vec![
            "client_secret_basic".to_owned(),
            "client_secret_post".to_owned(),
            "private_key_jwt".to_owned(),
        ];
        if settings.client_certificates {
            methods.push("tls_client_auth".to_owned());
            methods.push("self_signed_tls_client_auth".to_owned());
        }
        methods
    };
    let algorithms = || Algorithm::NAMES.map(str::to_owned).to_vec();
    AuthorizationServerMetadata {
        issuer: issuer.to_owned(),
        token_endpoint: format!("{issuer}/oauth2/token"),
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        introspection_endpoint: format!("{issuer}/oauth2/introspect"),
        revocation_endpoint: format!("{issuer}/oauth2/revoke"),
        grant_types_supported: vec![
            "client_credentials".into(),
            JWT_BEARER_GRANT.into(),
            TOKEN_EXCHANGE_GRANT.into(),
        ],
        response_types_supported: vec![],
        scopes_supported: scopes.into_iter().map(str::to_owned).collect(),
        token_endpoint_auth_methods_supported: auth_methods(),
        token_endpoint_auth_signing_alg_values_supported: algorithms(),
        introspection_endpoint_auth_methods_supported: auth_methods(),
        introspection_endpoint_auth_signing_alg_values_supported: algorithms(),
        revocation_endpoint_auth_methods_supported: auth_methods(),
        revocation_endpoint_auth_signing_alg_values_supported: algorithms(),
        client_assertion_audiences_accepted: settings.assertions.audience.accepted(),
        dpop_signing_alg_values_supported: algorithms(),
        tls_client_certificate_bound_access_tokens: settings.client_certificates,
        service_documentation: format!("{issuer}/openapi.json"),
    }
}

fn introspection_body(client: &Client, app: &App) -> AppClientResponse {
    AppClientResponse {
        client_id: client.id.clone(),
        client_name: client.name.clone(),
        scope: client.scopes.to_string(),
        app: AppResponse::new(&app.id, &app.name),
        disabled_at: client
            .disabled_at
            .map(|t| t.format(&Rfc3339).expect("valid RFC 3339 time")),
    }
}

/// Why a snapshot could not be built. Fatal on start; on refresh the previous snapshot
/// keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A private key does not open under the master key.
    #[error(transparent)]
    Sealing(#[from] SealingError),
    /// A stored key is not a valid P-256 key.
    #[error(transparent)]
    InvalidKey(#[from] crate::crypto::es256::InvalidKey),
    /// A client points at an app that does not exist.
    #[error("client {0} belongs to an app that does not exist")]
    OrphanClient(String),
}

/// The current snapshot, swapped atomically. Readers never wait.
#[derive(Debug)]
pub struct SnapshotCell(ArcSwap<Snapshot>);

impl SnapshotCell {
    /// Starts with `first`.
    pub fn new(first: Snapshot) -> Self {
        Self(ArcSwap::from_pointee(first))
    }

    /// The snapshot to serve one request from.
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.0.load()
    }

    /// Replaces the snapshot; requests already running keep the one they loaded.
    pub fn store(&self, next: Snapshot) {
        self.0.store(Arc::new(next));
    }
}
