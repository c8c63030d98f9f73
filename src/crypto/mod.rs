//! Cryptography: the root key that wraps every key's material, material
//! made and used through AWS-LC (`aws-lc-rs`), aliasd's ciphertext format,
//! and a cache of unwrapped material. Nothing here is cryptography of our
//! own: every primitive is the library's.

pub mod cache;
pub mod material;
pub mod ops;
pub mod root_key;

pub use cache::MaterialCache;
pub use material::Usable;
pub use root_key::RootKey;
