//! The rules of aliasd: names, ids, ARNs, key specs and states, quotas,
//! errors, and the operations. Plain Rust: no I/O, no tonic, no sled.

pub mod alias;
pub mod audit;
pub mod error;
pub mod key;
pub mod names;
pub mod ops;
pub mod paging;
pub mod policy;
#[cfg(test)]
mod proptests;
pub mod request;

pub use alias::{Alias, AliasEvent, ChangeKind};
pub use error::{Code, Error, Reason, Result};
pub use key::{Key, KeyManager, KeySpec, KeyState, KeyUsage};
pub use names::{AliasName, KeyId, KeyRef, Scope};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Where time comes from; tests substitute a clock they can move.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}
