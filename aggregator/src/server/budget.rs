//! A budget shared by many holders and capped per key: the memory of push bodies (bytes,
//! per team) and the live tails (one each, per token). One key cannot take the whole budget,
//! so one team or token cannot lock the others out.
//!
//! Invariants: what a [`Reservation`] holds is given back when it is dropped, also when the
//! request fails or its task panics; nothing waits (a reservation is granted or refused).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The budget: `total` units in all, at most `per_key` for one key.
pub struct KeyedBudget {
    total: usize,
    per_key: usize,
    used: Mutex<Use>,
}

#[derive(Default)]
struct Use {
    total: usize,
    keys: HashMap<String, usize>,
}

/// Units of a [`KeyedBudget`] held by one request; given back when dropped.
pub struct Reservation {
    budget: Arc<KeyedBudget>,
    key: String,
    units: usize,
}

impl KeyedBudget {
    /// A budget of `total` units of which one key may hold `per_key`.
    pub fn new(total: usize, per_key: usize) -> Arc<KeyedBudget> {
        Arc::new(KeyedBudget {
            total,
            per_key,
            used: Mutex::new(Use::default()),
        })
    }

    /// Reserves `units` for `key`, or `None` when that would exceed the total or the key's
    /// share.
    pub fn try_reserve(self: &Arc<Self>, key: &str, units: usize) -> Option<Reservation> {
        let mut used = self.used.lock().ok()?;
        let key_used = used.keys.get(key).copied().unwrap_or(0);
        if used.total.saturating_add(units) > self.total
            || key_used.saturating_add(units) > self.per_key
        {
            return None;
        }
        used.total += units;
        *used.keys.entry(key.to_owned()).or_default() += units;
        Some(Reservation {
            budget: self.clone(),
            key: key.to_owned(),
            units,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Ok(mut used) = self.budget.used.lock() {
            used.total = used.total.saturating_sub(self.units);
            if let Some(k) = used.keys.get_mut(&self.key) {
                *k = k.saturating_sub(self.units);
                if *k == 0 {
                    used.keys.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_cannot_take_the_whole_budget_and_drops_give_back() {
        let b = KeyedBudget::new(10, 6);
        let a1 = b.try_reserve("a", 6).unwrap();
        assert!(b.try_reserve("a", 1).is_none(), "over a's share");
        let b1 = b.try_reserve("b", 4).unwrap();
        assert!(b.try_reserve("c", 1).is_none(), "over the total");
        drop(a1);
        assert!(b.try_reserve("c", 5).is_some());
        drop(b1);
    }
}
