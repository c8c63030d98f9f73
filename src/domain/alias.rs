//! Aliases, their etags, and the change events the store logs.

use sha2::{Digest, Sha256};

use super::error::{Error, Reason, Result};
use super::names::{AliasName, KeyId, Scope};
use super::time::Millis;

/// An etag's length: 16 lowercase hex digits (see [`Alias::etag_for`]).
pub const ETAG_CHARS: usize = 16;

/// An alias, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub name: AliasName,
    pub target: KeyId,
    pub creation_time: Millis,
    pub last_updated_time: Millis,
    pub etag: String,
}

impl Alias {
    /// The etag of a change: derived from the alias name and the revision of
    /// the change, so every modification gives a new one.
    pub fn etag_for(name: &AliasName, revision: u64) -> String {
        let digest = Sha256::new()
            .chain_update(name.as_str())
            .chain_update([0])
            .chain_update(revision.to_be_bytes())
            .finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Fails with ETAG_MISMATCH when the caller gave an etag that is not this
    /// alias's current one.
    pub fn check_etag(&self, scope: &Scope, expected: Option<&str>) -> Result<()> {
        match expected {
            Some(etag) if etag != self.etag => Err(Error::new(
                Reason::ETAG_MISMATCH,
                format!(
                    "Alias {} has etag {}, not {}; it was changed since you read it. Nothing was \
                     changed: read it again and retry.",
                    scope.alias_arn(&self.name),
                    self.etag,
                    super::names::quoted(etag)
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// Checks a caller's etag parameter; empty means "unconditional".
pub fn parse_etag(input: &str) -> Result<Option<&str>> {
    if input.is_empty() {
        return Ok(None);
    }
    // No alias has any other: a typo is a mistake to say, not a conflict.
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if input.len() != ETAG_CHARS || !input.bytes().all(hex) {
        return Err(Error::invalid(
            Reason::INVALID_ETAG,
            "etag",
            format!(
                "etag {} is not an etag: an alias's etag is {ETAG_CHARS} lowercase hex digits \
                 (its `etag` field).",
                super::names::quoted(input)
            ),
        ));
    }
    Ok(Some(input))
}

/// What a change did to an alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
    Renamed,
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasEvent {
    pub revision: u64,
    pub kind: ChangeKind,
    /// The alias after the change; for Deleted, as it was before.
    pub alias: Alias,
    /// Renamed: the old name.
    pub previous_name: Option<AliasName>,
    /// Updated: the old target.
    pub previous_target: Option<KeyId>,
    pub time: Millis,
}

impl AliasEvent {
    /// True when the change involves `key` as new or old target.
    pub fn touches(&self, key: &KeyId) -> bool {
        &self.alias.target == key || self.previous_target.as_ref() == Some(key)
    }
}
