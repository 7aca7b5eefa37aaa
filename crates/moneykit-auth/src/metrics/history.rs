//! The last hour of two counters, second by second, for the admin console's charts.
//!
//! The console's Overview draws "tokens issued per second" and "failed client
//! authentications" without a Prometheus to ask, so the process keeps the recent past
//! itself. A sampler task ([`run`]) reads the counter *totals* once a second and hands
//! them to [`History::record`], which keeps what each second added in a ring of one slot
//! per second of the last hour ([`CAPACITY`]). The console reads it with
//! [`History::series`].
//!
//! Nothing here is on the request path: requests bump the atomics in [`Metrics`] as
//! before, and only the sampler (once a second) and the console (rarely) take the lock.
//! That is why a plain [`std::sync::Mutex`] around arrays is enough.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::Metrics;

/// Seconds of history kept: one hour, what the Overview shows.
pub const CAPACITY: u32 = 3600;

/// Counter totals read at one moment: what the sampler hands the history each second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The Unix second the totals were read in.
    pub unix_secs: i64,
    /// Access tokens issued since start ([`Metrics::tokens_issued`]).
    pub tokens: u64,
    /// Failed client authentications since start ([`Metrics::client_auth_failures`]).
    pub failures: u64,
}

impl Sample {
    /// The totals `metrics` holds now, stamped `unix_secs`.
    pub fn read(metrics: &Metrics, unix_secs: i64) -> Self {
        Self {
            unix_secs,
            tokens: metrics.tokens_issued(),
            failures: metrics.client_auth_failures(),
        }
    }
}

/// What one second added to each counter. `unix_secs` says which second the slot holds
/// now: a slot still tagged with an older second (an hour or more ago) reads as zero, so
/// the ring never has to be swept.
#[derive(Debug, Clone, Copy)]
struct Slot {
    unix_secs: i64,
    tokens: u64,
    failures: u64,
}

impl Slot {
    /// A slot never written: no real second is `i64::MIN`.
    const EMPTY: Self = Self {
        unix_secs: i64::MIN,
        tokens: 0,
        failures: 0,
    };
}

#[derive(Debug)]
struct Ring {
    /// `CAPACITY` slots; second `s` lives in slot `s mod CAPACITY`.
    slots: Box<[Slot]>,
    /// The previous sample, whose totals the next one is compared with; its second is the
    /// newest one the ring has written (time never goes backwards in the ring).
    last: Option<Sample>,
}

impl Ring {
    fn index(unix_secs: i64) -> usize {
        // `rem_euclid` is in 0..CAPACITY, so the cast cannot truncate.
        unix_secs.rem_euclid(i64::from(CAPACITY)) as usize
    }

    /// Adds to second `unix_secs`, taking its slot over if it held an older second.
    fn add(&mut self, unix_secs: i64, tokens: u64, failures: u64) {
        let slot = &mut self.slots[Self::index(unix_secs)];
        if slot.unix_secs != unix_secs {
            *slot = Slot {
                unix_secs,
                ..Slot::EMPTY
            };
        }
        slot.tokens = slot.tokens.saturating_add(tokens);
        slot.failures = slot.failures.saturating_add(failures);
    }

    /// What second `unix_secs` added, `(tokens, failures)`; zero for a second not held
    /// (before the first sample, after the last, or more than an hour before it).
    fn at(&self, unix_secs: i64) -> (u64, u64) {
        let slot = &self.slots[Self::index(unix_secs)];
        if slot.unix_secs == unix_secs {
            (slot.tokens, slot.failures)
        } else {
            (0, 0)
        }
    }
}

/// The last hour of tokens issued and failed client authentications, per second.
///
/// Built once (about 86 KB), then never allocates: [`record`](Self::record) writes into
/// the fixed ring. Thread-safe; share it in an [`Arc`] between the sampler ([`run`]) and
/// the console.
pub struct History {
    ring: Mutex<Ring>,
}

impl std::fmt::Debug for History {
    /// The last sample only: 3,600 slots would drown any log line that prints state.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("last", &self.lock().last)
            .finish_non_exhaustive()
    }
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

/// How much a counter went up from `previous` to `now`. A total below the previous one
/// means the counter started again from zero (a reset), so all of `now` is new — never a
/// wrapped-around subtraction.
fn added(previous: u64, now: u64) -> u64 {
    now.checked_sub(previous).unwrap_or(now)
}

/// The share of `total` that second `k` (0-based, oldest first) of a `gap`-second span
/// gets when `total` is spread evenly over it: the remainder goes one each to the newest
/// seconds, so the shares add up to `total` exactly.
fn share(total: u64, gap: u64, k: u64) -> u64 {
    let (per_second, remainder) = (total / gap, total % gap);
    per_second + u64::from(k >= gap - remainder)
}

impl History {
    /// An empty history: every second reads as zero until samples arrive.
    pub fn new() -> Self {
        Self {
            ring: Mutex::new(Ring {
                slots: vec![Slot::EMPTY; CAPACITY as usize].into_boxed_slice(),
                last: None,
            }),
        }
    }

    /// The ring. A panic while it was held cannot leave it inconsistent in a way worth
    /// failing the console over (at worst one second's counts are off), so a poisoned lock
    /// is used as it is.
    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the totals read in second `sample.unix_secs`; what they added since the
    /// previous sample is kept per second.
    ///
    /// - The first sample is only the baseline: what was counted before it is not placed
    ///   in any second (the sampler takes it as the server starts, so that is little).
    /// - Missed seconds (the sampler was late) are **spread**: when the previous sample is
    ///   `n` seconds back, what was added is divided evenly over those `n` seconds (the
    ///   remainder one each to the newest), so a late tick draws no spike and no false
    ///   drop to zero, and the totals stay exact. Of a gap longer than an hour only the
    ///   last hour is kept.
    /// - A total below the previous one is a counter reset: the new total counts as added.
    /// - A sample in the same second as the previous one, or an earlier one (the wall
    ///   clock was set back), adds to the previous sample's second: time in the ring never
    ///   goes backwards.
    pub fn record(&self, sample: Sample) {
        let mut ring = self.lock();
        let Some(last) = ring.last else {
            ring.last = Some(sample);
            return;
        };
        let now = sample.unix_secs.max(last.unix_secs);
        let tokens = added(last.tokens, sample.tokens);
        let failures = added(last.failures, sample.failures);
        ring.last = Some(Sample {
            unix_secs: now,
            ..sample
        });
        // The seconds since the previous sample; a sample in the same second counts as a
        // 1-second gap ending at `now`, and adds to what that second holds.
        let gap = now.saturating_sub(last.unix_secs).max(1);
        let first = now
            .saturating_sub(gap - 1)
            .max(now.saturating_sub(i64::from(CAPACITY) - 1));
        let gap = gap.unsigned_abs();
        for second in first..=now {
            // 0 for the oldest second of the gap; `first..=now` is at most an hour, and
            // `second` lies in the gap, so this is in 0..gap.
            let k = gap - (now - second).unsigned_abs() - 1;
            ring.add(second, share(tokens, gap, k), share(failures, gap, k));
        }
    }

    /// The `window_secs` seconds ending with `now_unix_secs` (included), in buckets of
    /// `bucket_secs`, oldest first: what the console's charts draw.
    ///
    /// `window_secs` is capped at [`CAPACITY`] (there is no older history) and
    /// `bucket_secs` is at least 1; there are `window_secs / bucket_secs` buckets, and a
    /// window that is not a whole number of buckets is shortened at its old end. Seconds
    /// with no record — before the process started (or the sampler's first sample), after
    /// the sampler stopped, or in the future — count as zero.
    pub fn series(&self, now_unix_secs: i64, window_secs: u32, bucket_secs: u32) -> Series {
        let bucket_secs = bucket_secs.max(1);
        let buckets = window_secs.min(CAPACITY) / bucket_secs;
        let span = i64::from(buckets * bucket_secs);
        let start_unix = now_unix_secs.saturating_sub(span).saturating_add(1);
        let mut series = Series {
            bucket_secs,
            start_unix,
            tokens: Vec::with_capacity(buckets as usize),
            failures: Vec::with_capacity(buckets as usize),
            tokens_total: 0,
            failures_total: 0,
        };
        let ring = self.lock();
        let mut second = start_unix;
        for _ in 0..buckets {
            let (mut tokens, mut failures) = (0u64, 0u64);
            for _ in 0..bucket_secs {
                let (t, f) = ring.at(second);
                tokens = tokens.saturating_add(t);
                failures = failures.saturating_add(f);
                second = second.saturating_add(1);
            }
            series.tokens.push(tokens as f64 / f64::from(bucket_secs));
            series
                .failures
                .push(failures as f64 / f64::from(bucket_secs));
            series.tokens_total = series.tokens_total.saturating_add(tokens);
            series.failures_total = series.failures_total.saturating_add(failures);
        }
        series
    }
}

/// The two counters over a window, bucketed for a chart ([`History::series`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Seconds per bucket, so the chart can label its x axis.
    pub bucket_secs: u32,
    /// The first Unix second of the oldest bucket; bucket `i` covers
    /// `start_unix + i * bucket_secs` and the `bucket_secs - 1` seconds after it.
    pub start_unix: i64,
    /// Tokens issued per second, averaged over each bucket, oldest first.
    pub tokens: Vec<f64>,
    /// Failed client authentications per second, averaged over each bucket, oldest first.
    pub failures: Vec<f64>,
    /// Tokens issued in the whole window, exact (the rates are rounded by division).
    pub tokens_total: u64,
    /// Failed client authentications in the whole window, exact.
    pub failures_total: u64,
}

/// Unix seconds now, and nanoseconds into that second.
fn wall_clock() -> (i64, u32) {
    let now = OffsetDateTime::now_utc();
    (now.unix_timestamp(), now.nanosecond())
}

/// How long from `nanos` into a second until the middle of a second: ticks there keep a
/// little scheduling jitter from moving a sample into the neighbouring second.
fn until_mid_second(nanos: u32) -> Duration {
    const HALF: u32 = 500_000_000;
    let nanos = nanos.min(999_999_999);
    let wait = if nanos <= HALF {
        HALF - nanos
    } else {
        1_000_000_000 - nanos + HALF
    };
    Duration::from_nanos(u64::from(wait))
}

/// The sampler: records `metrics`' totals into `history` at once (the baseline), then
/// every second, until `shutdown` changes.
///
/// Ticks come from a [`tokio::time::interval`] that delays missed ticks rather than
/// bursting them; seconds it misses are spread by [`History::record`]. Seconds are wall
/// clock Unix seconds, the ones the console asks [`History::series`] about.
pub async fn run(
    metrics: Arc<Metrics>,
    history: Arc<History>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (now, nanos) = wall_clock();
    history.record(Sample::read(&metrics, now));
    let first = tokio::time::Instant::now() + until_mid_second(nanos);
    let mut tick = tokio::time::interval_at(first, Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => history.record(Sample::read(&metrics, wall_clock().0)),
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::metrics::RouteLabel;

    const T0: i64 = 1_700_000_000;

    fn sample(unix_secs: i64, tokens: u64, failures: u64) -> Sample {
        Sample {
            unix_secs,
            tokens,
            failures,
        }
    }

    /// Per-second token counts for `seconds` seconds ending at `now`, oldest first.
    fn tokens_per_second(history: &History, now: i64, seconds: u32) -> Vec<f64> {
        history.series(now, seconds, 1).tokens
    }

    #[test]
    fn deltas_are_kept_per_second_from_totals() {
        let h = History::new();
        h.record(sample(T0, 100, 7));
        h.record(sample(T0 + 1, 103, 7));
        h.record(sample(T0 + 2, 103, 9));
        h.record(sample(T0 + 3, 110, 10));
        let s = h.series(T0 + 3, 4, 1);
        // The first sample is the baseline: the 100 before it are in no second.
        assert_eq!(s.tokens, [0.0, 3.0, 0.0, 7.0]);
        assert_eq!(s.failures, [0.0, 0.0, 2.0, 1.0]);
        assert_eq!((s.tokens_total, s.failures_total), (10, 3));
        assert_eq!(s.start_unix, T0);
        assert_eq!(s.bucket_secs, 1);
    }

    #[test]
    fn missed_seconds_share_what_was_added() {
        let h = History::new();
        h.record(sample(T0, 0, 0));
        // Four seconds late: 10 tokens over T0+1..=T0+4, remainder to the newest.
        h.record(sample(T0 + 4, 10, 4));
        assert_eq!(tokens_per_second(&h, T0 + 4, 5), [0.0, 2.0, 2.0, 3.0, 3.0]);
        assert_eq!(h.series(T0 + 4, 5, 1).failures, [0.0, 1.0, 1.0, 1.0, 1.0]);
        // Fewer than the seconds missed: the newest get one each, the total is exact.
        h.record(sample(T0 + 7, 12, 4));
        assert_eq!(tokens_per_second(&h, T0 + 7, 3), [0.0, 1.0, 1.0]);
        assert_eq!(h.series(T0 + 7, 8, 1).tokens_total, 12);
    }

    #[test]
    fn a_gap_longer_than_the_ring_keeps_its_last_hour() {
        let h = History::new();
        h.record(sample(T0, 0, 0));
        h.record(sample(T0 + 1, 5, 0));
        // Two hours late: 7,200 tokens, one a second; only the last hour is kept, and
        // the second before it (T0 + 1) is long gone.
        h.record(sample(T0 + 1 + 7200, 5 + 7200, 0));
        let s = h.series(T0 + 1 + 7200, CAPACITY, 1);
        assert_eq!(s.tokens.len(), CAPACITY as usize);
        assert!(s.tokens.iter().all(|r| *r == 1.0), "{:?}", &s.tokens[..5]);
        assert_eq!(s.tokens_total, u64::from(CAPACITY));
    }

    #[test]
    fn a_counter_going_backwards_is_a_reset_not_an_underflow() {
        let h = History::new();
        h.record(sample(T0, 50, 9));
        h.record(sample(T0 + 1, 60, 9));
        h.record(sample(T0 + 2, 4, 1));
        h.record(sample(T0 + 3, 6, 1));
        let s = h.series(T0 + 3, 3, 1);
        assert_eq!(s.tokens, [10.0, 4.0, 2.0]);
        assert_eq!(s.failures, [0.0, 1.0, 0.0]);
        assert_eq!((s.tokens_total, s.failures_total), (16, 1));
    }

    #[test]
    fn the_same_second_twice_or_a_clock_set_back_adds_to_the_newest_second() {
        let h = History::new();
        h.record(sample(T0, 0, 0));
        h.record(sample(T0 + 1, 2, 0));
        h.record(sample(T0 + 1, 5, 0));
        h.record(sample(T0 - 30, 6, 0));
        h.record(sample(T0 + 2, 8, 0));
        assert_eq!(tokens_per_second(&h, T0 + 2, 3), [0.0, 6.0, 2.0]);
        assert_eq!(tokens_per_second(&h, T0 - 29, 5), [0.0; 5]);
    }

    #[test]
    fn buckets_average_per_second_rates_oldest_first() {
        let h = History::new();
        h.record(sample(T0, 0, 0));
        let mut total = 0;
        for i in 1..=120 {
            // 1 token a second for the first minute, 3 a second for the second.
            total += if i <= 60 { 1 } else { 3 };
            h.record(sample(T0 + i, total, i as u64 / 30));
        }
        let s = h.series(T0 + 120, 120, 60);
        assert_eq!(s.tokens, [1.0, 3.0]);
        assert_eq!(s.failures, [2.0 / 60.0, 2.0 / 60.0]);
        assert_eq!(s.tokens_total, 240);
        assert_eq!(s.start_unix, T0 + 1);
        // Buckets reaching before the first sample count those seconds as zero.
        let s = h.series(T0 + 120, 240, 60);
        assert_eq!(s.tokens, [0.0, 0.0, 1.0, 3.0]);
        assert_eq!(s.start_unix, T0 - 119);
        // An uneven bucket: 90 seconds of 1 and 3 a second.
        let s = h.series(T0 + 120, 90, 90);
        assert_eq!(s.tokens, [(30.0 * 1.0 + 60.0 * 3.0) / 90.0]);
    }

    #[test]
    fn the_series_has_window_over_bucket_entries_ending_now() {
        let h = History::new();
        h.record(sample(T0, 0, 0));
        h.record(sample(T0 + 1, 1, 0));
        let s = h.series(T0 + 1, 3600, 60);
        assert_eq!((s.tokens.len(), s.failures.len()), (60, 60));
        assert_eq!(s.start_unix, T0 + 1 - 3599);
        assert_eq!(s.tokens[59], 1.0 / 60.0);
        assert!(s.tokens[..59].iter().all(|r| *r == 0.0));
        // Not a whole number of buckets: shortened at the old end.
        let s = h.series(T0 + 1, 100, 30);
        assert_eq!(s.tokens.len(), 3);
        assert_eq!(s.start_unix, T0 + 1 - 89);
        // More than the ring holds is capped at an hour; a zero bucket is one second.
        assert_eq!(h.series(T0 + 1, 7200, 60).tokens.len(), 60);
        assert_eq!(h.series(T0 + 1, 10, 0).tokens.len(), 10);
        assert!(h.series(T0 + 1, 0, 60).tokens.is_empty());
        // Asked an hour later, the second has dropped out of the window.
        assert_eq!(h.series(T0 + 1 + 3600, 3600, 60).tokens_total, 0);
        // An empty history reads as zeros.
        assert_eq!(History::new().series(T0, 60, 1).tokens, [0.0; 60]);
    }

    #[test]
    fn the_ring_wraps_around_after_an_hour() {
        let h = History::new();
        h.record(sample(T0, 0, 0));
        // Two hours and a bit, second by second: second i adds i % 7 tokens.
        let mut total = 0;
        let end = 2 * 3600 + 123;
        for i in 1..=end {
            total += i as u64 % 7;
            h.record(sample(T0 + i, total, 0));
        }
        let s = h.series(T0 + end, CAPACITY, 1);
        let expected: Vec<f64> = (end - 3599..=end).map(|i| (i % 7) as f64).collect();
        assert_eq!(s.tokens, expected);
        assert_eq!(s.tokens_total, expected.iter().sum::<f64>() as u64);
        // An older window reads only what the ring still holds for it: seconds written
        // over since read as zero, not as the newer counts now in their slots.
        let s = h.series(T0 + end - 3600, 2, 1);
        assert_eq!(s.tokens, [0.0, 0.0]);
    }

    #[test]
    fn a_sample_reads_both_totals_from_the_metrics() {
        let metrics = Metrics::new([RouteLabel {
            template: "/oauth2/token".into(),
            label: "/oauth2/token".into(),
            client_auth: true,
        }]);
        let token = metrics.route_index(Some("/oauth2/token"));
        metrics.record(token, 401, Duration::ZERO);
        metrics.record(token, 401, Duration::ZERO);
        metrics.record(metrics.route_index(None), 401, Duration::ZERO);
        metrics.tokens_issued.fetch_add(5, Ordering::Relaxed);
        assert_eq!(Sample::read(&metrics, T0), sample(T0, 5, 2));
    }

    #[test]
    fn ticks_aim_at_the_middle_of_a_second() {
        assert_eq!(until_mid_second(0), Duration::from_millis(500));
        assert_eq!(until_mid_second(500_000_000), Duration::ZERO);
        assert_eq!(until_mid_second(900_000_000), Duration::from_millis(600));
        assert!(until_mid_second(u32::MAX) <= Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_sampler_records_until_shutdown() {
        let metrics = Arc::new(Metrics::default());
        let history = Arc::new(History::new());
        let (stop, shutdown) = watch::channel(false);
        metrics.tokens_issued.fetch_add(3, Ordering::Relaxed);
        let task = tokio::spawn(run(metrics.clone(), history.clone(), shutdown));
        // The baseline (3) is taken at once; what follows is counted.
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics.tokens_issued.fetch_add(4, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.send(true).expect("the sampler listens");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the sampler stops on shutdown")
            .expect("the sampler does not panic");
        let s = history.series(wall_clock().0, CAPACITY, 60);
        assert_eq!(s.tokens_total, 4);
        assert!(history.lock().last.is_some_and(|last| last.tokens == 7));
    }
}
