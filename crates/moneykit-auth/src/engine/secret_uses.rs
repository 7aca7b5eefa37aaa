//! When each client secret was last used, without database I/O on the request path: a
//! successful check stamps the secret's slot in memory (one relaxed atomic, written at
//! most once a second per secret), and the background refresh flushes the stamped slots
//! to the store in one batch every full refresh.
//!
//! Slots live here, not in the snapshot, so a snapshot rebuild loses no stamp: the
//! snapshot holds an `Arc` of its secrets' slots, taken from [`SecretUses::slot`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Where one secret's last use waits to be flushed.
#[derive(Debug, Default)]
pub struct UseSlot(AtomicI64);

impl UseSlot {
    /// Records a use at `now` (Unix seconds). Reads first, so a secret used thousands of
    /// times a second writes its cache line once a second, not on every request.
    pub fn touch(&self, now: i64) {
        if self.0.load(Ordering::Relaxed) < now {
            self.0.store(now, Ordering::Relaxed);
        }
    }
}

/// Every secret's slot, by secret id.
#[derive(Debug, Default)]
pub struct SecretUses {
    slots: Mutex<HashMap<String, Arc<UseSlot>>>,
}

impl SecretUses {
    /// The slot of secret `id`, made on first ask.
    pub fn slot(&self, id: &str) -> Arc<UseSlot> {
        let mut slots = self.slots.lock().expect("not poisoned");
        match slots.get(id) {
            Some(slot) => slot.clone(),
            None => {
                let slot = Arc::new(UseSlot::default());
                slots.insert(id.to_owned(), slot.clone());
                slot
            }
        }
    }

    /// The uses stamped since the last call (secret id, Unix seconds), clearing them;
    /// forgets the slots of secrets no snapshot holds any more.
    pub fn take(&self) -> Vec<(String, i64)> {
        let mut slots = self.slots.lock().expect("not poisoned");
        let mut taken = Vec::new();
        slots.retain(|id, slot| {
            let at = slot.0.swap(0, Ordering::Relaxed);
            if at > 0 {
                taken.push((id.clone(), at));
            }
            Arc::strong_count(slot) > 1
        });
        taken
    }

    /// Puts back uses a flush could not write, so the next flush tries again.
    pub fn restore(&self, uses: &[(String, i64)]) {
        let slots = self.slots.lock().expect("not poisoned");
        for (id, at) in uses {
            if let Some(slot) = slots.get(id) {
                slot.touch(*at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_taken_once_and_slots_outlive_no_snapshot() {
        let uses = SecretUses::default();
        let a = uses.slot("sec_a");
        let b = uses.slot("sec_b");
        a.touch(100);
        a.touch(90);
        assert_eq!(uses.take(), vec![("sec_a".to_owned(), 100)]);
        assert!(uses.take().is_empty(), "taken once");
        assert!(Arc::ptr_eq(&a, &uses.slot("sec_a")), "one slot per secret");
        // A failed flush puts its stamps back.
        uses.restore(&[("sec_a".to_owned(), 120)]);
        assert_eq!(uses.take(), vec![("sec_a".to_owned(), 120)]);
        // Once no snapshot holds a slot, it goes (after its last stamp is taken).
        b.touch(5);
        drop(b);
        assert_eq!(uses.take(), vec![("sec_b".to_owned(), 5)]);
        assert_eq!(uses.slots.lock().unwrap().len(), 1);
    }
}
