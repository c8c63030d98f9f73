//! Bounds on open WatchAliases streams, per account and in total. A watch
//! holds a slot from the moment it is admitted until its stream is dropped
//! (the client left, it was cut off, or it ended), so many stalled watchers
//! cannot grow memory without bound or slow writers: past a bound, a new
//! watch is refused with RESOURCE_EXHAUSTED (TOO_MANY_WATCHES).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::{Error, Reason};

/// The bounds and the watches open now.
#[derive(Debug)]
pub struct WatchSlots {
    max_total: usize,
    max_per_account: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_account: HashMap<String, usize>,
}

/// One admitted watch; dropping it frees its slot.
#[derive(Debug)]
pub struct WatchSlot {
    slots: Arc<WatchSlots>,
    account: String,
}

impl WatchSlots {
    pub fn new(max_total: usize, max_per_account: usize) -> Arc<WatchSlots> {
        Arc::new(WatchSlots {
            max_total,
            max_per_account,
            open: Mutex::new(Open::default()),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        // The counts stay consistent whatever panicked while holding it:
        // every update is a single step.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for a watch of `account`, or says why not.
    pub fn admit(self: &Arc<Self>, account: &str) -> Result<WatchSlot, Error> {
        let mut open = self.open();
        let of_account = open.per_account.get(account).copied().unwrap_or(0);
        if of_account >= self.max_per_account {
            return Err(Error::new(
                Reason::TOO_MANY_WATCHES,
                format!(
                    "Account {account} already has {of_account} open WatchAliases streams, the \
                     most one account may have (--max-watches-per-account); close one or share \
                     a watch."
                ),
            ));
        }
        if open.total >= self.max_total {
            return Err(Error::new(
                Reason::TOO_MANY_WATCHES,
                format!(
                    "The server already has {} open WatchAliases streams, the most it serves \
                     (--max-watches); retry later or on another instance.",
                    open.total
                ),
            ));
        }
        open.total += 1;
        *open.per_account.entry(account.to_owned()).or_insert(0) += 1;
        Ok(WatchSlot {
            slots: self.clone(),
            account: account.to_owned(),
        })
    }

    /// Watches open now (all accounts).
    pub fn open_total(&self) -> usize {
        self.open().total
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_account.get_mut(&self.account) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_account.remove(&self.account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_account_and_in_total_and_freed_on_drop() {
        let slots = WatchSlots::new(3, 2);
        let a1 = slots.admit("a").unwrap();
        let _a2 = slots.admit("a").unwrap();
        let error = slots.admit("a").unwrap_err();
        assert_eq!(error.reason, Reason::TOO_MANY_WATCHES);
        assert!(error.message.contains("--max-watches-per-account"));
        let _b1 = slots.admit("b").unwrap();
        let error = slots.admit("c").unwrap_err();
        assert!(
            error.message.contains("--max-watches)"),
            "{}",
            error.message
        );
        drop(a1);
        assert_eq!(slots.open_total(), 2);
        let _c1 = slots.admit("c").unwrap();
        assert_eq!(slots.open_total(), 3);
    }
}
