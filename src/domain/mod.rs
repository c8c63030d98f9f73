//! The rules of aliasd: names, ids, ARNs, key specs and states, quotas,
//! errors, and the operations. Plain Rust: no I/O, no tonic, no sled.

/// An enum whose variants are spelled as on the wire, with `ALL`,
/// `as_str` and `from_name`.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),* $(,)? }) => {
        $(#[$meta])*
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),* }
            }

            pub fn from_name(name: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == name)
            }
        }
    };
}

pub mod algorithms;
pub mod alias;
pub mod audit;
pub mod error;
pub mod key;
pub mod key_details;
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
