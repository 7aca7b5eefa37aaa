//! Keeping the in-memory snapshot current without touching the request path.
//!
//! A background task reads the store's revision counter a few times a second (one
//! single-row read), and at once when the store pushes a change (PostgreSQL's
//! LISTEN/NOTIFY, which is how replicas converge). When it moves, the task reads what the
//! store's journal says changed since (a client, an app, the keys) and swaps in a snapshot
//! with those entries built anew, so a change costs the same with ten clients or 100 000.
//! When the journal no longer reaches back, the key schedule reaches its next change, or
//! the periodic full reload is due, it reloads everything instead. Changes made by the CLI
//! in another process therefore reach the server well within a second.
//! The same task catches up on revocations (incrementally, by sequence number, without a
//! rebuild) and runs scheduled key rotation. While the store is unreachable the server
//! keeps serving its last snapshot and reports not-ready; the outage is logged once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use crate::crypto::MasterKey;
use crate::domain::EXPIRY_LEEWAY_SECS;
use crate::domain::signing_keys::{KeyRecord, KeySchedule};
use crate::domain::time::{now_ms, unix_ms};
use crate::engine::revocation::RevocationList;
use crate::engine::snapshot::{Snapshot, SnapshotCell, TokenSettings};
use crate::operations;
use crate::store::{ChangeFeed, Store};

/// How often and how the background refresh works.
#[derive(Debug, Clone)]
pub struct RefreshSettings {
    /// How often the revision counter is read.
    pub poll_interval: Duration,
    /// How often the chores run: flushing last uses of secrets, pruning, announcing
    /// expiring secrets, audit retention.
    pub housekeeping_interval: Duration,
    /// Reload everything at least this often, whatever the counter says: the safety net
    /// under the journal.
    pub full_reload_interval: Duration,
    /// How long the journal of changes is kept: a server that was cut off from the
    /// database for longer reloads everything when it is back.
    pub journal_retention: time::Duration,
    /// Publish a next key when the active one has signed this long (minus the delay).
    pub key_rotation_interval: time::Duration,
    /// How long a newly published key waits before it signs.
    pub key_activation_delay: time::Duration,
    /// How long the database may take to answer the check on each tick before the
    /// server reports not-ready: readiness follows an outage within about this long.
    pub ping_timeout: Duration,
    /// A client whose last secret expires within this long is announced (metric and
    /// operator webhook event).
    pub secret_expiry_warning: time::Duration,
    /// Audit records older than this are forgotten; `None`: kept forever.
    pub audit_retention: Option<time::Duration>,
    /// How long the announcements queued here are retried.
    pub webhook_retry_window: Duration,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(200),
            housekeeping_interval: Duration::from_secs(30),
            full_reload_interval: Duration::from_secs(10 * 60),
            journal_retention: time::Duration::hours(1),
            key_rotation_interval: time::Duration::days(30),
            key_activation_delay: time::Duration::minutes(10),
            ping_timeout: Duration::from_secs(1),
            secret_expiry_warning: time::Duration::days(7),
            audit_retention: Some(time::Duration::days(365)),
            webhook_retry_window: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// When scheduled rotation is next due for the keys in `state`.
fn rotation_due_at(
    settings: &RefreshSettings,
    keys: &[KeyRecord],
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    KeySchedule::new(keys).rotation_due_at(
        now,
        settings.key_rotation_interval,
        settings.key_activation_delay,
    )
}

/// Builds snapshots from the store and swaps them into the cell.
pub struct Refresher {
    store: Arc<dyn Store>,
    master: MasterKey,
    tokens: Arc<TokenSettings>,
    cell: Arc<SnapshotCell>,
    health: Arc<Health>,
    settings: RefreshSettings,
    revocations: Arc<RevocationList>,
    /// Last uses of client secrets swept from replaced snapshots (or not written by a
    /// failed flush), by secret id, waiting to be flushed.
    uses: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// Secrets whose coming expiry this process announced (or found announced).
    announced: std::sync::Mutex<std::collections::HashSet<String>>,
    /// When scheduled rotation is next due, from the last loaded key schedule.
    rotation_due_at: std::sync::Mutex<Option<OffsetDateTime>>,
}

impl Refresher {
    /// Loads the state and builds the first snapshot; failing here is fatal (a server
    /// that cannot open its keys must not start).
    pub async fn start(
        store: Arc<dyn Store>,
        master: MasterKey,
        tokens: Arc<TokenSettings>,
        health: Arc<Health>,
        settings: RefreshSettings,
    ) -> anyhow::Result<Self> {
        let state = store.load().await?;
        let now = OffsetDateTime::now_utc();
        let rotation_due_at = rotation_due_at(&settings, &state.keys, now);
        let first = Snapshot::build(state, &master, tokens.clone(), now)?;
        store
            .prune_revocations(now.unix_timestamp() - EXPIRY_LEEWAY_SECS)
            .await?;
        let revocations = Arc::new(RevocationList::default());
        revocations.apply(&store.revocations_since(0).await?);
        let refresher = Self {
            revocations,
            uses: Default::default(),
            announced: Default::default(),
            store,
            master,
            tokens,
            cell: Arc::new(SnapshotCell::new(first)),
            health,
            settings,
            rotation_due_at: std::sync::Mutex::new(rotation_due_at),
        };
        Ok(refresher)
    }

    /// The revocation list the HTTP handlers check.
    pub fn revocations(&self) -> Arc<RevocationList> {
        self.revocations.clone()
    }

    /// The cell the HTTP handlers read.
    pub fn cell(&self) -> Arc<SnapshotCell> {
        self.cell.clone()
    }

    /// One refresh step: catch up with the changes if the revision moved; reload
    /// everything if the key schedule changed, the journal cannot say what changed, or
    /// `full`; rotate the signing key if due. Returns whether a new snapshot was swapped
    /// in. Tests call this directly instead of waiting for the loop.
    pub async fn refresh_once(&self, full: bool) -> anyhow::Result<bool> {
        let now = OffsetDateTime::now_utc();
        let revoked = self
            .store
            .revocations_since(self.revocations.last_seq())
            .await?;
        self.revocations.apply(&revoked);
        let current = self.cell.load();
        let rotation_due = self
            .rotation_due_at
            .lock()
            .expect("not poisoned")
            .is_some_and(|t| t <= now);
        let stale = rotation_due || current.stale_at.is_some_and(|t| t <= now);
        if !full && !stale {
            if self.store.revision().await? == current.revision {
                return Ok(false);
            }
            if let Some(changes) = self.store.load_changes(current.revision).await? {
                let keys = changes.keys.clone();
                // The entries it replaces hand their uses over themselves.
                let next = current.apply(changes, &self.master, now)?;
                self.replace(None, next, keys.as_deref(), now);
                return Ok(true);
            }
        }
        let state = self.store.load().await?;
        if self.rotate_if_due(&state.keys, now).await? {
            // The rotation bumped the revision; the next step picks the new key up.
            return Ok(false);
        }
        let keys = state.keys.clone();
        let next = Snapshot::build(state, &self.master, self.tokens.clone(), now)?;
        self.replace(Some(&current), next, Some(&keys), now);
        Ok(true)
    }

    /// Swaps `next` in, first keeping the uses of secrets stamped in `replaced` (a
    /// snapshot none of whose entries lives on); `keys`: all signing keys, if they were
    /// read, for when rotation is next due.
    fn replace(
        &self,
        replaced: Option<&Snapshot>,
        next: Snapshot,
        keys: Option<&[KeyRecord]>,
        now: OffsetDateTime,
    ) {
        if let Some(replaced) = replaced {
            self.keep_uses(replaced.take_secret_uses());
        }
        self.cell.store(next);
        if let Some(keys) = keys {
            *self.rotation_due_at.lock().expect("not poisoned") =
                rotation_due_at(&self.settings, keys, now);
        }
    }

    /// One step of the loop: the chores first when they are due, then the refresh.
    async fn step(&self, chores: bool, full: bool) -> anyhow::Result<bool> {
        if chores {
            self.prune_and_housekeep().await?;
        }
        self.refresh_once(full).await
    }

    /// Prunes what has expired, then runs the housekeeping chores (each best effort).
    async fn prune_and_housekeep(&self) -> anyhow::Result<()> {
        let now = OffsetDateTime::now_utc();
        let horizon = now.unix_timestamp() - EXPIRY_LEEWAY_SECS;
        self.store.prune_revocations(horizon).await?;
        // With the same leeway: a replica whose clock is ahead must not forget an
        // assertion that a replica behind it still takes as unexpired.
        self.store.prune_assertions(horizon).await?;
        self.store
            .prune_state_changes((now - self.settings.journal_retention).unix_timestamp())
            .await?;
        self.revocations.prune(now.unix_timestamp());
        self.housekeeping(now).await;
        Ok(())
    }

    /// The chores of every housekeeping step, each best effort (a failure is logged and tried
    /// again next time): flushing last uses of secrets, announcing clients about to run
    /// out of secrets, and audit retention.
    async fn housekeeping(&self, now: OffsetDateTime) {
        self.keep_uses(self.cell.load().take_secret_uses());
        let uses: Vec<(String, i64)> = self.uses.lock().expect("not poisoned").drain().collect();
        if let Err(error) = self.store.record_secret_use(&uses).await {
            tracing::warn!(%error, "cannot record when client secrets were last used; retrying later");
            self.keep_uses(uses);
        }
        let expiring: Vec<_> = {
            let snapshot = self.cell.load();
            let announced = self.announced.lock().expect("not poisoned");
            snapshot
                .clients_running_out(now, self.settings.secret_expiry_warning)
                // Announced to the app's webhook URL; without one, the gauge is all there
                // is, and no announcement is spent.
                .filter(|(entry, secret)| {
                    entry.app.webhook_url.is_some() && !announced.contains(&secret.id)
                })
                .map(|(entry, secret)| (entry.client.clone(), secret.clone()))
                .collect()
        };
        for (client, secret) in expiring {
            let announce = operations::secrets::announce_secret_expiry(
                self.store.as_ref(),
                &client,
                &secret,
                self.settings.webhook_retry_window,
            );
            match announce.await {
                Ok(()) => {
                    self.announced
                        .lock()
                        .expect("not poisoned")
                        .insert(secret.id);
                }
                Err(error) => {
                    tracing::warn!(client_id = %client.id, %error, "cannot announce an expiring client secret")
                }
            }
        }
        if let Some(retention) = self.settings.audit_retention {
            match self.store.prune_audit(unix_ms(now - retention)).await {
                Ok(0) => {}
                Ok(pruned) => {
                    tracing::info!(pruned, "audit records past their retention forgotten")
                }
                Err(error) => tracing::warn!(%error, "cannot apply the audit retention"),
            }
        }
    }

    /// Keeps swept uses until the next flush, the latest per secret.
    fn keep_uses(&self, swept: Vec<(String, i64)>) {
        let mut kept = self.uses.lock().expect("not poisoned");
        for (id, at) in swept {
            let latest = kept.entry(id).or_insert(at);
            *latest = (*latest).max(at);
        }
    }

    async fn rotate_if_due(&self, keys: &[KeyRecord], now: OffsetDateTime) -> anyhow::Result<bool> {
        let schedule = KeySchedule::new(keys);
        let due = schedule.rotation_due(
            now,
            self.settings.key_rotation_interval,
            self.settings.key_activation_delay,
        );
        if !due {
            return Ok(false);
        }
        let rotation = operations::rotate_key(
            self.store.as_ref(),
            &self.master,
            self.settings.key_activation_delay,
            false,
        )
        .await?;
        if let operations::Rotation::Published(key) = &rotation {
            tracing::info!(kid = %key.kid, activates_at = %key.activates_at, "scheduled key rotation published a next key");
        }
        Ok(true)
    }

    /// Runs until `shutdown` changes: refreshes every poll interval, and at once when the
    /// store pushes a change (PostgreSQL `NOTIFY`), so replicas converge in milliseconds
    /// while the polling stays as the safety net for notifications lost in an outage.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.settings.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_chores = tokio::time::Instant::now();
        let mut last_full = tokio::time::Instant::now();
        let mut feed = Subscription::default();
        loop {
            feed.ensure(self.store.as_ref()).await;
            tokio::select! {
                _ = tick.tick() => {}
                () = feed.changed() => {}
                _ = shutdown.changed() => return,
            }
            let chores = last_chores.elapsed() >= self.settings.housekeeping_interval;
            let full = last_full.elapsed() >= self.settings.full_reload_interval;
            // A short, bounded check first: the pool would wait its whole acquire timeout
            // for a database that is down, and report only that it timed out.
            let outcome = match self.store.ping(self.settings.ping_timeout).await {
                Ok(()) => self.step(chores, full).await,
                Err(e) => Err(e.into()),
            };
            match outcome {
                Ok(_) => {
                    if chores {
                        last_chores = tokio::time::Instant::now();
                    }
                    if full {
                        last_full = tokio::time::Instant::now();
                    }
                    if self.health.refreshed() {
                        tracing::info!("database reachable again; changes are arriving");
                    }
                }
                Err(error) => {
                    if self.health.refresh_failed() {
                        tracing::error!(error = %format!("{error:#}"), "refresh failed; serving the last known state until it recovers");
                    }
                }
            }
        }
    }
}

/// The refresher's push channel: subscribed lazily, dropped when its connection breaks,
/// and subscribed again (at most once a second) after that.
#[derive(Default)]
struct Subscription {
    feed: Option<Box<dyn ChangeFeed>>,
    /// The store cannot push (SQLite): poll only, never ask again.
    unsupported: bool,
    retry_at: Option<tokio::time::Instant>,
}

impl Subscription {
    const RETRY: Duration = Duration::from_secs(1);

    async fn ensure(&mut self, store: &dyn Store) {
        if self.feed.is_some() || self.unsupported {
            return;
        }
        if self
            .retry_at
            .is_some_and(|t| tokio::time::Instant::now() < t)
        {
            return;
        }
        match store.subscribe().await {
            Ok(Some(feed)) => self.feed = Some(feed),
            Ok(None) => self.unsupported = true,
            Err(_) => self.retry_at = Some(tokio::time::Instant::now() + Self::RETRY),
        }
    }

    /// Completes when a change is pushed, or when the feed breaks (so the caller polls
    /// once and the feed is re-established later); never, without a feed.
    async fn changed(&mut self) {
        let Some(feed) = self.feed.as_mut() else {
            return std::future::pending().await;
        };
        if feed.changed().await.is_err() {
            self.feed = None;
            self.retry_at = Some(tokio::time::Instant::now() + Self::RETRY);
        }
    }
}
/// Readiness: whether the background refresh reaches the database, and whether the
/// server is shutting down. The hot path keeps serving from memory while the store is
/// down, but a load balancer should know.
#[derive(Debug)]
pub struct Health {
    store_reachable: AtomicBool,
    draining: AtomicBool,
    /// When the last refresh succeeded (Unix milliseconds; 0: not since start).
    last_success_ms: AtomicI64,
    failures: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            store_reachable: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            last_success_ms: AtomicI64::new(now_ms()),
            failures: AtomicU64::new(0),
        }
    }
}

impl Health {
    /// Records whether the last store access worked; returns the previous value, so the
    /// caller can log a transition once instead of on every attempt.
    pub fn set_store_reachable(&self, reachable: bool) -> bool {
        self.store_reachable.swap(reachable, Ordering::Relaxed)
    }

    /// Whether the store was reachable at the last check.
    pub fn store_reachable(&self) -> bool {
        self.store_reachable.load(Ordering::Relaxed)
    }

    /// Records a successful refresh; true if the store was unreachable until now.
    pub fn refreshed(&self) -> bool {
        self.last_success_ms.store(now_ms(), Ordering::Relaxed);
        !self.set_store_reachable(true)
    }

    /// Records a failed refresh; true if the store was reachable until now.
    pub fn refresh_failed(&self) -> bool {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.set_store_reachable(false)
    }

    /// When the last refresh succeeded (Unix milliseconds).
    pub fn last_success_ms(&self) -> i64 {
        self.last_success_ms.load(Ordering::Relaxed)
    }

    /// Failed refreshes since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The server is shutting down: not ready from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Ready, or why not.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.draining.load(Ordering::Relaxed) {
            Err("shutting down")
        } else if !self.store_reachable() {
            Err("database unreachable; serving the last known state")
        } else {
            Ok(())
        }
    }
}
