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
pub mod time;

pub use alias::{Alias, AliasEvent, ChangeKind};
pub use error::{Code, Error, Reason, Result};
pub use key::{Key, KeyManager, KeySpec, KeyState, KeyUsage};
pub use names::{AliasName, KeyId, KeyRef, Scope};
pub use time::{Clock, Millis, SystemClock};
