//! The change feed: the highest durable revision of each account, and a
//! signal that wakes watchers whenever one moves. Watchers then read the
//! change log themselves (watch.rs), so the feed carries no events.
//!
//! Whoever learns that a revision is durable publishes it: the store for its
//! own writes (after their flush), and a backend shared with other
//! processes for theirs (see `Backend::follow_other_writers`). Publishing is
//! idempotent and never moves a revision back, so both may report the same
//! commit.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

pub struct Feed {
    revisions: Mutex<HashMap<String, u64>>,
    generation: watch::Sender<u64>,
}

impl Feed {
    /// A feed starting at the heads found at open (everything stored then is
    /// durable).
    pub fn new(heads: HashMap<String, u64>) -> Feed {
        Feed {
            revisions: Mutex::new(heads),
            generation: watch::channel(0).0,
        }
    }

    /// `account`'s revisions up to `revision` are durable.
    pub fn publish(&self, account: &str, revision: u64) {
        let moved = {
            let mut revisions = self.revisions.lock().unwrap_or_else(|p| p.into_inner());
            let durable = revisions.entry(account.to_owned()).or_default();
            let moved = revision > *durable;
            *durable = (*durable).max(revision);
            moved
        };
        if moved {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// The highest revision of `account` known to be durable.
    pub fn durable_revision(&self, account: &str) -> u64 {
        let revisions = self.revisions.lock().unwrap_or_else(|p| p.into_inner());
        revisions.get(account).copied().unwrap_or(0)
    }

    /// Wakes whenever some account's durable revision moves.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}
