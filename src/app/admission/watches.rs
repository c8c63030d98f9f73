//! Bounds on open WatchAliases streams, per account and in total. A watch
//! holds a slot from the moment it is admitted until its stream is dropped
//! (the client left, it was cut off, or it ended), so many stalled watchers
//! cannot grow memory without bound or slow writers: past a bound, a new
//! watch is refused with RESOURCE_EXHAUSTED (TOO_MANY_WATCHES).

use std::sync::Arc;

use crate::app::admission::slots::{Full, Slot, Slots};
use crate::domain::{Error, Reason};

/// The bounds and the watches open now.
#[derive(Debug)]
pub struct WatchSlots(Arc<Slots>);

/// One admitted watch; dropping it frees its slot.
pub type WatchSlot = Slot;

impl WatchSlots {
    pub fn new(max_total: usize, max_per_account: usize) -> Arc<WatchSlots> {
        Arc::new(WatchSlots(Slots::new(max_total, max_per_account)))
    }

    /// Takes a slot for a watch of `account`, or says why not.
    pub fn admit(&self, account: &str) -> Result<WatchSlot, Error> {
        self.0.take(account).map_err(|full| {
            Error::new(
                Reason::TOO_MANY_WATCHES,
                match full {
                    Full::Key(open) => format!(
                        "Account {account} already has {open} open WatchAliases streams, the \
                         most one account may have (--max-watches-per-account); close one or \
                         share a watch."
                    ),
                    Full::Total(open) => format!(
                        "The server already has {open} open WatchAliases streams, the most it \
                         serves (--max-watches); retry later or on another instance."
                    ),
                },
            )
        })
    }

    /// Watches open now (all accounts).
    pub fn open_total(&self) -> usize {
        self.0.held_total()
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
