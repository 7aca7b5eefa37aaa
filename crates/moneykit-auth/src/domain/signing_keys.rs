//! The life of a signing key: **next** (published, not yet signing) → **active** (the one
//! signer) → **retired** (still published, no longer signing) → **expired** (gone from the
//! JWKS).
//!
//! Nothing about a key's state is stored except its activation time: ordering all keys by
//! (activation time, insertion order) gives each key the interval during which it signs —
//! from its own activation until the next key's — so exactly one key is active at any
//! moment once the first has activated, and every replica that sees the same rows derives
//! the same answer.

use time::{Duration, OffsetDateTime};

use crate::domain::MAX_TOKEN_TTL_SECS;

/// How long a retired key stays in the JWKS: long enough for the longest-lived token it
/// could have signed to expire, plus the 5-minute leeway webhook receivers allow on `iat`.
pub const RETIRED_KEY_PUBLISHED_FOR: Duration =
    Duration::seconds(MAX_TOKEN_TTL_SECS as i64 + 5 * 60);

/// A signing key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Insertion order; breaks ties between keys activating in the same second.
    pub seq: i64,
    /// Key id (`kid`).
    pub kid: String,
    /// Uncompressed SEC1 public point.
    pub public_key: Vec<u8>,
    /// PKCS#8 private key sealed under the master key.
    pub sealed_private_key: Vec<u8>,
    /// When it was created (and published).
    pub created_at: OffsetDateTime,
    /// When it starts signing.
    pub activates_at: OffsetDateTime,
    /// When it was withdrawn (`keys revoke`); a revoked key is never published again.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Where a key is in its life at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Published, will start signing at its activation time.
    Next,
    /// The one key that signs now.
    Active,
    /// Published so what it signed still verifies; no longer signs.
    Retired,
    /// No longer published.
    Expired,
    /// Withdrawn: not published, nothing it signed verifies.
    Revoked,
}

impl std::fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyStatus::Next => "next",
            KeyStatus::Active => "active",
            KeyStatus::Retired => "retired",
            KeyStatus::Expired => "expired",
            KeyStatus::Revoked => "revoked",
        })
    }
}

/// One key placed on the timeline.
#[derive(Debug, Clone)]
pub struct ScheduledKey<'a> {
    /// The stored key.
    pub record: &'a KeyRecord,
    /// When the following key takes over; `None` while no successor is scheduled.
    pub retires_at: Option<OffsetDateTime>,
}

impl ScheduledKey<'_> {
    /// The key's state at `now`.
    pub fn status(&self, now: OffsetDateTime) -> KeyStatus {
        if self.record.revoked_at.is_some() {
            return KeyStatus::Revoked;
        }
        if now < self.record.activates_at {
            return KeyStatus::Next;
        }
        match self.retires_at {
            Some(at) if now >= at + RETIRED_KEY_PUBLISHED_FOR => KeyStatus::Expired,
            Some(at) if now >= at => KeyStatus::Retired,
            _ => KeyStatus::Active,
        }
    }

    /// When the key leaves the JWKS, once a successor is scheduled.
    pub fn unpublished_at(&self) -> Option<OffsetDateTime> {
        self.retires_at.map(|at| at + RETIRED_KEY_PUBLISHED_FOR)
    }
}

/// Every key, ordered by when it signs; revoked keys are kept apart, off the timeline.
#[derive(Debug, Clone)]
pub struct KeySchedule<'a> {
    keys: Vec<ScheduledKey<'a>>,
    revoked: Vec<ScheduledKey<'a>>,
}

impl<'a> KeySchedule<'a> {
    /// Orders `records` by (activation, insertion) and derives each key's retirement.
    /// Revoked keys take no part: they neither sign nor retire the key before them.
    pub fn new(records: &'a [KeyRecord]) -> Self {
        let (revoked, live): (Vec<&KeyRecord>, Vec<&KeyRecord>) =
            records.iter().partition(|r| r.revoked_at.is_some());
        let revoked = revoked
            .into_iter()
            .map(|record| ScheduledKey {
                record,
                retires_at: None,
            })
            .collect();
        let mut sorted = live;
        sorted.sort_by_key(|r| (r.activates_at, r.seq));
        let keys = sorted
            .iter()
            .enumerate()
            .map(|(i, record)| ScheduledKey {
                record,
                retires_at: sorted.get(i + 1).map(|next| next.activates_at),
            })
            .collect();
        Self { keys, revoked }
    }

    /// All keys in signing order.
    pub fn keys(&self) -> &[ScheduledKey<'a>] {
        &self.keys
    }

    /// Every key, revoked ones last: what `keys list` shows.
    pub fn all_keys(&self) -> impl Iterator<Item = &ScheduledKey<'a>> {
        self.keys.iter().chain(&self.revoked)
    }

    /// The key that signs at `now`, if any has activated.
    pub fn signer_at(&self, now: OffsetDateTime) -> Option<&ScheduledKey<'a>> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.status(now) == KeyStatus::Active)
    }

    /// The keys that belong in the JWKS at `now`: next, active and retired ones.
    pub fn published_at(&self, now: OffsetDateTime) -> impl Iterator<Item = &ScheduledKey<'a>> {
        self.keys
            .iter()
            .filter(move |k| k.status(now) != KeyStatus::Expired)
    }

    /// A key published but not yet signing at `now`, if one is scheduled.
    pub fn pending_at(&self, now: OffsetDateTime) -> Option<&ScheduledKey<'a>> {
        self.keys.iter().find(|k| k.status(now) == KeyStatus::Next)
    }

    /// The first moment after `now` at which any key changes state (so the published set
    /// or the signer changes): when an in-memory view built at `now` goes stale.
    pub fn next_change_after(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.keys
            .iter()
            .flat_map(|k| [Some(k.record.activates_at), k.unpublished_at()])
            .flatten()
            .filter(|t| *t > now)
            .min()
    }

    /// When scheduled rotation should publish a next key: the moment the active key will
    /// have signed for `interval` once a key published then activates (`activation_delay`
    /// later). `None` while a next key is already pending; `now` if no key is active.
    pub fn rotation_due_at(
        &self,
        now: OffsetDateTime,
        interval: Duration,
        activation_delay: Duration,
    ) -> Option<OffsetDateTime> {
        if self.pending_at(now).is_some() {
            return None;
        }
        Some(match self.signer_at(now) {
            Some(active) => active.record.activates_at + interval - activation_delay,
            None => now,
        })
    }

    /// Whether scheduled rotation should publish a next key at `now`.
    pub fn rotation_due(
        &self,
        now: OffsetDateTime,
        interval: Duration,
        activation_delay: Duration,
    ) -> bool {
        self.rotation_due_at(now, interval, activation_delay)
            .is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(1_000_000 + secs)
    }

    fn key(seq: i64, activates: i64) -> KeyRecord {
        KeyRecord {
            seq,
            kid: format!("k{seq}"),
            public_key: vec![],
            sealed_private_key: vec![],
            created_at: t(activates.min(0)),
            activates_at: t(activates),
            revoked_at: None,
        }
    }

    fn status_of(records: &[KeyRecord], now: OffsetDateTime) -> Vec<KeyStatus> {
        let schedule = KeySchedule::new(records);
        records
            .iter()
            .map(|r| {
                schedule
                    .keys()
                    .iter()
                    .find(|k| k.record.kid == r.kid)
                    .unwrap()
                    .status(now)
            })
            .collect()
    }

    #[test]
    fn exactly_one_key_is_active_and_the_next_one_is_prepublished() {
        let keys = [key(1, 0), key(2, 600)];
        use KeyStatus::*;
        assert_eq!(status_of(&keys, t(10)), [Active, Next]);
        assert_eq!(status_of(&keys, t(600)), [Retired, Active]);
        let schedule = KeySchedule::new(&keys);
        assert_eq!(schedule.signer_at(t(599)).unwrap().record.kid, "k1");
        assert_eq!(schedule.signer_at(t(600)).unwrap().record.kid, "k2");
        assert_eq!(schedule.published_at(t(10)).count(), 2);
        assert!(schedule.signer_at(t(-1)).is_none());
    }

    #[test]
    fn revoked_keys_are_off_the_timeline_and_unpublished() {
        // k2 was active and is withdrawn; k3 replaces it at once (what `keys revoke` does).
        let mut keys = [key(1, 0), key(2, 600), key(3, 700)];
        keys[1].revoked_at = Some(t(700));
        let schedule = KeySchedule::new(&keys);
        assert_eq!(schedule.signer_at(t(700)).unwrap().record.kid, "k3");
        let published: Vec<&str> = schedule
            .published_at(t(700))
            .map(|k| k.record.kid.as_str())
            .collect();
        assert_eq!(published, ["k1", "k3"]);
        assert_eq!(schedule.keys().len(), 2);
        let all: Vec<(&str, KeyStatus)> = schedule
            .all_keys()
            .map(|k| (k.record.kid.as_str(), k.status(t(700))))
            .collect();
        assert_eq!(
            all,
            [
                ("k1", KeyStatus::Retired),
                ("k3", KeyStatus::Active),
                ("k2", KeyStatus::Revoked)
            ]
        );
        // A revoked pending key never starts signing.
        let mut keys = [key(1, 0), key(2, 600)];
        keys[1].revoked_at = Some(t(10));
        assert_eq!(
            KeySchedule::new(&keys)
                .signer_at(t(900))
                .unwrap()
                .record
                .kid,
            "k1"
        );
    }

    #[test]
    fn retired_keys_stay_published_until_their_tokens_expire() {
        let keys = [key(1, 0), key(2, 600)];
        let schedule = KeySchedule::new(&keys);
        let gone = t(600) + RETIRED_KEY_PUBLISHED_FOR;
        assert_eq!(
            schedule.published_at(gone - Duration::seconds(1)).count(),
            2
        );
        assert_eq!(schedule.published_at(gone).count(), 1);
        assert_eq!(schedule.next_change_after(t(10)), Some(t(600)));
        assert_eq!(schedule.next_change_after(t(600)), Some(gone));
        assert_eq!(schedule.next_change_after(gone), None);
    }

    #[test]
    fn ties_in_activation_time_go_to_the_later_key() {
        let keys = [key(1, 0), key(2, 0)];
        let schedule = KeySchedule::new(&keys);
        assert_eq!(schedule.signer_at(t(0)).unwrap().record.kid, "k2");
        assert_eq!(
            status_of(&keys, t(0)),
            [KeyStatus::Retired, KeyStatus::Active]
        );
    }

    #[test]
    fn rotation_is_due_when_the_next_key_would_activate_at_the_interval() {
        let keys = [key(1, 0)];
        let schedule = KeySchedule::new(&keys);
        let interval = Duration::days(30);
        let delay = Duration::minutes(10);
        assert!(!schedule.rotation_due(
            t(0) + interval - delay - Duration::seconds(1),
            interval,
            delay
        ));
        assert!(schedule.rotation_due(t(0) + interval - delay, interval, delay));
        let with_pending = [key(1, 0), key(2, 10_000_000)];
        assert!(!KeySchedule::new(&with_pending).rotation_due(t(0) + interval, interval, delay));
        assert!(KeySchedule::new(&[]).rotation_due(t(0), interval, delay));
    }
}
