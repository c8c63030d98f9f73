//! The store's failed state, and the two answers a failure gives. Every
//! backend holds one; when it fails is the backend's decision (sled's is
//! below, in `sled/`; the memory backend never fails).
//!
//! sled 0.34 poisons itself after an I/O error (every later operation
//! returns it, even once the disk has room again), and after a failed
//! `fsync` the kernel may have dropped the dirty pages, so a later `fsync`
//! that succeeds proves nothing. Recovering in the process is therefore not
//! attempted: the first I/O error in a commit, flush or sync fails the store
//! for good. From then on every call is refused with UNAVAILABLE
//! (`STORE_FAILED`), health reports NOT_SERVING, and the server must be
//! restarted (it re-opens and recovers the store from disk).

use std::sync::Arc;

use tokio::sync::watch;

use crate::domain::{Error, Reason};

/// Why the store failed; `None` while it is healthy.
pub type FailureCause = Option<Arc<str>>;

/// Shared by the backend and its threads; health and watchers watch it.
#[derive(Clone)]
pub struct StoreHealth {
    state: watch::Sender<FailureCause>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        StoreHealth::new()
    }
}

impl StoreHealth {
    pub fn new() -> StoreHealth {
        StoreHealth {
            state: watch::channel(None).0,
        }
    }

    /// Fails the store. The first cause is kept and logged (once, at ERROR).
    pub fn fail(&self, cause: &str) {
        let first = self.state.send_if_modified(|state| {
            if state.is_some() {
                return false;
            }
            *state = Some(Arc::from(cause));
            true
        });
        if first {
            tracing::error!(
                cause,
                "the store failed: every call is now refused with UNAVAILABLE (STORE_FAILED) and \
                 health reports NOT_SERVING; restart the server (after freeing space, if the disk \
                 is full)"
            );
        }
    }

    /// Why the store failed, if it did.
    pub fn cause(&self) -> FailureCause {
        self.state.borrow().clone()
    }

    /// Changes to `Some` when the store fails.
    pub fn subscribe(&self) -> watch::Receiver<FailureCause> {
        self.state.subscribe()
    }

    /// Refuses a call before it changed anything, if the store failed.
    pub fn check(&self) -> Result<(), Error> {
        match self.cause() {
            Some(cause) => Err(store_failed(&cause)),
            None => Ok(()),
        }
    }
}

/// A call refused because the store failed: it changed nothing.
pub fn store_failed(cause: &str) -> Error {
    Error::new(
        Reason::STORE_FAILED,
        format!(
            "The store failed ({cause}); this server must be restarted and reports NOT_SERVING \
             until then. Nothing was changed: retry against a restarted server."
        ),
    )
}

/// A change that committed but could not be made durable.
pub fn outcome_unknown(cause: &str) -> Error {
    Error::new(
        Reason::WRITE_OUTCOME_UNKNOWN,
        format!(
            "The change committed but could not be made durable ({cause}): it may or may not be \
             there once the server is restarted. Retry with the same request_id against a \
             restarted server; a change that survived is then answered from its record."
        ),
    )
}
